"""The metrics operators alert on: HTTP requests by route template and status, the database pool,
publish failures. (The lag series of a partition that moved away: tests/faults/test_failover.py,
with two processes, each with a registry of its own.)"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx
from fastapi import APIRouter
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from billing_contracts import topics
from billing_events.consumer import EventRouter
from billing_events.http import ApiError
from billing_events.event_log import append_rows
from billing_events.runtime import ServiceRuntime
from billing_events.settings import DatabaseSettings, ServiceSettings
from billing_events.testing.clock import RunningClock
from billing_events.testing.plugin import eventually

clock = RunningClock()


class MeteredSettings(ServiceSettings):
    service_name: ClassVar[str] = "metered"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": "metered", **labels}) or 0.0


def things() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{number}")
    async def thing(number: str) -> dict[str, str]:
        if number == "404404404404":
            raise ApiError(404, "unknown_thing", "no such thing")
        return {"number": number}

    return router


async def test_requests_are_counted_and_timed_by_route_template_and_status(make_settings: Any) -> None:
    settings = await make_settings(MeteredSettings, http_port=0)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=MetaData(), routers=[things()])
    route = {"method": "GET", "route": "/things/{number}"}
    before = {status: sample("billing_http_requests_total", status=status, **route) for status in ("200", "404")}
    timed_before = sample("billing_http_request_seconds_count", **route)
    unmatched_before = sample("billing_http_requests_total", method="GET", route="unmatched", status="404")
    async with runtime, httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
        for number in ("100000000001", "100000000002", "404404404404"):
            await http.get(f"/things/{number}")
        await http.get("/no/such/route")
    assert sample("billing_http_requests_total", status="200", **route) - before["200"] == 2
    assert sample("billing_http_requests_total", status="404", **route) - before["404"] == 1
    assert sample("billing_http_request_seconds_count", **route) - timed_before == 3
    assert sample("billing_http_requests_total", method="GET", route="unmatched", status="404") - unmatched_before == 1
    exposed = {s.labels.get("route") for metric in REGISTRY.collect() for s in metric.samples
               if s.name == "billing_http_requests_total"}
    assert not any("100000000001" in str(route_label) for route_label in exposed)  # one series per route


async def test_the_pool_gauges_show_connections_in_use_and_tasks_waiting(make_settings: Any) -> None:
    settings = (await make_settings(MeteredSettings)).model_copy(
        update={"database": DatabaseSettings(pool_size=1, max_overflow=0)})
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=MetaData())
    try:
        assert (sample("billing_db_connections_in_use"), sample("billing_db_connections_waiting")) == (0, 0)
        async with runtime.db.connect():
            waiter = asyncio.create_task(_one_query(runtime))
            await eventually(lambda: sample("billing_db_connections_waiting") == 1, what="a task waiting")
            assert sample("billing_db_connections_in_use") == 1
        await waiter
        assert (sample("billing_db_connections_in_use"), sample("billing_db_connections_waiting")) == (0, 0)
    finally:
        await runtime.db.dispose()


async def _one_query(runtime: ServiceRuntime) -> None:
    async with runtime.db.connect():
        pass


async def test_a_row_the_broker_refuses_counts_as_a_publish_failure(make_settings: Any) -> None:
    settings = await make_settings(MeteredSettings)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=MetaData(), handler=EventRouter({}),
                             consumes=[topics.PAYMENTS])
    refused_before = sample("billing_publish_failures_total", outcome="refused")
    published_before = sample("billing_events_published_total")
    async with runtime:
        async with runtime.db.transaction() as conn:
            await append_rows(conn, [
                {"topic": runtime.topics(topics.LEDGER), "key": "100000000057", "value": b"x" * (2 * 1024 * 1024),
                 "headers": {}, "created_at": clock.now()},
                {"topic": runtime.topics(topics.LEDGER), "key": "100000000057", "value": b"fits", "headers": {},
                 "created_at": clock.now()},
            ])
        runtime.relay.wake()
        await eventually(lambda: sample("billing_events_published_total") - published_before >= 1,
                         what="the row that fits published")
    assert sample("billing_publish_failures_total", outcome="refused") - refused_before == 1


async def test_a_metrics_port_serves_the_metrics_and_the_api_port_no_longer_does(make_settings: Any) -> None:
    settings = await make_settings(MeteredSettings, http_port=0, metrics_port=0)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=MetaData(), routers=[things()])
    async with (
        runtime,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as api,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.metrics_port}") as scraper,
    ):
        assert runtime.metrics_port not in (None, runtime.http_port)
        assert (await api.get("/metrics")).status_code == 404
        assert "/metrics" not in (await api.get("/openapi.json")).json()["paths"]
        assert (await api.get("/things/100000000001")).status_code == 200
        scraped = await scraper.get("/metrics")
        assert scraped.status_code == 200 and "billing_http_requests_total" in scraped.text
        # Only the metrics there: no API route, no health, no API document.
        assert [(await scraper.get(path)).status_code for path in ("/things/100000000001", "/health/live",
                                                                  "/openapi.json")] == [404, 404, 404]
