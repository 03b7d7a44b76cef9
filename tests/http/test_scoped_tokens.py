"""Service tokens are scoped, operators sign with their own keys, and identity's revocation list
reaches every service: a token is worth only what it was minted for, for as long as nobody
revoked it.

The services run in-process over the real broker and PostgreSQL (the revocation travels as
TokenRevoked from identity to the ledger)."""

from __future__ import annotations

import base64

from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from billing_events import metrics
from billing_events.auth import MAX_OPERATOR_TOKEN_LIFETIME, OPERATOR_ISSUER, SCOPES
from billing_events.keys import key_id
from billing_events.testing.plugin import (
    TEST_OPERATOR,
    TEST_OPERATOR_PRIVATE_KEY,
    TEST_TOKEN_PRIVATE_KEY,
    eventually,
    operations_token,
    operator_signer,
    token_minter,
)

ACCOUNT = "100000000008"
TRANSACTION = "01900000-0000-7000-8000-000000000000"
REASON = {"reason": "a payment credited twice"}

# Every service-only route, the scope it asks for and a body that gets it past validation.
SERVICE_ROUTES = [
    ("identity", "POST", "/identity/subscribers", {"contract_accepted": True}, "identity:register"),
    ("identity", "POST", "/identity/support/recoveries", {"login": ACCOUNT}, "identity:recover"),
    ("identity", "POST", "/identity/revocations", {"jti": "x", "reason": "r"}, "identity:revoke"),
    ("identity", "GET", f"/identity/accounts/{ACCOUNT}/events", None, "identity:history"),
    ("ledger", "POST", "/ledger/replays", {"account": ACCOUNT}, "ledger:replay"),
    ("ledger", "POST", f"/ledger/suspense/{TRANSACTION}/resolve", {**REASON, "target_account": ACCOUNT},
     "ledger:resolve"),
    ("ledger", "POST", f"/ledger/transactions/{TRANSACTION}/reverse", REASON, "ledger:reverse"),
    ("ledger", "GET", f"/ledger/accounts/{ACCOUNT}/events", None, "ledger:history"),
    ("ledger", "GET", f"/ledger/accounts/{ACCOUNT}", None, "ledger:accounts"),
    ("tariff", "POST", "/tariff/billing-days/close", {}, "tariff:close-days"),
    ("tariff", "GET", f"/tariff/accounts/{ACCOUNT}", None, "tariff:accounts"),
    ("tariff", "GET", f"/tariff/accounts/{ACCOUNT}/events", None, "tariff:history"),
    ("notifier", "GET", f"/notifier/accounts/{ACCOUNT}/deliveries", None, "notifier:accounts"),
    ("notifier", "GET", f"/notifier/accounts/{ACCOUNT}/events", None, "notifier:history"),
]


def _private(key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(key))


async def _call(services: Any, service: str, method: str, path: str, body: Any, token: str) -> Any:
    async with services.client(service, token) as client:
        return await client.request(method, path, json=body)


def _problem(answer: Any) -> tuple[int, str | None]:
    return answer.status_code, answer.json().get("code") if answer.status_code >= 400 else None


async def test_a_registration_token_is_refused_at_the_ledgers_reverse(services: Any) -> None:
    await services.start("identity", "ledger")
    minter = token_minter(services.clock)
    registrations, _ = minter.issue("service", "cabinet-backend", audience=["identity"], scopes=["identity:register"])
    reverse = f"/ledger/transactions/{TRANSACTION}/reverse"
    refused = await _call(services, "ledger", "POST", reverse, REASON, registrations)
    assert _problem(refused) == (403, "wrong_audience")
    # The same token registers subscribers at identity (past the token: the form is refused, not the caller).
    registering = await _call(services, "identity", "POST", "/identity/subscribers", {"contract_accepted": True},
                              registrations)
    assert registering.status_code == 422
    # Even for the ledger, a token reverses only with the ledger:reverse scope.
    reader, _ = minter.issue("service", "call-centre", audience=["identity", "ledger"],
                             scopes=["identity:register", "ledger:accounts"])
    missing = await _call(services, "ledger", "POST", reverse, REASON, reader)
    assert _problem(missing) == (403, "missing_scope")
    assert 'scope="ledger:reverse"' in missing.headers["www-authenticate"]
    reverser, _ = minter.issue("service", "operations", audience=["ledger"], scopes=["ledger:reverse"])
    assert _problem(await _call(services, "ledger", "POST", reverse, REASON, reverser))[0] not in (401, 403)


@pytest.mark.parametrize(("service", "method", "path", "body", "scope"), SERVICE_ROUTES,
                         ids=[f"{method} {path}" for _, method, path, _, _ in SERVICE_ROUTES])
async def test_each_service_only_route_asks_for_its_own_scope(services: Any, service: str, method: str, path: str,
                                                             body: Any, scope: str) -> None:
    await services.start(service)
    every_other = tuple(other for other in SCOPES if other != scope)
    without = await _call(services, service, method, path, body, operations_token(services.clock, scopes=every_other))
    assert _problem(without) == (403, "missing_scope")
    only = await _call(services, service, method, path, body, operations_token(services.clock, scopes=(scope,)))
    assert only.status_code not in (401, 403), only.text


