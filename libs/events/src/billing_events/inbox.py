"""The idempotent consumer's memory: which events this consumer has already taken.

Claiming happens in the same transaction as the state change, so an event is either fully
processed and remembered, or neither: a redelivered event changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.clock import Clock
from billing_events.db import bulk_insert
from billing_events.schema import inbox


async def claim(
    conn: AsyncConnection, consumer: str, event_ids: Collection[UUID], *, clock: Clock
) -> set[UUID]:
    """Record the ids as processed; return those that were not processed before."""
    if not event_ids:
        return set()
    now = clock.now()
    # In id order: two instances claiming overlapping batches (during a rebalance) then wait
    # for each other instead of deadlocking.
    rows = [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in sorted(event_ids)]
    return set(await bulk_insert(conn, inbox, rows, ignore_duplicates=True, returning="event_id"))


async def release(conn: AsyncConnection, consumer: str, event_ids: Collection[UUID]) -> None:
    """Forget claims made in this transaction for events that were refused after all."""
    if event_ids:
        await conn.execute(delete(inbox).where(inbox.c.consumer == consumer, inbox.c.event_id.in_(list(event_ids))))


async def was_processed(conn: AsyncConnection, consumer: str, event_id: UUID) -> bool:
    found = await conn.scalar(
        select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
    )
    return found is not None
