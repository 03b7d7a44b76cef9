"""The identity commands over HTTP: same functions, field errors as 422, refusals as statuses,
every refusal in the suite's one shape; login answers with a token for that one account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from billing_contracts import topics
from billing_events.auth import Tokens
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import bearer_token


def _bearer(runtime: Any, role: str = "service", subject: str = "call-centre") -> dict[str, str]:
    token = bearer_token(runtime.clock, role, subject)
    return {"Authorization": f"Bearer {token}"}


async def test_commands_over_http(start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    runtime, ctx = await start_identity(http_port=0)
    async with runtime:
        async with (
            TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http,
        ):
            flow = make_flow(runtime, ctx, reader)
            service = _bearer(runtime)
            invalid = await http.post("/identity/subscribers", json=flow.form(passport_number="1234567890",
                                                                              region="mars"), headers=service)
            assert invalid.status_code == 422
            assert invalid.json()["code"] == "invalid_request"
            assert {e["field"] for e in invalid.json()["errors"]} == {"passport_number", "region"}
            assert all(set(e) >= {"field", "message"} for e in invalid.json()["errors"])
            assert "1234567890" not in invalid.text and "mars" not in invalid.text  # never echoed

            created = await http.post("/identity/subscribers", json=flow.form(), headers=service)
            assert created.status_code == 201
            account = created.json()["account_number"]
            again = await http.post("/identity/subscribers", json=flow.form(), headers=service)
            assert (again.status_code, again.json()["code"]) == (409, "passport_already_registered")
            assert again.json()["errors"][0]["field"] == "passport_number"
            password = await flow.secret(account, PasswordPurpose.INITIAL)

            ok = await http.post("/identity/login", json={"login": account, "password": password})
            assert ok.status_code == 200 and ok.json()["account_number"] == account
            assert ok.json()["token_type"] == "bearer"
            assert ok.headers["cache-control"] == "no-store"  # no proxy or browser cache keeps the token
            principal = Tokens(runtime.settings.token_keys(), runtime.clock).verify(ok.json()["token"])
            assert (principal.role, principal.subject) == ("subscriber", account)
            assert ok.json()["expires_at"].startswith((runtime.clock.now() + timedelta(minutes=15)).date().isoformat())
            wrong = await http.post("/identity/login", json={"login": account, "password": "nope"})
            assert (wrong.status_code, wrong.json()["code"]) == (401, "login_refused")
            assert set(wrong.json()) == {"code", "message", "errors"} and "token" not in wrong.json()
            # Anonymous requests for a password or a code get one answer, whoever they name.
            unknown = await http.post("/identity/passwords/sms", json={"login": "100000009991"})
            assert unknown.status_code == 202 and unknown.json()["status"] == "accepted"
            code = await http.post("/identity/reset-codes", json={"login": account, "phone": "+79123456789"})
            assert (code.status_code, code.json()) == (202, unknown.json())
            assert flow.runtime.clock.now() < (await flow.reader.wait_for_type(
                "PasswordIssued", account_number=account, purpose=PasswordPurpose.RESET_CODE))[0].payload.expires_at
            # An operator (service token) is told what happened.
            told = await http.post("/identity/reset-codes", json={"login": account, "phone": "+79123456789"},
                                   headers=service)
            assert told.status_code == 200 and told.json()["masked_destination"] == "+7 *** ***-67-89"
            garbage = await http.post("/identity/passwords/sms", json={"login": account},
                                      headers={"Authorization": "Bearer not.a.token"})
            assert garbage.status_code == 401
            assert garbage.json() == {"code": "invalid_token", "errors": [],
                                      "message": "the token is not valid: log in again or ask for a new token"}
            bad = await http.post("/identity/reset-codes/redeem", json={"login": account, "code": "00000a"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "code"
            not_json = await http.post("/identity/login", content=b"{nope", headers={"Content-Type": "application/json"})
            assert (not_json.status_code, not_json.json()["code"]) == (422, "invalid_request")


async def test_registration_and_support_recovery_need_a_service_token(start_identity: Any, make_flow: Any,
                                                                      bootstrap_servers: str) -> None:
    runtime, ctx = await start_identity()
    async with runtime:
        async with (
            TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://identity") as http,
        ):
            flow = make_flow(runtime, ctx, reader)
            mine = (await flow.register()).account_number
            other = (await flow.register(unique=True)).account_number
            recovery = {"login": mine, "passport_series": "4508", "passport_number": "731942",
                        "date_of_birth": "1990-05-17", "reason": "lost the phone"}

            anonymous = await http.post("/identity/subscribers", json=flow.form(unique=True))
            assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token")
            as_subscriber = await http.post("/identity/subscribers", json=flow.form(unique=True),
                                            headers=_bearer(runtime, "subscriber", mine))
            assert (as_subscriber.status_code, as_subscriber.json()["code"]) == (403, "service_only")
            assert (await http.post("/identity/support/recoveries", json=recovery)).status_code == 401
            for account in (mine, other):  # an operator's route even for one's own account
                refused = await http.post("/identity/support/recoveries", json=recovery,
                                          headers=_bearer(runtime, "subscriber", account))
                assert refused.status_code == 403

            registered = await http.post("/identity/subscribers", json=flow.form(unique=True), headers=_bearer(runtime))
            assert registered.status_code == 201
            # who did it is who the token says: a body naming another operator is refused
            other_operator = await http.post("/identity/support/recoveries", json={**recovery, "operator": "op-7"},
                                             headers=_bearer(runtime))
            assert (other_operator.status_code, other_operator.json()["code"]) == (403, "requester_mismatch")
            recovered = await http.post("/identity/support/recoveries", json={**recovery, "operator": "call-centre"},
                                        headers=_bearer(runtime))
            assert recovered.status_code == 200 and recovered.json()["account_number"] == mine

            # public routes need no token at all
            assert (await http.post("/identity/passwords/sms", json={"login": other})).status_code == 202
