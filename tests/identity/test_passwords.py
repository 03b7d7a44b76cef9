"""Passwords, one-time codes, lockout and support recovery, over the real broker and database.

Every secret a test uses is read from the identity topic and unsealed with the notifier's
private key, as the notifier does: the secret-sealing round trip is in every test here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.testing.kafka_probe import TopicReader
from identity import commands, service, store
from identity.domain import (
    ContactMismatch,
    InvalidCommand,
    LoginIsLocked,
    LoginRefused,
    RecoveryRefused,
    ResetCodeRefused,
    TooManyFromAddress,
    TooManyRequests,
    UnknownAccount,
    account_number_from_sequence,
)
from identity.security import SecretHasher

INITIAL, REISSUE, CODE, RECOVERY = (
    PasswordPurpose.INITIAL, PasswordPurpose.SMS_REISSUE, PasswordPurpose.RESET_CODE,
    PasswordPurpose.SUPPORT_RECOVERY,
)


async def registered_with_password(flow: Any, **changes: Any) -> tuple[str, str, str]:
    registered = await flow.register(**changes)
    password = await flow.secret(registered.account_number, INITIAL)
    return registered.account_number, registered.contract_number, password


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- "get a new password by SMS" --------------------------------------------------------------


async def test_a_reissued_password_replaces_the_old_one(flow: Any) -> None:
    account, contract, initial = await registered_with_password(flow)

    [sent] = await service.reissue_password_by_sms(flow.ctx, {"login": contract})

    assert (sent.purpose, sent.channel, sent.masked_destination) == (REISSUE, "sms", "+7 *** ***-67-89")
    [issued] = await flow.issued(account, REISSUE)
    assert issued["destination"] == "+79123456789"
    assert (await flow.login(account, issued["secret"])).account_number == account
    with pytest.raises(LoginRefused):
        await flow.login(account, initial)
    # By mobile number too; the second new password replaces the first.
    await service.reissue_password_by_sms(flow.ctx, {"login": "+79123456789"})
    newest = await flow.secret(account, REISSUE, nth=2)
    assert (await flow.login("89123456789", newest)).account_number == account
    with pytest.raises(LoginRefused):
        await flow.login(account, issued["secret"])
    with pytest.raises(UnknownAccount):
        await service.reissue_password_by_sms(flow.ctx, {"login": "+7 912 999-99-99"})


# --- forgot password: the 15-minute one-time code ---------------------------------------------


async def test_a_code_works_at_14_59_once_and_gives_a_new_password(flow: Any) -> None:
    account, contract, initial = await registered_with_password(flow)
    start = flow.runtime.clock.now()

    sent = await service.request_reset_code(flow.ctx, {"login": contract, "phone": "8 (912) 345-67-89"})

    assert sent.expires_at == start + timedelta(minutes=15)
    assert (sent.purpose, sent.channel) == (CODE, "sms")
    [issued] = await flow.reader.wait_for_type("PasswordIssued", account_number=account, purpose=CODE)
    assert issued.payload.expires_at == start + timedelta(minutes=15)
    code = await flow.secret(account, CODE)
    flow.runtime.clock.advance(timedelta(minutes=14, seconds=59))

    redeemed = await service.redeem_reset_code(flow.ctx, {"login": account, "code": code})

    assert redeemed.purpose is REISSUE
    new_password = await flow.secret(account, REISSUE)
    assert (await flow.login(account, new_password)).account_number == account
    with pytest.raises(LoginRefused):
        await flow.login(account, initial)
    with pytest.raises(ResetCodeRefused) as second_use:
        await service.redeem_reset_code(flow.ctx, {"login": account, "code": code})
    assert second_use.value.reason == "already_used"
    assert (await flow.login(account, new_password)).account_number == account


async def test_a_code_is_refused_at_15_01(flow: Any) -> None:
    account, contract, initial = await registered_with_password(flow)
    await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    code = await flow.secret(account, CODE)
    flow.runtime.clock.advance(timedelta(minutes=15, seconds=1))

    with pytest.raises(ResetCodeRefused) as caught:
        await service.redeem_reset_code(flow.ctx, {"login": contract, "code": code})

    assert caught.value.reason == "expired"
    assert (await flow.login(account, initial)).account_number == account  # nothing changed


async def test_a_newer_code_voids_the_older_one(flow: Any) -> None:
    account, _, _ = await registered_with_password(flow, email="ivan@mail.ru")
    await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    sent = await service.request_reset_code(flow.ctx, {"login": account, "email": "IVAN@mail.ru"})
    assert (sent.channel, sent.masked_destination) == ("email", "i***@mail.ru")
    older, newer = await flow.issued(account, CODE, 2)
    assert newer["destination"] == "ivan@mail.ru"

    if older["secret"] != newer["secret"]:  # one chance in a million they are equal
        with pytest.raises(ResetCodeRefused):
            await service.redeem_reset_code(flow.ctx, {"login": account, "code": older["secret"]})
    await service.redeem_reset_code(flow.ctx, {"login": account, "code": newer["secret"]})
    assert (await flow.login(account, await flow.secret(account, REISSUE))).account_number == account


async def test_a_code_dies_after_five_wrong_guesses(flow: Any) -> None:
    account, _, _ = await registered_with_password(flow)
    await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    code = await flow.secret(account, CODE)

    reasons = []
    for _ in range(5):
        with pytest.raises(ResetCodeRefused) as caught:
            await service.redeem_reset_code(flow.ctx, {"login": account, "code": other_code(code)})
        reasons.append(caught.value.reason)
    with pytest.raises(ResetCodeRefused) as right_too_late:
        await service.redeem_reset_code(flow.ctx, {"login": account, "code": code})

    assert reasons == ["wrong_code"] * 5
    assert right_too_late.value.reason == "too_many_guesses"


async def test_reset_requests_need_the_registered_contact_and_are_throttled(flow: Any) -> None:
    account, contract, _ = await registered_with_password(flow)
    other, _, _ = await registered_with_password(flow, unique=True)

    with pytest.raises(ContactMismatch) as wrong_phone:
        await service.request_reset_code(flow.ctx, {"login": contract, "phone": "+7 912 000-00-01"})
    assert wrong_phone.value.field == "phone"
    with pytest.raises(ContactMismatch):  # no e-mail registered
        await service.request_reset_code(flow.ctx, {"login": contract, "email": "ivan@mail.ru"})
    with pytest.raises(InvalidCommand) as neither:
        await service.request_reset_code(flow.ctx, {"login": contract})
    assert neither.value.fields == ("phone",)
    with pytest.raises(InvalidCommand) as bad_phone:
        await service.request_reset_code(flow.ctx, {"login": contract, "phone": "12"})
    assert bad_phone.value.fields == ("phone",)
    with pytest.raises(InvalidCommand):  # a phone is not an account identifier here
        await service.request_reset_code(flow.ctx, {"login": "+79123456789", "phone": "+79123456789"})
    with pytest.raises(UnknownAccount):
        await service.request_reset_code(flow.ctx, {"login": account_number_from_sequence(999), "phone": "+79123456789"})
    # Two refused + three sent = five requests in the hour: the sixth is throttled...
    for _ in range(3):
        await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    with pytest.raises(TooManyRequests) as throttled:
        await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    assert throttled.value.until is not None
    # ...for that account only.
    sent = await service.request_reset_code(flow.ctx, {"login": other, "phone": "+7 916 001-01-07"})
    assert sent.account_number == other
    with pytest.raises(InvalidCommand) as bad_code:
        await service.redeem_reset_code(flow.ctx, {"login": account, "code": "12ab"})
    assert bad_code.value.fields == ("code",)


async def test_the_account_limit_counts_every_password_and_code_request_together(flow: Any) -> None:
    """Five requests an hour per account, whatever was asked: five SMS passwords leave no room
    for a reset code (each one sends a message), and the other way round."""
    account, _, _ = await registered_with_password(flow)
    other, _, _ = await registered_with_password(flow, unique=True)
    for _ in range(5):
        await service.reissue_password_by_sms(flow.ctx, {"login": account})
    with pytest.raises(TooManyRequests):
        await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    for _ in range(5):
        await service.request_reset_code(flow.ctx, {"login": other, "phone": "+7 916 001-01-07"})
    with pytest.raises(TooManyRequests):
        await service.reissue_password_by_sms(flow.ctx, {"login": other})
    assert len(await flow.issued(account, REISSUE, 5)) == 5
    flow.runtime.clock.advance(timedelta(hours=1, seconds=1))
    assert (await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})).account_number == account


# --- lockout ----------------------------------------------------------------------------------


async def test_repeated_failures_lock_one_account_and_publish_login_locked_once(flow: Any) -> None:
    victim, _, password = await registered_with_password(flow)
    bystander, bystander_contract, bystander_password = await registered_with_password(flow, unique=True)
    clock = flow.runtime.clock

    for _ in range(4):
        with pytest.raises(LoginRefused):
            await flow.login(victim, "WrongPassw0rd")
    with pytest.raises(LoginIsLocked) as locked:
        await flow.login(victim, "WrongPassw0rd")
    lock_ends = clock.now() + timedelta(minutes=15)
    assert locked.value.until == lock_ends
    # During the lock even the right password is refused, unchecked; the flood goes on.
    for _ in range(10):
        with pytest.raises(LoginIsLocked):
            await flow.login(victim, password)
    # Another account is unaffected, by account number, contract number or phone.
    assert (await flow.login(bystander, bystander_password)).account_number == bystander
    assert (await flow.login(bystander_contract, bystander_password)).account_number == bystander
    assert (await flow.login("+7 916 001-01-07", bystander_password)).account_number == bystander

    # Exactly one LoginLocked: flush the victim's partition with a later event of the account.
    await service.reissue_password_by_sms(flow.ctx, {"login": victim})
    await flow.reader.wait_for_type("PasswordIssued", account_number=victim, purpose=REISSUE)
    lock_events = [e for e in flow.reader.envelopes if e.event_type == "LoginLocked"]
    assert len(lock_events) == 1
    assert lock_events[0].account == victim
    assert lock_events[0].payload.locked_until == lock_ends
    assert lock_events[0].payload.failed_attempts == 5

    clock.advance(timedelta(minutes=15))
    new_password = await flow.secret(victim, REISSUE)
    assert (await flow.login(victim, new_password)).account_number == victim


async def test_unknown_or_malformed_logins_are_refused_without_detail(flow: Any) -> None:
    with pytest.raises(LoginRefused):
        await flow.login(account_number_from_sequence(999), "whatever")
    with pytest.raises(InvalidCommand) as typo:
        await flow.login(account_number_from_sequence(999)[:-1] + "0", "whatever")  # check digit wrong
    assert typo.value.fields == ("login",)
    with pytest.raises(InvalidCommand) as empty:
        await flow.login(account_number_from_sequence(999), "")
    assert empty.value.fields == ("password",)


# --- support-assisted recovery ----------------------------------------------------------------


def claim(login: str, **changes: Any) -> dict[str, Any]:
    return {
        "login": login, "operator": "Петрова А. (call centre)", "reason": "lost SMS phone",
        "passport_series": "4508", "passport_number": "731942", "date_of_birth": "1990-05-17",
        **changes,
    }


async def test_support_recovery_checks_passport_data_and_records_the_operator(flow: Any) -> None:
    account, contract, initial = await registered_with_password(flow)
    for _ in range(5):  # the subscriber locked themselves out
        with pytest.raises((LoginRefused, LoginIsLocked)):
            await flow.login(account, "forgotten1A")

    with pytest.raises(RecoveryRefused):
        await service.recover_by_support(flow.ctx, claim(account, passport_number="731943"))
    with pytest.raises(RecoveryRefused):
        await service.recover_by_support(flow.ctx, claim(contract, date_of_birth="1990-05-18"))
    with pytest.raises(InvalidCommand) as no_operator:
        await service.recover_by_support(flow.ctx, claim(account, operator=""))
    assert no_operator.value.fields == ("operator",)
    sent = await service.recover_by_support(flow.ctx, claim(contract, passport_series="45 08"))

    assert (sent.purpose, sent.masked_destination) == (RECOVERY, "+7 *** ***-67-89")
    [restored] = await flow.reader.wait_for_type("AccessRestoredBySupport", account_number=account)
    assert (restored.payload.operator, restored.payload.reason) == ("Петрова А. (call centre)", "lost SMS phone")
    new_password = await flow.secret(account, RECOVERY)
    assert (await flow.login(account, new_password)).account_number == account  # lock lifted
    with pytest.raises(LoginRefused):
        await flow.login(account, initial)
    async with flow.runtime.db.connect() as conn:
        log = await store.support_recovery_log(conn, account)
    assert [(row["operator"], row["reason"], row["outcome"]) for row in log] == [
        ("Петрова А. (call centre)", "lost SMS phone", "refused"),
        ("Петрова А. (call centre)", "lost SMS phone", "refused"),
        ("Петрова А. (call centre)", "lost SMS phone", "accepted"),
    ]
    # Guessing passport data is stopped after three wrong claims a day.
    outcomes = []
    for _ in range(4):
        try:
            await service.recover_by_support(flow.ctx, claim(account, passport_number="000000"))
        except (RecoveryRefused, TooManyRequests) as refusal:
            outcomes.append(type(refusal).__name__)
    assert outcomes == ["RecoveryRefused", "RecoveryRefused", "TooManyRequests", "TooManyRequests"]
    with pytest.raises(TooManyRequests):  # locked: even the right data waits
        await service.recover_by_support(flow.ctx, claim(account))
    async with flow.runtime.db.connect() as conn:
        stored = (await conn.execute(select(store.subscribers))).one()._mapping
    assert "731942" not in repr(dict(stored))


async def test_a_concurrent_flood_locks_once_and_only_its_target(flow: Any) -> None:
    victim, _, password = await registered_with_password(flow)
    bystander, _, bystander_password = await registered_with_password(flow, unique=True)

    outcomes = await asyncio.gather(
        *(flow.login(victim, f"Guess{i:03d}xyz") for i in range(20)),
        flow.login(bystander, bystander_password),
        return_exceptions=True,
    )

    refusals = [type(o).__name__ for o in outcomes[:20]]
    assert refusals.count("LoginRefused") == 4 and refusals.count("LoginIsLocked") == 16
    assert outcomes[20] == commands.LoggedIn(account_number=bystander, contract_number=outcomes[20].contract_number)
    with pytest.raises(LoginIsLocked):
        await flow.login(victim, password)
    await service.reissue_password_by_sms(flow.ctx, {"login": victim})
    await flow.reader.wait_for_type("PasswordIssued", account_number=victim, purpose=REISSUE)
    assert [e.account for e in flow.reader.envelopes if e.event_type == "LoginLocked"] == [victim]


# --- asking never takes a password away -------------------------------------------------------


async def test_a_requested_password_waits_beside_the_current_one_until_used(flow: Any) -> None:
    account, _, initial = await registered_with_password(flow)

    await service.reissue_password_by_sms(flow.ctx, {"login": account})
    requested = await flow.secret(account, REISSUE)

    assert (await flow.login(account, initial)).account_number == account  # still works
    assert (await flow.login(account, requested)).account_number == account  # first use: replaces
    with pytest.raises(LoginRefused):
        await flow.login(account, initial)
    assert (await flow.login(account, requested)).account_number == account
    [replaced] = await flow.reader.wait_for_type("PasswordReplaced", account_number=account)
    assert replaced.payload.purpose is REISSUE


async def test_an_unused_requested_password_expires_and_the_current_one_stays(flow: Any) -> None:
    account, _, initial = await registered_with_password(flow)
    await service.reissue_password_by_sms(flow.ctx, {"login": account})
    requested = await flow.secret(account, REISSUE)

    flow.runtime.clock.advance(timedelta(hours=24))

    with pytest.raises(LoginRefused):
        await flow.login(account, requested)
    assert (await flow.login(account, initial)).account_number == account


async def test_a_redeemed_code_leaves_the_current_password_working_until_the_new_one_is_used(flow: Any) -> None:
    account, _, initial = await registered_with_password(flow)
    await service.request_reset_code(flow.ctx, {"login": account, "phone": "+79123456789"})
    await service.redeem_reset_code(flow.ctx, {"login": account, "code": await flow.secret(account, CODE)})

    assert (await flow.login(account, initial)).account_number == account
    await flow.reader.wait_for_type("ResetCodeRedeemed", account_number=account)
    with pytest.raises(ResetCodeRefused) as nobody:
        await service.redeem_reset_code(flow.ctx, {"login": account_number_from_sequence(999), "code": "123456"})
    assert nobody.value.reason == "no_code"  # as for a subscriber who asked for none


async def test_one_address_is_throttled_whoever_it_names_and_the_audit_says_what_happened(flow: Any) -> None:
    account, _, password = await registered_with_password(flow)
    nobody = account_number_from_sequence(999)
    limit = flow.runtime.settings.address_request_limit
    attacker, neighbour = "203.0.113.9", "198.51.100.20"

    for i in range(limit):
        with pytest.raises((UnknownAccount, ContactMismatch, TooManyRequests)):
            if i % 2:
                await service.reissue_password_by_sms(flow.ctx, {"login": nobody}, source=attacker)
            else:
                await service.request_reset_code(flow.ctx, {"login": account, "phone": "+7 912 000-00-01"},
                                                 source=attacker)
    for login in (account, nobody):
        with pytest.raises(TooManyFromAddress):
            await service.reissue_password_by_sms(flow.ctx, {"login": login}, source=attacker)
    # The neighbour's address is free, but the account had its five requests of the hour (every
    # password and code request counts together); the current password keeps working.
    with pytest.raises(TooManyRequests):
        await service.reissue_password_by_sms(flow.ctx, {"login": account}, source=neighbour)
    assert (await flow.login(account, password)).account_number == account

    async with flow.runtime.db.connect() as conn:
        acts = await store.audit_log(conn, account)
        everything = (await conn.execute(select(store.audit))).all()
    assert [(a["act"], a["outcome"], a["source"]) for a in acts] == [
        ("password_issued", "initial", None),
        *[("reset_code_requested", "contact_mismatch", attacker)] * 5,
        *[("reset_code_requested", "account_throttled", attacker)] * (limit // 2 - 5),
        ("password_by_sms", "account_throttled", neighbour),
    ]
    outcomes = [(row.act, row.outcome) for row in everything if row.account_number is None]
    assert outcomes == [("password_by_sms", "unknown_account")] * (limit // 2) + [
        ("password_by_sms", "address_throttled")] * 2
    assert all(password not in repr(row) and "7912" not in repr(row) for row in everything)


# --- wrong logins lock out their source, never the owner --------------------------------------


async def test_wrong_logins_lock_out_their_address_and_the_owner_logs_in_from_elsewhere(flow: Any) -> None:
    victim, contract, password = await registered_with_password(flow)
    attacker, owner = "203.0.113.7", "198.51.100.7"

    for _ in range(4):
        with pytest.raises(LoginRefused):
            await service.login(flow.ctx, {"login": victim, "password": "WrongPassw0rd"}, source=attacker)
    with pytest.raises(LoginIsLocked):
        await service.login(flow.ctx, {"login": victim, "password": "WrongPassw0rd"}, source=attacker)
    for login in (victim, contract):  # the lock is about the account, however it is named
        with pytest.raises(LoginIsLocked):
            await service.login(flow.ctx, {"login": login, "password": password}, source=attacker)
    assert (await service.login(flow.ctx, {"login": victim, "password": password}, source=owner)).account_number == victim
    assert (await flow.login(victim, password)).account_number == victim  # the CLI, the call centre

    # A second address locked out within the lock period: the owner is not told again.
    for _ in range(5):
        with pytest.raises((LoginRefused, LoginIsLocked)):
            await service.login(flow.ctx, {"login": victim, "password": "WrongPassw0rd"}, source="203.0.113.8")
    await service.reissue_password_by_sms(flow.ctx, {"login": victim})
    await flow.reader.wait_for_type("PasswordIssued", account_number=victim, purpose=REISSUE)
    assert [e.account for e in flow.reader.envelopes if e.event_type == "LoginLocked"] == [victim]
    async with flow.runtime.db.connect() as conn:
        acts = await store.audit_log(conn, victim)
    assert [(a["outcome"], a["source"]) for a in acts if a["act"] == "login_locked"] == [
        ("lock_started", attacker), ("lock_started", "203.0.113.8")]


async def test_one_address_failing_at_many_accounts_is_locked_out_of_every_login(flow: Any) -> None:
    account, _, password = await registered_with_password(flow)
    limit = flow.runtime.settings.login_address_failure_limit
    stuffer = "203.0.113.66"

    answers = []
    for sequence in range(limit):  # a few guesses each at many accounts, none of them locking one
        try:
            await service.login(flow.ctx, {"login": account_number_from_sequence(5000 + sequence // 3),
                                               "password": "Leaked0ne"}, source=stuffer)
        except (LoginRefused, LoginIsLocked) as refusal:
            answers.append(type(refusal).__name__)
    assert answers == ["LoginRefused"] * (limit - 1) + ["LoginIsLocked"]
    with pytest.raises(LoginIsLocked):  # now even a right password from there waits
        await service.login(flow.ctx, {"login": account, "password": password}, source=stuffer)
    assert (await service.login(flow.ctx, {"login": account, "password": password},
                                source="198.51.100.66")).account_number == account
    flow.runtime.clock.advance(timedelta(minutes=15))
    assert (await service.login(flow.ctx, {"login": account, "password": password},
                                source=stuffer)).account_number == account


async def test_under_siege_an_address_that_failed_gets_no_more_guesses_and_a_fresh_one_gets_in(
    start_identity: Any, make_flow: Any, bootstrap_servers: str
) -> None:
    runtime, ctx = await start_identity(login_account_failure_ceiling=8)
    async with runtime:
        async with TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader:
            flow = make_flow(runtime, ctx, reader)
            victim, _, password = await registered_with_password(flow)

            async def attempt(secret: str, address: str) -> str:
                try:
                    await service.login(ctx, {"login": victim, "password": secret}, source=address)
                except (LoginRefused, LoginIsLocked) as refusal:
                    return type(refusal).__name__
                return "LoggedIn"

            for address in ("203.0.113.1", "203.0.113.2"):  # 4 + 4 wrong: the ceiling of 8
                assert [await attempt("Guess1xyz", address) for _ in range(4)] == ["LoginRefused"] * 4
            # Under siege: an address that has failed here is refused unchecked, even when right...
            assert await attempt(password, "203.0.113.1") == "LoginIsLocked"
            # ...a fresh one is checked: one guess, then it has failed too...
            assert await attempt("Guess2xyz", "203.0.113.3") == "LoginRefused"
            assert await attempt(password, "203.0.113.3") == "LoginIsLocked"
            # ...and the right password from an address that has not failed always gets in.
            assert await attempt(password, "198.51.100.9") == "LoggedIn"
            runtime.clock.advance(timedelta(minutes=15))  # the failures left the window
            assert await attempt(password, "203.0.113.1") == "LoggedIn"


async def test_refused_logins_and_codes_cost_the_same_slow_hashes_whether_or_not_the_account_exists(
    flow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, _, _ = await registered_with_password(flow)
    nobody = account_number_from_sequence(999)
    checks: list[str] = []
    verify = SecretHasher.verify
    monkeypatch.setattr(SecretHasher, "verify",
                        lambda self, stored, candidate: checks.append(candidate) or verify(self, stored, candidate))

    async def slow_hashes(command: Any, body: dict[str, str], refusal: type[Exception]) -> int:
        checks.clear()
        with pytest.raises(refusal):
            await command(flow.ctx, body)
        return len(checks)

    for login in (account, nobody):
        # a password and a pending one (tests/identity/test_equal_work.py)
        assert await slow_hashes(service.login, {"login": login, "password": "WrongPassw0rd"}, LoginRefused) == 2
        assert await slow_hashes(service.redeem_reset_code, {"login": login, "code": "123456"}, ResetCodeRefused) == 1
