"""The notifier's delivery log over HTTP: its own token or a service token, refusals in the
suite's one shape."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from billing_contracts import topics
from billing_contracts.catalog.identity import LoginLocked, SubscriberRegistered
from billing_events.clock import ManualClock
from billing_contracts.envelope import Envelope
from billing_events.sealing import generate_keypair, seal
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import bearer_token, eventually
from notifier.app import build_runtime
from notifier.settings import NotifierSettings

MINE, OTHER = "100000000008", "100000000016"
PUBLIC, PRIVATE = generate_keypair()


@contextlib.asynccontextmanager
async def notifier(make_settings: Callable[..., Any], bootstrap: str) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    clock = ManualClock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    settings = await make_settings(NotifierSettings, notifier_private_key=PRIVATE)
    async with build_runtime(settings, clock) as runtime, RawProducer(bootstrap) as producer:
        for account in (MINE, OTHER):
            registered = SubscriberRegistered(
                account_number=account, contract_number=f"C-{account}", region="moscow", legal_status="person",
                masked_phone="+7 *** *** 00 08", sealed_contact=seal(PUBLIC, {"phone": "+79160000008", "email": None}))
            locked = LoginLocked(account_number=account, locked_until=datetime(2026, 3, 10, 10, tzinfo=UTC),
                                 failed_attempts=5)
            for payload in (registered, locked):
                envelope = Envelope.new(payload, account=account, producer="identity", clock=clock)
                await producer.send(runtime.topics(topics.IDENTITY), envelope)
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier/notifier") as http:
            yield runtime, http


def _bearer(runtime: Any, role: str = "service", subject: str = "operations") -> dict[str, str]:
    token = bearer_token(runtime.clock, role, subject)
    return {"Authorization": f"Bearer {token}"}


async def test_the_delivery_log_takes_its_own_token_or_a_service_token(make_settings: Any, bootstrap_servers: str) -> None:
    async with notifier(make_settings, bootstrap_servers) as (runtime, http):
        service = _bearer(runtime)

        async def both_logged() -> bool:
            answers = [await http.get(f"/accounts/{a}/deliveries", headers=service) for a in (MINE, OTHER)]
            return all(a.status_code == 200 and a.json()["deliveries"] for a in answers)

        await eventually(both_logged, what="deliveries of both accounts")
        anonymous = await http.get(f"/accounts/{MINE}/deliveries")
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token")
        mine = _bearer(runtime, "subscriber", MINE)
        own = await http.get(f"/accounts/{MINE}/deliveries", headers=mine)
        assert own.status_code == 200 and own.json()["account_number"] == MINE
        assert own.json()["deliveries"][0]["template"] == "login_locked"
        other = await http.get(f"/accounts/{OTHER}/deliveries", headers=mine)
        assert (other.status_code, other.json()["code"]) == (403, "wrong_account")
        assert "deliveries" not in other.json()

        unknown = await http.get("/accounts/100000000990/deliveries", headers=service)
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_account")
        bad_limit = await http.get(f"/accounts/{MINE}/deliveries", params={"limit": 5000}, headers=service)
        assert bad_limit.status_code == 422
        assert bad_limit.json()["errors"] == [{"field": "limit", "message": "Input should be less than or equal to 1000",
                                               "code": "less_than_equal"}]
