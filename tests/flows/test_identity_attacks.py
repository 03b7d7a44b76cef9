"""An attacker with only the public API against a victim's account, over the real broker and
PostgreSQL with the four services running: asking for passwords and codes in a loop disturbs
nothing the victim has, and the answers tell the attacker nothing.

The attacker's kinds of request each come from their own address (through the trusted proxy
header), so each kind meets the per-address throttle at the same moment and the answers can be
compared pair by pair.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from billing_cli.history import read_account, summary, timeline
from billing_events.testing.plugin import eventually, operations_token
from identity import service as identity
from identity import store
from identity.domain import account_number_from_sequence

PASSWORD = re.compile(r"\b[A-Za-z2-9]{12}\b")

ROUNDS = 50
WRONG_PHONE = "+7 915 000-00-01"


async def test_an_attacker_can_neither_lock_out_nor_probe_a_victim(suite: Any, form: dict[str, Any]) -> None:
    victim = (await identity.register(suite.identity_context, form)).account_number
    phone = form["mobile_phone"]
    initial = await eventually(lambda: [m for m in suite.messages() if m["template"] == "password_initial"],
                               what="initial password delivered")
    password = PASSWORD.findall(initial[0]["body"])[0]
    ghost = account_number_from_sequence(999_999)  # well formed, nobody's

    def attacker(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.1, {address}"}  # the proxy appends what it saw

    answers: dict[str, list[tuple[int, Any]]] = {name: [] for name in
                                                  ("sms", "sms ghost", "code", "code wrong phone", "code ghost")}
    logins: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{suite.identity.http_port}") as http:
        async def ask(name: str, path: str, body: dict[str, Any], address: str) -> None:
            answer = await http.post(path, json=body, headers=attacker(address))
            answers[name].append((answer.status_code, answer.json()))

        for _ in range(ROUNDS):
            await ask("sms", "/identity/passwords/sms", {"login": victim}, "203.0.113.1")
            await ask("sms ghost", "/identity/passwords/sms", {"login": ghost}, "203.0.113.2")
            await ask("code", "/identity/reset-codes", {"login": victim, "phone": phone}, "203.0.113.3")
            await ask("code wrong phone", "/identity/reset-codes", {"login": victim, "phone": WRONG_PHONE},
                      "203.0.113.4")
            await ask("code ghost", "/identity/reset-codes", {"login": ghost, "phone": phone}, "203.0.113.5")
            login = await http.post("/identity/login", json={"login": victim, "password": password},
                                    headers=attacker("203.0.113.1"))
            logins.append(login.status_code)

    assert logins == [200] * ROUNDS
    assert answers["sms"] == answers["sms ghost"]
    assert answers["code"] == answers["code wrong phone"] == answers["code ghost"]
    first_status, first_body = answers["sms"][0]
    assert first_status == 202 and first_body == answers["code"][0][1]
    assert victim not in str(first_body) and "***" not in str(first_body)
    # The per-address throttle stopped each attacking address after its share.
    assert {status for status, _ in answers["sms"]} == {202, 429}

    # The victim was told, and received a few messages, not fifty.
    told = await eventually(lambda: [m for m in suite.messages() if m["template"] == "password_sms_reissue"],
                            what="the victim told a password was requested")
    assert "запрошен" in told[0]["body"] and "0890" in told[0]["body"]
    elsewhere = [m for m in suite.messages() if m["template"].startswith("password_") and m["to"] != "+79152043371"]
    assert len([m for m in suite.messages() if m["template"] == "password_sms_reissue"]) <= 5
    assert elsewhere == []  # nothing went anywhere but the registered phone
    async with suite.identity.db.connect() as conn:
        acts = await store.audit_log(conn, victim)
    outcomes = {(row["act"], row["outcome"]) for row in acts}
    assert {("password_by_sms", "sent"), ("password_by_sms", "account_throttled"),
            ("reset_code_requested", "contact_mismatch")} <= outcomes

    # Operations see the account's side of it in its history, without a secret.
    history = timeline(await read_account(suite.urls(), suite.service_token(), victim))
    requested = [line.envelope for line in history if line.envelope.event_type == "PasswordIssued"
                 and line.envelope.payload.purpose.value == "sms_reissue"]
    assert 1 <= len(requested) <= 5  # the account's own limit: five an hour
    assert all(password not in summary(e) and "purpose=sms_reissue" in summary(e) for e in requested)


ATTACKS = 20


async def test_wrong_logins_lock_out_their_source_not_the_owner(suite: Any, form: dict[str, Any]) -> None:
    victim = (await identity.register(suite.identity_context, form)).account_number
    initial = await eventually(lambda: [m for m in suite.messages() if m["template"] == "password_initial"],
                               what="initial password delivered")
    password = PASSWORD.findall(initial[0]["body"])[0]
    ghost = account_number_from_sequence(999_998)  # well formed, nobody's

    def via_proxy(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": address}

    attacks: list[tuple[int, Any]] = []
    probes: list[tuple[int, Any]] = []
    logins: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{suite.identity.http_port}") as http:
        async def attempt(login: str, secret: str, address: str) -> httpx.Response:
            return await http.post("/identity/login", json={"login": login, "password": secret},
                                   headers=via_proxy(address))

        def seen(answer: httpx.Response) -> tuple[int, Any]:
            body = answer.json()
            return answer.status_code, (body.get("code"), body.get("message"), "until" in body)

        threshold = suite.identity.settings.login_lock_threshold
        for round_ in range(ATTACKS):
            attacks.append(seen(await attempt(victim, f"Guess{round_:03d}xyz", "203.0.113.10")))
            probes.append(seen(await attempt(ghost, f"Guess{round_:03d}xyz", "203.0.113.11")))
            if round_ >= threshold - 1:  # from the moment the attacker's lock is on
                logins.append((await attempt(victim, password, "198.51.100.20")).status_code)

    assert logins == [200] * (ATTACKS - threshold + 1)  # the owner, from elsewhere, is never locked out
    statuses = [status for status, _ in attacks]
    assert statuses == [401] * (threshold - 1) + [429] * (ATTACKS - threshold + 1)
    # The attacker cannot tell the victim's account from nobody's, by status or by body.
    assert attacks == probes
    # The owner was told of the lock once, however long the attacker went on.
    locked = await eventually(lambda: [m for m in suite.messages() if m["template"] == "login_locked"],
                              what="the owner told about the lock")
    assert len(locked) == 1
    async with suite.identity.db.connect() as conn:
        acts = await store.audit_log(conn, victim)
    assert ("login_locked", "lock_started", "203.0.113.10") in {(a["act"], a["outcome"], a["source"]) for a in acts}


async def test_guessing_reset_codes_tells_a_prober_nothing(suite: Any, form: dict[str, Any]) -> None:
    victim = (await identity.register(suite.identity_context, form)).account_number
    ghost = account_number_from_sequence(999_997)
    guesses = suite.identity.settings.reset_code_max_wrong_guesses + 2  # past the code's death
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{suite.identity.http_port}") as http:
        asked = await http.post("/identity/reset-codes", json={"login": victim, "phone": form["mobile_phone"]},
                                headers={"X-Forwarded-For": "198.51.100.30"})  # the owner asks for a code
        assert asked.status_code == 202

        async def guess(login: str, address: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
            answer = await http.post("/identity/reset-codes/redeem", json={"login": login, "code": "000000"},
                                     headers={"X-Forwarded-For": address, **(headers or {})})
            return answer.status_code, answer.json()

        at_victim = [await guess(victim, "203.0.113.20") for _ in range(guesses)]
        at_ghost = [await guess(ghost, "203.0.113.21") for _ in range(guesses)]
        token = operations_token(suite.identity.clock)
        operations = await guess(victim, "10.0.0.1", {"Authorization": f"Bearer {token}"})

    assert at_victim == at_ghost
    assert {(status, body["code"], body["reason"]) for status, body in at_victim} == {
        (400, "reset_code_refused", "invalid_code")}
    assert operations[1]["reason"] == "too_many_guesses"  # operations are told what happened
