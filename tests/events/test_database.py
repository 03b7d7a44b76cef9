"""The database helper every service starts with."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select, text

from billing_events.db import Database
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
