"""The restore drill of docs/operations.md section 8, run as written: the four services on
PostgreSQL take payments; every service's database is dumped (``pg_dump --format=custom``) while
payments still flow and for a while after; then the services stop, the databases are dropped and
restored from the dumps, each service's consumer group is moved back to before the dumps
(``python -m billing_events.admin rewind-group``), and the services start again.

The restored ledger has lost what it posted after its dump; the broker still holds those
payments, and the rewound groups read them again: every payment ends up posted exactly once
(the inbox and the payment's business key skip what the dump already held), the books verify,
nothing is dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from billing_cli.launcher import SERVICES
from billing_contracts import topics
from billing_events.db import Database
from billing_events.schema import dead_letters
from billing_events.sealing import seal
from billing_events.testing.clock import CLOCK_FILE_SETTING
from billing_events.testing.plugin import eventually

from .conftest import LedgerFacts, Suite, size

ACCOUNTS = 40


def libpq(url: str) -> str:
    """The URL the PostgreSQL client tools take (the services' one names the asyncpg driver)."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def run(*command: str, env: dict[str, str] | None = None, exits: tuple[int, ...] = (0,)) -> str:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE,
                                                   env={**os.environ, **(env or {})})
    out, err = await process.communicate()
    assert process.returncode in exits, f"{' '.join(command)} failed ({process.returncode}): {err.decode()}"
    return out.decode()


