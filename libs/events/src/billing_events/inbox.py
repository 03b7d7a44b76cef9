"""The idempotent consumer's memory: which events this consumer has already taken.

Claiming happens in the same transaction as the state change, so an event is either fully
processed and remembered, or neither: a redelivered event changes nothing.

Each claim keeps the event's fingerprint (its type, version and payload, hashed): an event id
seen again with another payload is not a redelivery but a conflict, which the consumer
dead-letters instead of dropping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.clock import Clock
from billing_events.db import Database, bulk_insert
from billing_contracts.envelope import Envelope
from billing_events.schema import inbox


def fingerprint(envelope: Envelope[Any]) -> str:
    """What makes two deliveries of one event id the same event: its type, version and payload
    as the schema of the version it was written in reads them (field order is the model's, so
    equal payloads hash equal; an old version read as the newest keeps its fingerprint)."""
    sent = envelope.as_sent
    canonical = f"{envelope.event_type}/{sent.version}/".encode() + sent.model_dump_json().encode()
    return hashlib.sha256(canonical).hexdigest()


async def claim(
    conn: AsyncConnection,
    consumer: str,
    event_ids: Collection[UUID],
    *,
    clock: Clock,
    fingerprints: Mapping[UUID, str] | None = None,
) -> set[UUID]:
    """Record the ids as processed (with their ``fingerprints``, when given); return those that
    were not processed before."""
    if not event_ids:
        return set()
    now = clock.now()
    known = fingerprints or {}
    # In id order: two instances claiming overlapping batches (during a rebalance) then wait
    # for each other instead of deadlocking.
    rows = [
        {"consumer": consumer, "event_id": event_id, "processed_at": now, "fingerprint": known.get(event_id)}
        for event_id in sorted(event_ids)
    ]
    return set(await bulk_insert(conn, inbox, rows, ignore_duplicates=True, returning="event_id"))


async def conflicting(conn: AsyncConnection, consumer: str, fingerprints: Mapping[UUID, str]) -> set[UUID]:
    """Of these already claimed ids, those first claimed with another fingerprint: one query,
    asked only about the batch's duplicates."""
    if not fingerprints:
        return set()
    rows = await conn.execute(
        select(inbox.c.event_id, inbox.c.fingerprint).where(
            inbox.c.consumer == consumer, inbox.c.event_id.in_(list(fingerprints)), inbox.c.fingerprint.is_not(None)
        )
    )
    return {event_id for event_id, first in rows if first != fingerprints[event_id]}


async def release(conn: AsyncConnection, consumer: str, event_ids: Collection[UUID]) -> None:
    """Forget claims made in this transaction for events that were refused after all."""
    if event_ids:
        await conn.execute(delete(inbox).where(inbox.c.consumer == consumer, inbox.c.event_id.in_(list(event_ids))))


async def was_processed(conn: AsyncConnection, consumer: str, event_id: UUID) -> bool:
    found = await conn.scalar(
        select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
    )
    return found is not None


async def prune(db: Database, *, before: datetime, chunk: int = 10_000) -> int:
    """Forget the claims made before ``before``, every consumer's, ``chunk`` per transaction
    (short ones, however long the inbox grew); returns how many were forgotten."""
    forgotten = 0
    while True:
        oldest = select(inbox.c.consumer, inbox.c.event_id).where(inbox.c.processed_at < before).limit(chunk)
        async with db.transaction() as conn:
            result = await conn.execute(delete(inbox).where(tuple_(inbox.c.consumer, inbox.c.event_id).in_(oldest)))
        forgotten += result.rowcount
        if result.rowcount < chunk:
            return forgotten
