"""The broker and the PostgreSQL databases a bench run uses, and the machine it runs on."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import asyncpg

from billing_events.embedded import EmbeddedBroker

from bench.cluster import PRODUCTION_SETTINGS

POSTGRES_SERVER = os.environ.get("BILLING_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    source: str
    """Where it came from, for the table's title."""
    pid: int | None = None
    """The broker's process when the bench started it (its CPU is then measured too)."""


@contextmanager
def broker() -> Iterator[Broker]:
    """``KAFKA_BOOTSTRAP_SERVERS`` or the embedded broker."""
    named = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if named:
        yield Broker(named, f"KAFKA_BOOTSTRAP_SERVERS={named}")
        return
    with EmbeddedBroker() as embedded:
        yield Broker(embedded.bootstrap_servers, "embedded Tansu broker (memory storage)", embedded.pid)


@dataclass
class Databases:
    """Fresh databases on one PostgreSQL server, dropped at the end of the run."""

    server_url: str = POSTGRES_SERVER
    source: str = "the machine's server"
    """Which server it is, for the table and the JSON."""
    postmaster_pid: int | None = None
    """The server's postmaster when the bench started it: its CPU is then told from another server's."""
    created: list[str] = field(default_factory=list)

    @property
    def _dsn(self) -> str:
        return self.server_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create(self, purpose: str) -> str:
        name = f"bench_{purpose}_{uuid4().hex[:8]}"
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return f"{self.server_url.rpartition('/')[0]}/{name}"

    async def describe(self) -> dict[str, str]:
        """Which server this is and how it is configured: the settings docs/operations.md
        recommends, as the server reports them."""
        conn = await asyncpg.connect(self._dsn)
        try:
            settings = {name: await conn.fetchval(f"SHOW {name}") for name in PRODUCTION_SETTINGS}
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        address = self.server_url.rpartition("@")[2].rpartition("/")[0]
        return {"server": f"{self.source} ({address}, PostgreSQL {version})", **settings}

    async def drop(self, url: str) -> None:
        """Drop one database now (a large one should not wait for the end of the run)."""
        name = url.rpartition("/")[2]
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.remove(name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.clear()


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def machine() -> dict[str, str | int]:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    memory_kib = _proc_field("/proc/meminfo", "MemTotal")
    memory_gib = round(int(memory_kib.split()[0]) / 1024 / 1024, 1) if memory_kib else 0.0
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": cpu,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _proc_field(path: str, name: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None
