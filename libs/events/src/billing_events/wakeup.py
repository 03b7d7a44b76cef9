"""Waiting for a wake-up with a poll interval, in a loop that a stop cancels."""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set.

    Not ``asyncio.wait_for(event.wait(), timeout)``: before Python 3.12 that returns normally when
    the waiting task is cancelled in the same turn of the loop as the event is set (a commit's
    wake-up as the service stops), so the cancellation is lost, the loop goes round again, and
    whoever awaits the cancelled task (a service's stop) waits for ever. ``asyncio.timeout``
    tells its own expiry from a cancellation and never drops the latter."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
