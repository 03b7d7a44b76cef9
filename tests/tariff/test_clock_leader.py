"""One billing clock, whatever the number of tariff instances: the clock loop runs in every
instance, but only the one holding the database's billing-clock lock ticks. So a rolling update
(the new pod up beside the old one) never closes a day twice at once, and when the leader goes
(stopped, or its connection cut as by a SIGKILL) a standby takes over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from billing_events.clock import ManualClock
from tariff import service
from tariff.app import build
from tariff.context import TariffContext


class Ticks:
    """Every tick, by instance, with its start and end: a tick takes a while, like a real close."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.loop = asyncio.get_running_loop()
        self.names: dict[int, str] = {}
        """The test's name of each instance, by the id of its context."""

    async def tick(self, ctx: TariffContext) -> None:
        started = self.loop.time()
        await asyncio.sleep(0.03)
        self.spans.append((self.names[id(ctx)], started, self.loop.time()))

    def of(self, name: str) -> list[tuple[str, float, float]]:
        return [span for span in self.spans if span[0] == name]

    def overlapping(self) -> list[tuple[Any, Any]]:
        return [(a, b) for a in self.spans for b in self.spans
                if a[0] < b[0] and a[1] < b[2] and b[1] < a[2]]


TICK_SECONDS = 0.02


async def _instances(tariff: Any, count: int, ticks: Ticks) -> list[TariffContext]:
    settings = await tariff.settings(billing_tick_seconds=TICK_SECONDS)
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    contexts = []
    for n in range(count):
        _, ctx = build(settings, clock)
        ticks.names[id(ctx)] = f"tariff-{n}"
        contexts.append(ctx)
    return contexts


async def _until(check: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_two_instances_never_tick_at_once_and_a_standby_takes_over(
    tariff: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = Ticks()
    monkeypatch.setattr(service, "billing_tick", ticks.tick)
    first, second = await _instances(tariff, 2, ticks)
    first_loop = asyncio.create_task(service.billing_clock(first, TICK_SECONDS)())
    await _until(lambda: len(ticks.of("tariff-0")) >= 3)
    second_loop = asyncio.create_task(service.billing_clock(second, TICK_SECONDS)())  # the new pod of a rollout
    try:
        await asyncio.sleep(0.5)
        assert ticks.of("tariff-1") == [], "the standby ticked beside the leader"
        first_loop.cancel()  # the old pod stops
        await asyncio.gather(first_loop, return_exceptions=True)
        stopped_at = asyncio.get_running_loop().time()
        await _until(lambda: len(ticks.of("tariff-1")) >= 3)
    finally:
        for task in (first_loop, second_loop):
            task.cancel()
        await asyncio.gather(first_loop, second_loop, return_exceptions=True)
        for ctx in (first, second):
            await ctx.db.dispose()
    assert all(start > stopped_at for _, start, _ in ticks.of("tariff-1"))
    assert ticks.overlapping() == []


async def test_a_leader_whose_connection_is_cut_stops_ticking_and_the_standby_leads(
    tariff: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = Ticks()
    monkeypatch.setattr(service, "billing_tick", ticks.tick)
    first, second = await _instances(tariff, 2, ticks)
    first_loop = asyncio.create_task(service.billing_clock(first, TICK_SECONDS)())
    await _until(lambda: len(ticks.of("tariff-0")) >= 2)
    second_loop = asyncio.create_task(service.billing_clock(second, TICK_SECONDS)())
    try:
        await asyncio.sleep(0.3)
        async with second.db.connect() as conn:  # what a SIGKILL or a network cut does to the leader
            cut = await conn.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND objid = :key AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"key": service.BILLING_CLOCK_LOCK})
        assert cut == 1
        await _until(lambda: len(ticks.of("tariff-1")) >= 3)
        first_ticks = len(ticks.of("tariff-0"))
        await asyncio.sleep(0.3)
        assert len(ticks.of("tariff-0")) == first_ticks, "the old leader kept ticking without its lock"
        assert first_loop.done()  # its loop ended; the runtime's supervisor would start it again as a standby
    finally:
        for task in (first_loop, second_loop):
            task.cancel()
        await asyncio.gather(first_loop, second_loop, return_exceptions=True)
        for ctx in (first, second):
            await ctx.db.dispose()
