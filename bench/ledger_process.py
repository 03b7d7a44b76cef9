"""A service as operations run it: ``python -m <service>`` processes (the ledger's, the tariff's
relay), watched from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import asyncpg
import psutil

from bench import workload

ROLES = ("consumer", "consumer", "relay")
"""As deploy/ runs the ledger: two consumer instances sharing the partitions, and a relay."""


def process_names(roles: Sequence[str]) -> list[str]:
    """``consumer_1``, ``consumer_2``, ``relay``: a role's name, numbered where it repeats."""
    seen: dict[str, int] = {}
    names = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        names.append(f"{role}_{seen[role]}" if roles.count(role) > 1 else role)
    return names


class ServiceProcesses:
    """A service's processes, ``python -m <module>`` one per entry of ``roles``, started, sampled
    and stopped together."""

    def __init__(self, module: str, env: dict[str, str], *, roles: Sequence[str], log_file: Path) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.module = module
        self.env = env
        self.log_file = log_file
        self.roles = dict(zip(process_names(roles), roles, strict=True))
        """Each process's name and role."""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.peak_rss: dict[str, int] = dict.fromkeys(self.roles, 0)
        self.start_rss: dict[str, int] = {}

    def start(self) -> Self:
        with open(self.log_file, "ab") as log:
            for name, role in self.roles.items():
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", self.module], env={**self.env, "BILLING_PROCESS_ROLE": role},
                    stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def sample_rss(self) -> dict[str, int]:
        """Peak resident memory of each process so far (the kernel's high-water mark where it has one)."""
        for name, pid in self.pids.items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                hwm = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
            except (OSError, StopIteration):
                hwm = psutil.Process(pid).memory_info().rss
            self.peak_rss[name] = max(self.peak_rss[name], hwm)
        return self.peak_rss

    def note_start_rss(self) -> None:
        """Each process's resident memory now. Called at the first posting: every process has
        imported its code, checked the schema and connected, and the bulk of the work is ahead."""
        self.start_rss = {name: psutil.Process(pid).memory_info().rss for name, pid in self.pids.items()}

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"the {self.module}'s {name} exited with code {process.returncode}; "
                                   f"see {self.log_file}")

    def stop(self) -> None:
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class LedgerProcess(ServiceProcesses):
    """The ledger's processes, as deploy/ runs them (:data:`ROLES`)."""

    def __init__(self, *, bootstrap: str, database_url: str, prefix: str, log_file: Path,
                 max_records: int = 1000, roles: Sequence[str] = ROLES, signatures: bool = True) -> None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        campaigns_file = log_file.parent / "no-campaigns.json"
        campaigns_file.write_text("[]")  # no campaign: a payment is one transaction of 2 postings
        env = {
            **os.environ,
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "BILLING_KAFKA__TOPIC_PREFIX": prefix,
            "BILLING_KAFKA__CLOSED_NETWORK": "true",
            "BILLING_KAFKA__PARTITIONS": "12",
            "BILLING_KAFKA__CONSUMER_MAX_RECORDS": str(max_records),
            "BILLING_KAFKA__SESSION_TIMEOUT_MS": "3000",
            "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
            "BILLING_LEDGER_DATABASE_URL": database_url,
            "BILLING_MIGRATE_ON_START": "false",  # as deploy/ runs it: the database is migrated first
            "BILLING_LEDGER_BONUS_CAMPAIGNS_FILE": str(campaigns_file),
            "BILLING_LOG_FORMAT": "json",
            "BILLING_LOG_LEVEL": "WARNING",
            **workload.signing_environment(signatures),
        }
        super().__init__("ledger", env, roles=roles, log_file=log_file)
        self.prefix = prefix


async def scalar(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query) or 0)
    finally:
        await conn.close()


async def wait_until(dsn: str, query: str, target: int, *, ledger: ServiceProcesses, timeout: float,
                     interval: float = 0.05,
                     on_first_move: Callable[[], None] = lambda: None) -> tuple[float | None, int, float]:
    """Poll ``query`` until it reaches ``target``. Returns (moment it first moved, its value
    then, moment it reached the target), in ``time.perf_counter`` seconds; ``on_first_move`` is
    called at the first change (the start of a measured window)."""
    conn = await asyncpg.connect(dsn)

    async def current() -> int:
        try:
            return int(await conn.fetchval(query) or 0)
        except asyncpg.UndefinedTableError:  # the ledger has not created its schema yet
            return 0

    try:
        initial = await current()
        moved_at, moved_value = None, initial
        deadline = time.perf_counter() + timeout
        while True:
            value = await current()
            now = time.perf_counter()
            ledger.sample_rss()
            if moved_at is None and value != initial:
                moved_at, moved_value = now, value
                on_first_move()
            if value >= target:
                return moved_at, moved_value, now
            ledger.check_alive()
            if now > deadline:
                raise TimeoutError(f"{query!r} reached {value} of {target} in {timeout}s")
            await asyncio.sleep(interval)
    finally:
        await conn.close()
