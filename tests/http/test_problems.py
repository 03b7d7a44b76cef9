"""Every service's HTTP door refuses in the one shape, and asks for the right token on every
route: no token 401, another account's token 403, an operator's route 403 for a subscriber.
The OpenAPI documents say so (Problem bodies, bearer security where a token is needed).

These refusals come before any work, so the runtimes are built but not started."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from billing_events.auth import INVALID_TOKEN
from billing_events.schema import plumbing_metadata
from billing_events.testing.plugin import bearer_token

MINE, OTHER = "100000000008", "100000000016"
TRANSACTION = "01900000-0000-7000-8000-000000000000"
OPERATOR = {"operator": "op", "reason": "why"}

# (service, method, path, body): every route that acts for one account, on OTHER's account.
ACCOUNT_ROUTES = [
    ("ledger", "GET", f"/ledger/accounts/{OTHER}", None),
    ("ledger", "GET", f"/ledger/accounts/{OTHER}/statement?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", None),
    ("ledger", "POST", f"/ledger/accounts/{OTHER}/transfers", {"to_account": MINE, "amount": {"minor": 1}}),
    ("ledger", "PUT", f"/ledger/accounts/{OTHER}/payment-type",
     {"payment_type": "credit", "credit_limit": {"minor": 100}}),
    ("tariff", "GET", f"/tariff/accounts/{OTHER}", None),
    ("tariff", "POST", f"/tariff/accounts/{OTHER}/plan", {"plan": "internet-100"}),
    ("tariff", "PUT", f"/tariff/accounts/{OTHER}/plan", {"plan": "internet-100"}),
    ("tariff", "POST", f"/tariff/accounts/{OTHER}/options", {"option": "tv-basic"}),
    ("tariff", "DELETE", f"/tariff/accounts/{OTHER}/options/tv-basic", None),
    ("tariff", "POST", f"/tariff/accounts/{OTHER}/voluntary-block", {"days": 3}),
    ("tariff", "DELETE", f"/tariff/accounts/{OTHER}/voluntary-block", None),
    ("notifier", "GET", f"/notifier/accounts/{OTHER}/deliveries", None),
]
# Operations' routes: a service token only, whoever's account they touch.
OPERATOR_ROUTES = [
    ("identity", "POST", "/identity/subscribers", {"contract_accepted": True}),
    ("identity", "POST", "/identity/support/recoveries", {"login": MINE}),
    ("ledger", "POST", "/ledger/replays", {"account": MINE}),
    ("ledger", "POST", f"/ledger/suspense/{TRANSACTION}/resolve", {**OPERATOR, "target_account": MINE}),
    ("ledger", "POST", f"/ledger/transactions/{TRANSACTION}/reverse", OPERATOR),
]
PUBLIC_OPERATIONS = {
    "identity": {"POST /identity/login", "POST /identity/passwords/sms", "POST /identity/reset-codes",
                 "POST /identity/reset-codes/redeem", "POST /identity/registrations", "POST /identity/tokens/refresh"},
    "ledger": {"GET /ledger/campaigns", "GET /ledger/rewards",
               # the acquirer's signature is the callback's credential; the development page's is none
               "POST /ledger/card-payments/callbacks", "GET /ledger/dev-acquirer/{intent_id}",
               "POST /ledger/dev-acquirer/{intent_id}/{action}"},
    "tariff": {"GET /tariff/catalog", "GET /tariff/regions/{region}/plans", "GET /tariff/regions/{region}/options",
               "GET /tariff/regions/{region}/equipment"},
}
HEALTH = {"GET /health/live", "GET /health/ready", "GET /metrics"}


@pytest.fixture
async def doors(services: Any) -> Any:
    """name -> (client factory by token, runtime) for the four services, built, not started:
    their databases hold only the plumbing (the revocation list every token check reads)."""
    runtimes = {name: await services.build(name, database="sqlite")
                for name in ("identity", "ledger", "tariff", "notifier")}
    for runtime in runtimes.values():
        await runtime.db.create_schema(plumbing_metadata)

    def client(name: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtimes[name].http_app),
                                 base_url=f"http://{name}", headers=headers or {})

    def bearer(role: str, subject: str) -> dict[str, str]:
        token = bearer_token(runtimes["identity"].clock, role, subject)
        return {"Authorization": f"Bearer {token}"}

    return client, bearer, runtimes


def _is_problem(answer: httpx.Response, status: int, code: str) -> None:
    body = answer.json()
    assert (answer.status_code, body.get("code")) == (status, code), answer.text
    assert set(body) >= {"code", "message", "errors"} and isinstance(body["message"], str) and body["message"]


@pytest.mark.parametrize(("service", "method", "path", "body"), ACCOUNT_ROUTES + OPERATOR_ROUTES,
                         ids=[f"{method} {path.split('?')[0]}" for _, method, path, _ in ACCOUNT_ROUTES + OPERATOR_ROUTES])
async def test_no_token_is_401_and_a_subscriber_token_for_another_account_is_403(
        doors: Any, service: str, method: str, path: str, body: Any) -> None:
    client, bearer, _ = doors
    async with client(service) as anonymous:
        answer = await anonymous.request(method, path, json=body)
        _is_problem(answer, 401, "missing_token")
        assert answer.headers["www-authenticate"] == "Bearer"
        forged = await anonymous.request(method, path, json=body, headers={"Authorization": "Bearer abc.def.ghi"})
        _is_problem(forged, 401, "invalid_token")
        assert forged.json()["message"] == INVALID_TOKEN  # the suite's words, not the JWT library's
    async with client(service, bearer("subscriber", MINE)) as subscriber:
        refused = await subscriber.request(method, path, json=body)
        expected = "wrong_account" if (service, method, path, body) in ACCOUNT_ROUTES else "service_only"
        _is_problem(refused, 403, expected)


async def test_unknown_routes_methods_and_malformed_requests_are_problems_too(doors: Any) -> None:
    client, bearer, _ = doors
    async with client("ledger", bearer("service", "ops")) as ledger:
        _is_problem(await ledger.get("/ledger/nowhere"), 404, "not_found")
        _is_problem(await ledger.delete(f"/ledger/accounts/{MINE}"), 405, "method_not_allowed")
        not_json = await ledger.post(f"/ledger/accounts/{MINE}/transfers", content=b"{",
                                     headers={"Content-Type": "application/json"})
        _is_problem(not_json, 422, "invalid_request")
        assert not_json.json()["errors"] == [{"field": "body", "message": "The body is not valid JSON",
                                              "code": "json_invalid"}]
        several = await ledger.post(f"/ledger/accounts/{MINE}/transfers",
                                    json={"to_account": "+7 915 204-33-71", "amount": {"minor": "x", "currency": "RUB"}})
        _is_problem(several, 422, "invalid_request")
        assert [e["field"] for e in several.json()["errors"]] == ["to_account", "amount.minor"]
        assert "204-33-71" not in several.text  # what was sent (maybe a phone number) is never echoed
        blank = await ledger.post(f"/ledger/transactions/{TRANSACTION}/reverse", json={"operator": "op", "reason": " \x1c"})
        _is_problem(blank, 422, "invalid_request")
        assert blank.json()["errors"][0]["field"] == "reason"
        huge = await ledger.put(f"/ledger/accounts/{MINE}/payment-type",
                                json={"payment_type": "credit", "credit_limit": {"minor": 10**19}})
        _is_problem(huge, 422, "invalid_request")
        assert huge.json()["errors"][0]["field"] == "credit_limit.minor"


WITH_BODY = [(service, method, path) for service, method, path, body in ACCOUNT_ROUTES + OPERATOR_ROUTES
             if body is not None] + [("identity", "POST", "/identity/revocations")]


@pytest.mark.parametrize("sent", [b"\xff\xfe not utf-8", b"{", b"[1, 2", b"x" * 5000])
async def test_the_token_is_checked_before_the_body_is_read(doors: Any, sent: bytes) -> None:
    """An anonymous caller learns nothing about a body nobody allowed it to send: 401, never 400/422."""
    client, bearer, _ = doors
    for service, method, path in WITH_BODY:
        for headers in ({}, {"Authorization": "Bearer not.a.token"}):
            async with client(service, headers) as http:
                answer = await http.request(method, path, content=sent, headers={"Content-Type": "application/json"})
            assert answer.status_code == 401, (method, path, answer.text)
        async with client(service, bearer("subscriber", MINE)) as http:  # a valid token: the body's turn
            answer = await http.request(method, path, content=sent, headers={"Content-Type": "application/json"})
        assert answer.status_code in (400, 403, 422), (method, path, answer.text)


async def test_the_openapi_documents_problems_and_bearer_tokens(doors: Any) -> None:
    _, _, runtimes = doors
    for name, runtime in runtimes.items():
        document = runtime.http_app.openapi()
        schemas = document["components"]["schemas"]
        assert "HTTPValidationError" not in schemas and {"Problem", "FieldProblem"} <= set(schemas), name
        assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                label = f"{method.upper()} {path}"
                for status, answer in operation["responses"].items():
                    if status.startswith("4"):
                        assert answer["content"]["application/json"]["schema"] == {
                            "$ref": "#/components/schemas/Problem"}, (label, status)
                public = label in PUBLIC_OPERATIONS.get(name, set()) | HEALTH
                assert ("security" not in operation) == public, label
    registration = runtimes["identity"].http_app.openapi()["paths"]["/identity/subscribers"]["post"]
    body = registration["requestBody"]["content"]["application/json"]["schema"]
    assert {"passport_number", "mobile_phone", "region"} <= set(body["properties"])  # the command's own model


async def test_the_documents_say_what_the_doors_answer(doors: Any) -> None:
    """A zero amount is refused by the schema as by the server; an undecodable body's 400 and the
    token's 401/403 are documented wherever they can be answered."""
    client, bearer, runtimes = doors
    ledger = runtimes["ledger"].http_app.openapi()
    for path in ("/ledger/accounts/{number}/transfers", "/ledger/accounts/{number}/bonus-redemptions"):
        body = ledger["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        model = ledger["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        amount = model["properties"]["amount"]
        money = next(shape for shape in amount.get("anyOf", [amount]) if shape.get("type") == "object")  # optional
        assert money["properties"]["minor"]["minimum"] == 1, path
    async with client("ledger", bearer("subscriber", MINE)) as http:
        zero = await http.post(f"/ledger/accounts/{MINE}/transfers", json={"to_account": OTHER, "amount": {"minor": 0}})
    assert (zero.status_code, zero.json()["errors"][0]["field"]) == (422, "amount.minor")
    for name, runtime in runtimes.items():
        for path, operations in runtime.http_app.openapi()["paths"].items():
            for method, operation in operations.items():
                documented = set(operation["responses"])
                if "security" in operation:
                    assert {"401", "403"} <= documented, (name, method, path)
                if "requestBody" in operation:
                    assert {"400", "422"} <= documented, (name, method, path)
