"""Where the machine's cores go during ingestion: CPU seconds of the ledger's processes,
PostgreSQL and the broker over the same window, per money movement.

On one machine the three share its cores, so this says which of them bounds the rate and
whether the machine itself is the limit: a figure without it cannot tell a slow ledger from a
full machine. A part that runs elsewhere (a remote PostgreSQL, a named broker) is not measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

POSTGRES_NAMES = ("postgres", "postmaster")


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


POSTGRES_SERVER_WORK = ("checkpointer", "background writer", "walwriter", "wal writer")
"""The server's own processes that write what every database's backends changed."""


def _postgres_processes(database: str | None, postmaster: int | None) -> list[psutil.Process]:
    """PostgreSQL's processes: with ``database``, only its backends and the server's writers
    (``postgres: user database host ...``), so other databases' work on a shared server is
    not counted as the ledger's; with ``postmaster``, only that server's, so another server's
    writers on the same machine are not counted either."""
    found = [process for process in psutil.process_iter(["name", "cmdline", "ppid"])
             if process.info["name"] in POSTGRES_NAMES and postmaster in (None, process.info["ppid"])]
    if database is None:
        return found
    return [process for process in found
            if (title := " ".join(process.info["cmdline"] or ())) and
            (f" {database} " in f"{title} " or any(work in title for work in POSTGRES_SERVER_WORK))]


@dataclass
class CpuMeter:
    """CPU seconds per part between :meth:`start` and :meth:`stop`: the named processes, all of
    PostgreSQL's, and the machine's."""

    processes: dict[str, int]
    database: str | None = None
    """PostgreSQL database whose backends are counted (None: every PostgreSQL process)."""
    postmaster: int | None = None
    """The postmaster whose children are counted (None: any server's)."""
    _started: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        # PostgreSQL forks a backend per connection: the set is taken anew at each sample, and
        # a backend that ended in between is missed (the ledger's pool keeps its own open; the
        # bench's own polling connection is counted, a small part).
        sample = {part: _cpu_seconds(psutil.Process(pid)) for part, pid in self.processes.items()}
        sample["machine"] = _machine_busy_seconds()
        if postgres := _postgres_processes(self.database, self.postmaster):
            sample["postgres"] = sum(_cpu_seconds(p) for p in postgres)
        return sample

    def start(self) -> None:
        self._started = self._sample()
        self._wall = time.perf_counter()

    def stop(self) -> None:
        if not self._started:
            return  # nothing moved in the window: nothing to attribute
        ended = self._sample()
        self._wall = time.perf_counter() - self._wall
        self.seconds = {part: ended[part] - self._started[part] for part in ended if part in self._started}

    def report(self, movements: int) -> dict[str, float]:
        """Per part: microseconds of CPU per movement, and cores kept busy over the window."""
        figures: dict[str, float] = {"window_s": self._wall, "cores": float(psutil.cpu_count() or 0)}
        for part, seconds in self.seconds.items():
            figures[f"{part}_us_per_movement"] = seconds / movements * 1e6
            figures[f"{part}_cores_busy"] = seconds / self._wall if self._wall else 0.0
        return figures


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    counted_twice = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)  # already in user/nice
    return sum(times) - idle - counted_twice
