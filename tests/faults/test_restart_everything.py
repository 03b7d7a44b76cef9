"""Restart of everything: the four services run the way ``make run`` runs them (``billing up``:
one process each, SQLite files in one data folder, the dev secrets of that folder), are stopped
with SIGTERM (what Ctrl-C makes the launcher send) and started again on the same folder.

The broker is the test session's, not a fresh embedded one: the embedded broker keeps topics in
memory, so after a restart of ``make run`` only the databases remain, and they are what this
test checks. Every record every service held at rest is still there after the restart, every
ledger balance and journal entry is unchanged, and the restarted suite goes on working.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from billing_cli.launcher import SERVICES, dev_secrets
from billing_events import topics
from billing_events.sealing import seal
from billing_events.testing.plugin import eventually
from billing_events.testing.processes import ServiceProcess

Snapshot = dict[str, dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]]
"""service -> table -> primary key -> row."""


class Suite:
    def __init__(self, data_dir: Path, bootstrap_servers: str, prefix: str) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = dev_secrets(data_dir)  # made once per data folder, as `billing up` does
        env = {
            **self.secrets,
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "BILLING_KAFKA__TOPIC_PREFIX": prefix,
            "BILLING_KAFKA__PARTITIONS": "3",
            "BILLING_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
            "BILLING_DATA_DIR": str(data_dir.resolve()),
        }
        self.processes = {
            name: ServiceProcess(name, env, log_path=data_dir / f"{name}.log") for name in SERVICES
        }

    async def start(self) -> None:
        for process in self.processes.values():
            process.spawn()  # all at once, as the launcher does
        for process in self.processes.values():
            await process.wait_ready(90)

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM to every service at once, as the launcher does on Ctrl-C."""
        codes = await asyncio.gather(*(process.stop(30) for process in self.processes.values()))
        return dict(zip(self.processes, codes, strict=True))

    def database(self, service: str) -> Path:
        return self.data_dir / service / f"{service}.db"

    def snapshot(self) -> Snapshot:
        """Every row of every table of every service's SQLite file, by primary key."""
        found: Snapshot = {}
        for service in SERVICES:
            path = self.database(service)
            if not path.exists():
                continue
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                   "AND name NOT LIKE 'sqlite_%'")]
                found[service] = {}
                for table in tables:
                    columns = list(db.execute(f'PRAGMA table_info("{table}")'))
                    keys = [c[0] for c in sorted((c for c in columns if c[5]), key=lambda c: c[5])] or [
                        c[0] for c in columns
                    ]
                    found[service][table] = {
                        tuple(row[k] for k in keys): tuple(row) for row in db.execute(f'SELECT * FROM "{table}"')
                    }
        return found

    def query(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.database(service)}?mode=ro", uri=True)) as db:
            return list(db.execute(sql, params))

    def balance(self, number: str) -> int | None:
        rows = self.query("ledger", "SELECT main FROM accounts WHERE number = ?", number)
        return rows[0][0] if rows else None

    def tail(self) -> str:
        return "\n".join(f"--- {name}\n{process.tail(15)}" for name, process in self.processes.items())


@pytest.fixture
async def suite(tmp_path: Path, bootstrap_servers: str, topic_prefix: str) -> AsyncIterator[Suite]:
    suite = Suite(tmp_path / "var", bootstrap_servers, topic_prefix)
    try:
        yield suite
    finally:
        for process in suite.processes.values():
            process.kill()


async def quiet(suite: Suite, seconds: float = 2.0, timeout: float = 30.0) -> Snapshot:
    """Wait until no service's database changes for ``seconds``; returns that state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = suite.snapshot(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.25)
        now = suite.snapshot()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= seconds:
            return now
    raise AssertionError(f"the services' databases kept changing for {timeout}s")


@pytest.mark.slow
async def test_stopping_and_starting_the_whole_suite_keeps_every_record(
    suite: Suite, producer: Any, traffic: Any, numbers: Any
) -> None:
    prefix = suite.processes["ledger"].env["BILLING_KAFKA__TOPIC_PREFIX"]
    account = numbers(1, first=424_242)[0]
    contact = seal(suite.secrets["BILLING_NOTIFIER_PUBLIC_KEY"], {"phone": "+79161234567", "email": None})

    await suite.start()
    await producer.send(f"{prefix}{topics.IDENTITY}", traffic.registration(account, sealed_contact=contact))
    await eventually(lambda: suite.balance(account) == 0, timeout=60, what="the ledger opening the account")
    first = traffic.payment(account, 150_000, "RESTART-1")
    await producer.send(f"{prefix}{topics.PAYMENTS}", first)
    await eventually(lambda: suite.balance(account) == 150_000, timeout=30, what="the payment posted")
    await quiet(suite)

    codes = await suite.stop()
    assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n{suite.tail()}"
    at_rest = suite.snapshot()
    assert set(at_rest) == set(SERVICES), f"a service kept no database: {sorted(at_rest)}"
    ledger = at_rest["ledger"]
    assert len(ledger["journal"]) == 1 and ledger["accounts"], "the payment was not in the ledger at rest"
    assert not [row for row in suite.query("ledger", "SELECT id FROM outbox WHERE published_at IS NULL")]
    held = {service: {table: len(rows) for table, rows in tables.items() if rows}
            for service, tables in at_rest.items()}

    await suite.start()  # same data folder, same secrets
    await asyncio.sleep(3)  # long enough for a service that would redo or drop something to do it
    after = await quiet(suite)

    lost = {
        (service, table): len(set(rows) - set(after.get(service, {}).get(table, {})))
        for service, tables in at_rest.items() for table, rows in tables.items()
        if set(rows) - set(after.get(service, {}).get(table, {}))
    }
    assert not lost, f"records lost in the restart: {lost}"
    for table in ("accounts", "journal", "postings", "operator_balances", "chain_head", "inbox"):
        assert after["ledger"][table] == ledger[table], f"the ledger's {table} changed in the restart"
    assert suite.balance(account) == 150_000

    # the restarted suite consumes where it stopped: a new payment is posted, the old one not again
    await producer.send(f"{prefix}{topics.PAYMENTS}", traffic.payment(account, 1_000, "RESTART-2"))
    await producer.send(f"{prefix}{topics.PAYMENTS}", first)  # and a redelivery of the first changes nothing
    await eventually(lambda: suite.balance(account) == 151_000, timeout=30, what="a payment after the restart")
    await quiet(suite)
    assert suite.query("ledger", "SELECT count(*) FROM journal")[0][0] == 2
    print(f"\nkept across the restart: {held}")
