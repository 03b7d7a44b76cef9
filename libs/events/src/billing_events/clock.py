"""Time is injected: every service asks a clock, so tests can move through days and years."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: the tests' time machine."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("ManualClock needs timezone-aware moments")
        self._now = moment.astimezone(UTC)


class FileClock:
    """The embedded suite's shared clock: the wall clock plus an offset kept in a file.

    ``billing up`` names the file (setting ``BILLING_CLOCK_FILE``) for every service it starts;
    ``billing clock advance`` / ``set`` move the offset, and every process reading the file sees
    the same time. Time keeps flowing between moves. The file is read again only when it
    changed (one ``stat`` per reading). Production sets no file and runs on :class:`SystemClock`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return timedelta(0)
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # each move replaces the file
        if seen != self._seen:
            self._offset = timedelta(seconds=float(json.loads(self.path.read_text())["offset_seconds"]))
            self._seen = seen
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def move_to(self, moment: datetime) -> datetime:
        """Move the shared time to ``moment`` (from there it flows with the wall clock)."""
        if moment.tzinfo is None:
            raise ValueError("FileClock needs timezone-aware moments")
        offset = moment - datetime.now(UTC)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"offset_seconds": offset.total_seconds()}))
        temporary.replace(self.path)  # readers see the old offset or the new one, never half a file
        return moment.astimezone(UTC)
