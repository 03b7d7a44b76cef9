"""Every route a subscriber's token may call, read from the services' own OpenAPI documents
(``x-callers``), at its door: anonymous 401, an expired token 401, a revoked token 401 (a signed
out session at identity; a revoked service token elsewhere, since other services cannot ask
identity about a subscriber's session), another subscriber 403, and the owner let through to the
service (here an empty database: the route's own answer, never 401 or 403). A route added for
subscribers without an entry here fails the test, so none goes unchecked.

What each route answers its owner is tested with the route (tests/ledger, tests/tariff,
tests/identity/test_cabinet.py, tests/notifier)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from billing_events import revocations
from billing_contracts.catalog.identity import RevokedKind, TokenRevoked
from billing_events.clock import ManualClock
from billing_events.schema import plumbing_metadata
from billing_events.testing.plugin import operations_token, token_minter

MINE, OTHER = "100000000008", "100000000016"
TRANSACTION = "01900000-0000-7000-8000-000000000000"
SERVICES = ("identity", "ledger", "tariff", "notifier")
ACCOUNT_PARAMETERS = ("{number}", "{account}", "{account_number}")
# (service, method, path template) -> (query, body): a request the route takes, but for who asks.
REQUESTS: dict[tuple[str, str, str], tuple[str, Any]] = {
    ("identity", "POST", "/identity/sign-out"): ("", None),
    ("identity", "GET", "/identity/me"): ("", None),
    ("identity", "GET", "/identity/me/accounts"): ("", None),
    ("identity", "POST", "/identity/me/accounts/{account}/token"): ("", None),
    ("identity", "PUT", "/identity/me/password"): ("", {"current_password": "old-one", "new_password": "a-new-one-42"}),
    ("identity", "POST", "/identity/me/contact-changes"): ("", {"email": "new@example.ru"}),
    ("identity", "POST", "/identity/me/contact-changes/confirm"): ("", {"code": "123456"}),
    ("identity", "PUT", "/identity/me/language"): ("", {"language": "sk"}),
    ("identity", "PUT", "/identity/me/notices"): ("", {"turned_off": []}),
    ("ledger", "GET", "/ledger/campaigns"): ("", None),
    ("ledger", "GET", "/ledger/rewards"): ("", None),
    ("ledger", "GET", "/ledger/accounts/{number}"): ("", None),
    ("ledger", "GET", "/ledger/accounts/{number}/statement"): ("?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", None),
    ("ledger", "GET", "/ledger/accounts/{number}/bonus-history"): ("", None),
    ("ledger", "GET", "/ledger/accounts/{number}/payments/{transaction_id}/receipt"): ("", None),
    ("ledger", "GET", "/ledger/accounts/{number}/payments/{transaction_id}/receipt.pdf"): ("", None),
    ("ledger", "POST", "/ledger/accounts/{number}/transfers"): ("", {"to_account": MINE, "amount": {"minor": 1}}),
    ("ledger", "POST", "/ledger/accounts/{number}/bonus-redemptions"): ("", {"item": "discount-100"}),
    ("ledger", "PUT", "/ledger/accounts/{number}/payment-type"): (
        "", {"payment_type": "credit", "credit_limit": {"minor": 100}}),
    ("ledger", "POST", "/ledger/card-payments"): ("", {"amount": {"minor": 100_000}}),
    ("ledger", "GET", "/ledger/card-payments/{intent_id}"): ("", None),
    ("tariff", "GET", "/tariff/catalog"): ("", None),
    ("tariff", "GET", "/tariff/regions/{region}/plans"): ("", None),
    ("tariff", "GET", "/tariff/regions/{region}/options"): ("", None),
    ("tariff", "GET", "/tariff/regions/{region}/equipment"): ("", None),
    ("tariff", "GET", "/tariff/accounts/{account}"): ("", None),
    ("tariff", "GET", "/tariff/accounts/{account}/tariff-history"): ("", None),
    ("tariff", "GET", "/tariff/accounts/{account}/forecast"): ("", None),
    ("tariff", "POST", "/tariff/accounts/{account}/plan"): ("", {"plan": "internet-100"}),
    ("tariff", "PUT", "/tariff/accounts/{account}/plan"): ("", {"plan": "internet-100"}),
    ("tariff", "POST", "/tariff/accounts/{account}/options"): ("", {"option": "tv-basic"}),
    ("tariff", "DELETE", "/tariff/accounts/{account}/options/{option}"): ("", None),
    ("tariff", "POST", "/tariff/accounts/{account}/equipment"): ("", {"equipment": "router"}),
    ("tariff", "DELETE", "/tariff/accounts/{account}/equipment/{equipment}"): ("", None),
    ("tariff", "POST", "/tariff/accounts/{account}/voluntary-block"): ("", {"days": 3}),
    ("tariff", "DELETE", "/tariff/accounts/{account}/voluntary-block"): ("", None),
    ("notifier", "GET", "/notifier/accounts/{account_number}/deliveries"): ("", None),
}
OTHER_PARAMETERS = {"{transaction_id}": TRANSACTION, "{region}": "moscow", "{option}": "tv-basic",
                    "{equipment}": "router", "{intent_id}": TRANSACTION}


@pytest.fixture
async def doors(services: Any) -> dict[str, Any]:
    """The four services built, not started, on SQLite holding their whole schema and no data."""
    runtimes = {name: await services.build(name, database="sqlite") for name in SERVICES}
    for runtime in runtimes.values():
        await runtime.db.create_schema(plumbing_metadata)
        await runtime.db.create_schema(runtime.metadata)
    return runtimes


def subscriber_routes(runtimes: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    return [(name, method.upper(), path, operation["x-callers"])
            for name, runtime in runtimes.items()
            for path, operations in runtime.http_app.openapi()["paths"].items()
            for method, operation in operations.items()
            if "subscriber" in operation.get("x-callers", ())]


def _url(path: str, account: str, query: str) -> str:
    for parameter in ACCOUNT_PARAMETERS:
        path = path.replace(parameter, account)
    for parameter, value in OTHER_PARAMETERS.items():
        path = path.replace(parameter, value)
    return path + query


def _refusal(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json().get("code") if answer.headers.get("content-type") == "application/json" else ""


async def test_every_subscriber_route_refuses_at_its_door_whoever_is_not_its_owner(doors: dict[str, Any],
                                                                                  services: Any) -> None:
    routes = subscriber_routes(doors)
    assert {(name, method, path) for name, method, path, _ in routes} == set(REQUESTS)
    clock: ManualClock = services.clock
    mine = token_minter(clock).issue("subscriber", MINE, session="signed-out-or-never-started")[0]
    expired = token_minter(ManualClock(clock.now() - timedelta(hours=1))).issue("subscriber", MINE)[0]
    other = token_minter(clock).issue("subscriber", OTHER)[0]
    revoked_service = operations_token(clock, "cabinet-backend")
    for name in SERVICES:  # as every service keeps identity's TokenRevoked
        async with doors[name].db.transaction() as conn:
            await revocations.keep(conn, [TokenRevoked(
                kind=RevokedKind.TOKEN, value=jwt.decode(revoked_service, options={"verify_signature": False})["jti"],
                revoked_by="security-desk", reason="leaked")], clock=clock, service=name)
    checked: list[str] = []
    for name, method, path, callers in routes:
        query, body = REQUESTS[(name, method, path)]
        has_account = any(parameter in path for parameter in ACCOUNT_PARAMETERS)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=doors[name].http_app),
                                     base_url=f"http://{name}") as http:
            async def ask(token: str | None, account: str = MINE) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return await http.request(method, _url(path, account, query), json=body, headers=headers)

            where = f"{method} {path}"
            if "anonymous" in callers:  # a public read: every caller reads the same
                assert (await ask(None)).status_code == 200, where
                continue
            assert _refusal(await ask(None)) == (401, "missing_token"), where
            assert _refusal(await ask(expired)) == (401, "token_expired"), where
            if name == "identity":  # the subscriber's own routes there check the sign-in is open
                assert _refusal(await ask(mine)) == (401, "token_revoked"), where
            else:
                assert _refusal(await ask(revoked_service)) == (401, "token_revoked"), where
                assert (await ask(mine)).status_code in (200, 404, 409, 422), where  # the route's own answer
            if has_account and name != "identity":  # identity's /me routes name no account but the token's
                assert _refusal(await ask(other)) == (403, "wrong_account"), where
            checked.append(where)
    assert len(checked) == len([route for route in routes if "anonymous" not in route[3]])