async def test_an_operator_signs_with_their_own_key_and_every_use_is_audited(services: Any,
                                                                              rendered_logs: Any) -> None:
    await services.start("ledger")
    operator = operator_signer(services.clock)
    token, expires = operator.issue(["ledger"], ["ledger:reverse", "ledger:accounts"])
    assert expires - services.clock.now() == MAX_OPERATOR_TOKEN_LIFETIME
    with pytest.raises(ValueError, match="at most"):
        operator.issue(["ledger"], ["ledger:reverse"], timedelta(minutes=16))
    audited = metrics.OPERATOR_REQUESTS.labels("ledger", TEST_OPERATOR, "accepted")
    before = audited._value.get()
    reverse = f"/ledger/transactions/{TRANSACTION}/reverse"
    accepted = await _call(services, "ledger", "POST", reverse, REASON, token)
    assert accepted.status_code not in (401, 403), accepted.text
    assert audited._value.get() == before + 1
    [line] = [line for line in rendered_logs.lines() if line.get("event") == "operator request"]
    assert (line["operator"], line["path"], line["jti"]) == (TEST_OPERATOR, reverse,
                                                              jwt.decode(token, options={"verify_signature": False})["jti"])
    # The body's free-text operator is the token's, or refused.
    named_other = await _call(services, "ledger", "POST", reverse, {**REASON, "operator": "someone-else"}, token)
    assert _problem(named_other) == (403, "requester_mismatch")
    # An operator's token is never a subscriber's, and identity's key never makes an operator's.
    claims = jwt.decode(token, options={"verify_signature": False})
    forgeries = {
        "a subscriber token from the operator's key": {**claims, "iss": "billing", "role": "subscriber", "sub": ACCOUNT},
        "another operator's name": {**claims, "sub": "someone-else"},
        "a day-long operator token": {**claims, "exp": claims["iat"] + 86_400},
    }
    operator_key = _private(TEST_OPERATOR_PRIVATE_KEY)
    for what, forged in forgeries.items():
        forged_token = jwt.encode(forged, operator_key, algorithm="EdDSA", headers=jwt.get_unverified_header(token))
        answer = await _call(services, "ledger", "GET", f"/ledger/accounts/{ACCOUNT}", None, forged_token)
        assert _problem(answer) == (401, "invalid_token"), what
    identity_key = _private(TEST_TOKEN_PRIVATE_KEY)
    with_identity_key = jwt.encode({**claims, "iss": OPERATOR_ISSUER}, identity_key, algorithm="EdDSA",
                                   headers={"kid": key_id(identity_key.public_key())})
    answer = await _call(services, "ledger", "GET", f"/ledger/accounts/{ACCOUNT}", None, with_identity_key)
    assert _problem(answer) == (401, "invalid_token")


async def test_a_revoked_operator_and_a_revoked_token_are_refused_at_another_service(services: Any) -> None:
    await services.start("identity", "ledger")
    operator_token, _ = operator_signer(services.clock).issue(["ledger"], ["ledger:accounts"])
    account = f"/ledger/accounts/{ACCOUNT}"
    assert (await _call(services, "ledger", "GET", account, None, operator_token)).status_code == 404  # not registered
    service_token = operations_token(services.clock, "cabinet-backend", scopes=("ledger:accounts",))
    revoker = operations_token(services.clock, "security-desk", scopes=("identity:revoke",))

    refused_revoker = await _call(services, "identity", "POST", "/identity/revocations",
                                  {"operator": TEST_OPERATOR, "reason": "laptop stolen"},
                                  operations_token(services.clock, scopes=("identity:register",)))
    assert _problem(refused_revoker) == (403, "missing_scope")
    revoked = await _call(services, "identity", "POST", "/identity/revocations",
                          {"operator": TEST_OPERATOR, "reason": "laptop stolen"}, revoker)
    assert revoked.status_code == 201 and revoked.json() == {"kind": "operator", "value": TEST_OPERATOR}
    jti = jwt.decode(service_token, options={"verify_signature": False})["jti"]
    assert (await _call(services, "identity", "POST", "/identity/revocations", {"jti": jti, "reason": "leaked"},
                        revoker)).status_code == 201

    async def refused(token: str) -> bool:
        return _problem(await _call(services, "ledger", "GET", account, None, token)) == (401, "token_revoked")

    await eventually(lambda: refused(operator_token), what="the ledger refuses the revoked operator")
    await eventually(lambda: refused(service_token), what="the ledger refuses the revoked token")
    # A new token of the revoked operator is refused too; other tokens are not.
    fresh, _ = operator_signer(services.clock).issue(["ledger"], ["ledger:accounts"])
    assert await refused(fresh)
    other = operations_token(services.clock, "cabinet-backend", scopes=("ledger:accounts",))
    assert (await _call(services, "ledger", "GET", account, None, other)).status_code == 404
