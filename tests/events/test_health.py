"""Health that means what it says: a broker outage shows in the readiness body but does not take
an API that needs only the database out of service; a relay process, there to publish, is not
ready without the broker; nothing of it fails liveness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import MetaData

from billing_contracts import topics
from billing_events.consumer import EventRouter
from billing_events.embedded import EmbeddedBroker
from billing_events.runtime import ServiceRuntime
from billing_events.settings import KafkaSettings, ServiceSettings
from billing_events.testing.clock import RunningClock
from billing_events.testing.plugin import eventually


class HealthSettings(ServiceSettings):
    service_name: ClassVar[str] = "health"


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, to stop under a running service."""
    with EmbeddedBroker() as broker:
        yield broker


async def _health(http: httpx.AsyncClient) -> tuple[int, dict[str, Any], int]:
    ready = await http.get("/health/ready")
    return ready.status_code, ready.json(), (await http.get("/health/live")).status_code


@pytest.mark.parametrize("role, ready_without_broker", [("all", True), ("relay", False)])
async def test_a_broker_outage_is_reported_and_fails_readiness_only_where_the_broker_is_the_job(
    role: str, ready_without_broker: bool, own_broker: EmbeddedBroker, kafka_settings: KafkaSettings,
    make_settings: Any,
) -> None:
    kafka = kafka_settings.model_copy(update={"bootstrap_servers": own_broker.bootstrap_servers})
    settings = await make_settings(HealthSettings, kafka=kafka, http_port=0, process_role=role)
    runtime = ServiceRuntime(settings=settings, clock=RunningClock(), metadata=MetaData(),
                             handler=EventRouter({}), consumes=[topics.PAYMENTS])
    async with runtime, httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}", timeout=10) as http:
        status, body, _ = await eventually(lambda: _up(http), what="ready with the broker up")
        assert body["checks"]["broker"] is True
        own_broker.stop()
        status, body, live = await eventually(lambda: _broker_down(http), what="the outage reported")
        own_broker.start()  # back (empty) on the same port, so the service stops as it would in production
        await eventually(lambda: _up(http), what="ready again with the broker back")
    assert live == 200
    assert body["checks"]["database"] is True
    assert (status, body["ready"]) == ((200, True) if ready_without_broker else (503, False))
    assert ("broker" in body["needed"]) is not ready_without_broker


async def _up(http: httpx.AsyncClient) -> tuple[int, dict[str, Any], int] | None:
    health = await _health(http)
    return health if health[0] == 200 and all(health[1]["checks"].values()) else None


async def _broker_down(http: httpx.AsyncClient) -> tuple[int, dict[str, Any], int] | None:
    health = await _health(http)
    return health if health[1]["checks"]["broker"] is False else None
