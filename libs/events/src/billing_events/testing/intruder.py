"""Writing a service's database the way an intruder would: for tests of the checks that must
find what no service would ever write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.db import Database


@asynccontextmanager
async def as_intruder(db: Database) -> AsyncIterator[AsyncConnection]:
    """A transaction as whoever holds the database's superuser writes it: with the triggers that
    guard the data switched off (PostgreSQL's replica role). CHECK constraints still hold."""
    async with db.transaction() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield conn