async def billing_verify(env: dict[str, str], *args: str, exits: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """``billing verify --json`` on the ledger's database, with the ledger's environment."""
    return json.loads(await run(sys.executable, "-m", "billing_cli", "verify", "--json", *args, env=env, exits=exits))


async def dead_lettered(databases: dict[str, str]) -> dict[str, int]:
    counts = {}
    for service, url in databases.items():
        db = Database(url, pool_size=1, max_overflow=0)
        try:
            async with db.connect() as conn:
                counts[service] = await conn.scalar(select(func.count()).select_from(dead_letters)) or 0
        finally:
            await db.dispose()
    return counts


@pytest.mark.slow
async def test_a_restore_from_dumps_taken_under_traffic_brings_back_every_payment_once(
    tmp_path: Path, bootstrap_servers: str, topic_prefix: str, postgres_databases: Any, producer: Any,
    traffic: Any, numbers: Any,
) -> None:
    before_count, batch = size("DRILL_PAYMENTS", 1000), 50
    databases = {service: await postgres_databases.create() for service in SERVICES}
    server = libpq(postgres_databases.server_url)  # the maintenance database pg_restore --create connects to
    suite = Suite(tmp_path / "var", bootstrap_servers, topic_prefix, databases)
    payments_topic = f"{topic_prefix}{topics.PAYMENTS}"
    accounts = numbers(ACCOUNTS, first=7_000)
    contact = seal(suite.secrets["BILLING_NOTIFIER_PUBLIC_KEY"], {"phone": "+79161234567", "email": None})
    sent: list[Any] = []
    facts = LedgerFacts(databases["ledger"], topic_prefix)
    try:
        await suite.start()
        await producer.send_many(f"{topic_prefix}{topics.IDENTITY}",
                                 [traffic.registration(n, sealed_contact=contact) for n in accounts])
        await eventually(lambda: _equal(facts.open_accounts(), ACCOUNTS), timeout=60, what="the accounts opened")

        # 1. payments before the dumps, all posted
        sent += traffic.payments(accounts, before_count, "BEFORE")
        await producer.send_many(payments_topic, sent)
        await eventually(lambda: _equal(facts.payments_posted(), len(sent)), timeout=60,
                         what="the first payments posted")

        # 2. the dumps, while payments keep coming (and for a while after them)
        streaming = asyncio.Event()
        streaming.set()

        async def stream(prefix: str) -> None:
            n = 0
            while streaming.is_set():
                more = traffic.payments(accounts, batch, f"{prefix}-{n}")
                await producer.send_many(payments_topic, more)
                sent.extend(more)
                n += 1
                await asyncio.sleep(0.1)

        dumps = {service: tmp_path / f"{service}.dump" for service in SERVICES}
        flowing = asyncio.create_task(stream("DURING"))
        await asyncio.sleep(1.5)
        backup_time = datetime.now(UTC)  # wall clock: the broker stamps records with the machine's time
        at_dump = len(sent)
        started = time.monotonic()
        for service in SERVICES:
            await run("pg_dump", "--format=custom", f"--file={dumps[service]}", libpq(databases[service]))
        dump_seconds = time.monotonic() - started
        during_dump = len(sent) - at_dump
        await asyncio.sleep(2)  # the services go on posting what the dumps will not hold
        streaming.clear()
        await flowing
        await eventually(lambda: _equal(facts.payments_posted(), len(sent)), timeout=90,
                         what="every payment sent so far posted")
        posted_before_restore = len(sent)

        # 3. stop, drop, restore (docs/operations.md section 8)
        codes = await suite.stop()
        assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n{suite.tail()}"
        await facts.close()
        started = time.monotonic()
        for service in SERVICES:
            name = databases[service].rpartition("/")[2]
            await run("psql", server, "--quiet", "-c", f'DROP DATABASE "{name}" WITH (FORCE)')
            await run("pg_restore", "--create", f"--dbname={server}", str(dumps[service]))
        restore_seconds = time.monotonic() - started
        facts = LedgerFacts(databases["ledger"], topic_prefix)
        restored = await facts.payments_posted()
        assert restored < posted_before_restore, "the dump held everything: the drill restored nothing older"
        ledger_env = {key: value for key, value in suite.processes["ledger"].env.items()
                      if key.startswith("BILLING_KAFKA__") or key in ("BILLING_LEDGER_DATABASE_URL", CLOCK_FILE_SETTING)}
        head = (await billing_verify(ledger_env, "--no-seals-from-broker"))["chain_head"]  # written down

        # 4. every consumer group back to before the dumps, then the services start again
        rewind_to = backup_time - timedelta(minutes=5)
        admin_env = {key: value for key, value in ledger_env.items() if key.startswith("BILLING_KAFKA__")}
        for service in SERVICES:
            await run(sys.executable, "-m", "billing_events.admin", "rewind-group", service,
                      "--to", rewind_to.isoformat(), env=admin_env)
        await suite.start()

        # 5. payments after the restore; then everything is posted once
        after = traffic.payments(accounts, 300, "AFTER")
        await producer.send_many(payments_topic, after)
        sent += after
        await eventually(lambda: _equal(facts.payments_posted(), len(sent)), timeout=90,
                         what="every payment posted after the restore")
        await asyncio.sleep(2)  # time for a payment taken twice to show
        await facts.assert_consistent(sent, accounts)  # once each, right balances, books balance, verify clean
        assert await dead_lettered(databases) == dict.fromkeys(SERVICES, 0)
        # billing verify: the restored history reproduces the backup's chain head; the seals the
        # ledger published between the backup and the restore describe the history it discarded
        pinned = await billing_verify(ledger_env, "--no-seals-from-broker", "--seal", f"{head['length']}:{head['hash']}")
        assert pinned["ok"] and pinned["seals"]["checked"] == 1, pinned["findings"]
        with_broker = await billing_verify(ledger_env, "--seals-from-broker", exits=(0, 1))
        assert with_broker["seals"]["checked"] >= 1
        assert {finding["kind"] for finding in with_broker["findings"]} <= {"seal_not_reproduced"}
        discarded = len(with_broker["findings"])
        print(f"\nrestore drill: {before_count} payments before the dumps, {during_dump} while dumping "
              f"({dump_seconds:.1f} s for {len(SERVICES)} databases), {posted_before_restore} posted before "
              f"the stop, {restored} in the restored ledger, {posted_before_restore - restored} taken again "
              f"from the broker, {len(after)} after the restore; restore {restore_seconds:.1f} s; "
              f"{len(sent)} payments, each posted once; {with_broker['seals']['checked']} seals checked, "
              f"{discarded} of them of the discarded history")
    finally:
        await facts.close()
        for process in suite.processes.values():
            process.kill()


async def _equal(value: Any, expected: int) -> bool:
    return (await value) == expected
