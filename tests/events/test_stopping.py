"""A loop that waits for a wake-up or its poll interval ends when its task is cancelled, even when
the wake-up comes in the same turn of the loop as the cancellation (a batch's commit wakes the
relay and the notifier's sender just as a service stops). Python 3.11's ``asyncio.wait_for``
returned normally then, the loop went round again, and the service's stop waited for it for ever
(the simulation's seed 2009 hung in its stop). And a service's stop is bounded whatever its
background tasks do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import MetaData

from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_events.event_log import OutboxRelay, append_rows
from billing_events.runtime import ServiceRuntime
from billing_events.schema import plumbing_metadata
from billing_events.settings import ServiceSettings
from billing_events.testing.clock import RunningClock
from billing_events.testing.plugin import eventually
from billing_events.wakeup import woken

clock = ManualClock(datetime(2026, 11, 28, tzinfo=UTC))


async def _published(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> Any:
    acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    acknowledged.set_result(None)
    return acknowledged


async def _ends_when_cancelled(task: asyncio.Task[Any]) -> bool:
    done, _ = await asyncio.wait({task}, timeout=10)
    return task in done and task.cancelled()


async def test_a_relay_woken_as_it_is_cancelled_ends(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    await db.create_schema(plumbing_metadata)
    relay = OutboxRelay(db, _published, clock=clock, name="ledger", poll_interval=30)
    async with db.transaction() as conn:
        await append_rows(conn, [{"topic": "ledger", "key": "A", "value": b"{}", "headers": {},
                                 "created_at": clock.now()}])
    running = asyncio.create_task(relay.run())
    try:
        # Once it counts the row published it has nothing to wait for but the wake-up.
        await eventually(lambda: relay.published == 1, timeout=10, what="the staged row published")
        relay.wake()
        running.cancel()
        assert await _ends_when_cancelled(running), "the relay went on after its task was cancelled"
    finally:
        relay.stop()
        await asyncio.wait({running}, timeout=10)
        await db.dispose()


async def test_a_wait_tells_a_wake_up_from_its_timeout() -> None:
    wakeup = asyncio.Event()
    assert not await woken(wakeup, 0)
    wakeup.set()
    assert await woken(wakeup, 30)


class StoppingSettings(ServiceSettings):
    service_name: ClassVar[str] = "stopping"


async def test_a_stop_goes_on_without_a_background_task_that_does_not_end(make_settings: Any) -> None:
    released = asyncio.Event()

    async def stubborn() -> None:
        """A loop that outlives its cancellation (as the relay's did on Python 3.11)."""
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue

    settings = await make_settings(StoppingSettings)
    runtime = ServiceRuntime(settings=settings, clock=RunningClock(), metadata=MetaData(), background=[stubborn])
    runtime.tasks_stop_grace = 0.5
    await runtime.start()
    stopping = asyncio.create_task(runtime.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=30)
        assert stopping in done, "the stop waited on a background task that does not end"
        assert runtime._relay_task.done()  # it went on: the outbox relay was stopped
    finally:
        released.set()
        await stopping
