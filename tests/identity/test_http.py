"""The identity commands over HTTP: same functions, field errors as 422, refusals as statuses."""

from __future__ import annotations

from typing import Any

import httpx

from billing_events import topics
from billing_events.catalog.identity import PasswordPurpose
from billing_events.testing.kafka_probe import TopicReader


async def test_commands_over_http(start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with await start_identity(http_port=0) as runtime:
        async with (
            TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http,
        ):
            flow = make_flow(runtime, reader)
            invalid = await http.post("/identity/subscribers", json=flow.form(passport_number="12", region="mars"))
            assert invalid.status_code == 422
            assert {e["field"] for e in invalid.json()["errors"]} == {"passport_number", "region"}

            created = await http.post("/identity/subscribers", json=flow.form())
            assert created.status_code == 201
            account = created.json()["account_number"]
            assert (await http.post("/identity/subscribers", json=flow.form())).status_code == 409
            password = await flow.secret(account, PasswordPurpose.INITIAL)

            ok = await http.post("/identity/login", json={"login": account, "password": password})
            assert ok.status_code == 200 and ok.json()["account_number"] == account
            wrong = await http.post("/identity/login", json={"login": account, "password": "nope"})
            assert (wrong.status_code, wrong.json()["error"]) == (401, "login_refused")
            unknown = await http.post("/identity/passwords/sms", json={"login": "100000009991"})
            assert unknown.status_code == 404
            code = await http.post("/identity/reset-codes", json={"login": account, "phone": "+79123456789"})
            assert code.status_code == 200 and code.json()["masked_destination"] == "+7 *** ***-67-89"
            bad = await http.post("/identity/reset-codes/redeem", json={"login": account, "code": "00000a"})
            assert bad.status_code == 422
