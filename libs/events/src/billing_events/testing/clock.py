"""Fixed time for the services a test starts, so no test depends on the day it runs.

A test that starts services on the wall clock tests a different program every month: a campaign
window opens, a month has 28 days, a year ends. Every service a test starts gets one of these
instead: in the test's process a :class:`RunningClock`, in a service process a clock file
(``BILLING_CLOCK_FILE``) moved to a fixed moment by :func:`clock_file`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_events.clock import FileClock

TEST_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
"""An ordinary Monday, 09:00 in Moscow: mid-month, outside every packaged bonus campaign."""

CLOCK_FILE_SETTING = "BILLING_CLOCK_FILE"


class RunningClock:
    """Starts at a fixed moment and runs at the pace of the machine's monotonic clock.

    For tests that need time to pass (token lifetimes, retry delays, an outbox relay's age
    checks) but not the date of the day they run on.
    """

    def __init__(self, start: datetime = TEST_START) -> None:
        if start.tzinfo is None:
            raise ValueError("RunningClock needs a timezone-aware start")
        self._start = start.astimezone(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._started)


def clock_file(path: Path, at: datetime = TEST_START) -> dict[str, str]:
    """The environment entry that runs a service process on the clock file ``path``, made to read
    ``at`` now (and run on from there) unless it exists: services restarted on the same folder
    find the time where they left it, as under ``billing up``."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        FileClock(path).move_to(at)
    return {CLOCK_FILE_SETTING: str(path.resolve())}


DATES_THAT_MATTER = {
    "ordinary-day": TEST_START,
    "month-end": datetime(2026, 4, 30, 6, 0, tzinfo=UTC),  # a 30-day month's last day, then May's 31
    "year-end": datetime(2026, 12, 31, 6, 0, tzinfo=UTC),  # inside the "20 % back" campaign, too
    "leap-day": datetime(2028, 2, 29, 6, 0, tzinfo=UTC),  # February of 29 days, then March
    "short-february": datetime(2027, 2, 15, 6, 0, tzinfo=UTC),  # 28 days: the largest daily share
}
"""Starts at which a date-sensitive test must hold as it holds on an ordinary day (09:00 in
Moscow each, where billing days are counted)."""


def at_dates_that_matter(argument: str = "start") -> pytest.MarkDecorator:
    """Run the test once from each of :data:`DATES_THAT_MATTER`, given as ``argument``."""
    return pytest.mark.parametrize(argument, list(DATES_THAT_MATTER.values()), ids=list(DATES_THAT_MATTER))
