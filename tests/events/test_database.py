"""The database helper every service starts with."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select, text

from billing_events.db import Database, retry_transient
from billing_events.schema import plumbing_metadata
from ledger.store import metadata as ledger_metadata


async def test_instances_starting_together_on_a_new_database_all_create_the_schema(postgres_databases: Any) -> None:
    """Compose starts two ledger consumers and a relay at once on an empty database."""
    url = await postgres_databases.create()
    instances = [Database(url) for _ in range(4)]
    try:
        await asyncio.gather(*(db.create_schema(plumbing_metadata, ledger_metadata) for db in instances))
        async with instances[0].connect() as conn:
            tables = await conn.scalar(select(func.count()).select_from(text("pg_tables"))
                                       .where(text("schemaname = 'public'")))
    finally:
        await asyncio.gather(*(db.dispose() for db in instances))
    assert tables == len(plumbing_metadata.tables) + len(ledger_metadata.tables)


async def test_a_transaction_undone_to_break_a_deadlock_is_run_again(postgres_url: str) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL undoes one of them, and
    ``retry_transient`` runs it again instead of letting the failure through."""
    db = Database(postgres_url)
    first_locks = asyncio.Event()
    second_locks = asyncio.Event()
    runs = {"first": 0, "second": 0}

    async def lock(name: str, order: tuple[int, int], mine: asyncio.Event, theirs: asyncio.Event) -> None:
        runs[name] += 1
        async with db.transaction() as conn:
            await conn.execute(text("SELECT id FROM pair WHERE id = :id FOR UPDATE"), {"id": order[0]})
            mine.set()
            await theirs.wait()
            await conn.execute(text("SELECT id FROM pair WHERE id = :id FOR UPDATE"), {"id": order[1]})

    try:
        async with db.transaction() as conn:
            await conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO pair VALUES (1), (2)"))
        await asyncio.gather(
            retry_transient(lambda: lock("first", (1, 2), first_locks, second_locks), what="first"),
            retry_transient(lambda: lock("second", (2, 1), second_locks, first_locks), what="second"),
        )
    finally:
        await db.dispose()
    assert sorted(runs.values()) == [1, 2], "the transaction undone ran once more, the other once"


async def test_a_read_on_sqlite_does_not_queue_behind_a_writer_nor_hold_one_off(tmp_path: Any) -> None:
    """SQLite's writers take BEGIN IMMEDIATE so that two of them queue instead of deadlocking; a
    read must not: under WAL it reads the last commit while a writer works, and a writer never
    waits for a reader (a reader holding the write lock held every writer off, up to the 30 s
    busy timeout, when a stopping task left its read behind)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    try:
        async with db.transaction() as conn:
            await conn.execute(text("CREATE TABLE facts (n INTEGER)"))
            await conn.execute(text("INSERT INTO facts VALUES (1)"))

        async def read() -> int:
            async with db.connect() as reader:
                return int(await reader.scalar(text("SELECT count(*) FROM facts")))

        async with db.transaction() as writer:
            await writer.execute(text("INSERT INTO facts VALUES (2)"))
            assert await asyncio.wait_for(read(), 10) == 1  # the last commit, not the write under way
        async with db.connect() as reader:
            assert await reader.scalar(text("SELECT count(*) FROM facts")) == 2
            async with db.transaction() as writer:  # while a read transaction is open
                await writer.execute(text("INSERT INTO facts VALUES (3)"))
            assert await reader.scalar(text("SELECT count(*) FROM facts")) == 2  # its snapshot holds
        assert await asyncio.wait_for(read(), 10) == 3
    finally:
        await db.dispose()
