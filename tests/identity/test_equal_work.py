"""No existence by timing: a wrong login, or an anonymous request, does the same slow hash work
whatever is pending for the account and however many accounts a phone has. Counted (every
argon2 check the service makes) and timed (medians of interleaved samples, as a ratio)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.testing.kafka_probe import TopicReader
from identity import service
from identity.domain import LoginRefused, account_number_from_sequence
from identity.security import SecretHasher

SHARED_PHONE, LONE_PHONE = "+7 912 555-01-01", "+7 912 555-02-02"


class SlowWork:
    """Counts the argon2 hashes and checks the service makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("hash", "verify"):
            original = getattr(SecretHasher, name)
            monkeypatch.setattr(SecretHasher, name, self._counting(original))

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(hasher: SecretHasher, *args: Any) -> Any:
            self.count += 1
            return original(hasher, *args)
        return counted

    async def of(self, call: Awaitable[Any]) -> int:
        """The slow hashes ``call`` makes (its refusal swallowed: every call here is refused)."""
        before = self.count
        try:
            await call
        except Exception:
            pass
        return self.count - before


async def _accounts(flow: Any) -> dict[str, str]:
    """One account with a password asked for (pending), one without; a phone with three
    accounts, a phone with one."""
    plain = (await flow.register(unique=True)).account_number
    pending = (await flow.register(unique=True)).account_number
    await service.reissue_password_by_sms(flow.ctx, {"login": pending})
    await flow.reader.wait_for_type("PasswordIssued", account_number=pending, purpose=PasswordPurpose.SMS_REISSUE)
    for _ in range(3):
        await flow.register(unique=True, mobile_phone=SHARED_PHONE)
    await flow.register(unique=True, mobile_phone=LONE_PHONE)
    return {"plain": plain, "pending": pending}


def _wrong_login(ctx: Any, login: str, source: str) -> Awaitable[Any]:
    return service.login(ctx, {"login": login, "password": "WrongPassw0rd"}, source=source)


async def test_every_wrong_login_and_anonymous_request_does_the_same_number_of_slow_hashes(
    flow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = await _accounts(flow)
    nobody = account_number_from_sequence(999)
    await flow.ctx.verify_decoy("warm")  # the decoy hash is made once, at its first use
    work = SlowWork(monkeypatch)
    per_phone = flow.ctx.settings.login_phone_accounts

    by_number = [await work.of(_wrong_login(flow.ctx, login, "203.0.113.1"))
                 for login in (accounts["plain"], accounts["pending"], nobody)]
    assert by_number == [2, 2, 2]  # a password and a pending one, or the decoy in their place
    by_phone = [await work.of(_wrong_login(flow.ctx, phone, "203.0.113.2"))
                for phone in (LONE_PHONE, SHARED_PHONE, "+7 912 555-03-03")]
    assert by_phone == [2 * per_phone] * 3
    # A new password by SMS: one hash per account a phone may name, sent or not.
    sms = [await work.of(service.reissue_password_by_sms(flow.ctx, {"login": phone}, source="203.0.113.3"))
           for phone in (LONE_PHONE, SHARED_PHONE, "+7 912 555-03-03")]
    assert sms == [per_phone] * 3
    assert [await work.of(service.reissue_password_by_sms(flow.ctx, {"login": login}, source="203.0.113.3"))
            for login in (accounts["plain"], nobody)] == [1, 1]


async def test_a_wrong_login_takes_as_long_with_a_pending_password_and_for_a_phone_with_three_accounts(
    start_identity: Any, make_flow: Any, bootstrap_servers: str
) -> None:
    # Real argon2id cost, so the hashing (not the database) is what a timing would show.
    runtime, ctx = await start_identity(hashing_profile="production", login_lock_threshold=1000)
    async with runtime:
        async with TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader:
            accounts = await _accounts(make_flow(runtime, ctx, reader))
            await ctx.verify_decoy("warm")

            async def ratio(slower: str, faster: str, rounds: int) -> float:
                """The median over ``rounds`` of the ratio of two wrong logins timed back to back,
                so a slow moment of the shared machine weighs on both sides of each ratio."""
                ratios = []
                for round_ in range(rounds):
                    taken = []
                    for login in (slower, faster):
                        started = time.perf_counter()
                        with pytest.raises(LoginRefused):
                            await _wrong_login(ctx, login, f"198.51.100.{round_}")
                        taken.append(time.perf_counter() - started)
                    ratios.append(taken[0] / taken[1])
                return statistics.median(ratios)

            with_pending = await ratio(accounts["pending"], accounts["plain"], rounds=9)
            three_accounts = await ratio(SHARED_PHONE, LONE_PHONE, rounds=5)
    assert abs(with_pending - 1) < 0.10, with_pending
    assert abs(three_accounts - 1) < 0.10, three_accounts
