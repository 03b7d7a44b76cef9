"""The service's event log: one table (``outbox``) holding every event the service has put out
or kept, with the roles it plays named by the functions that play them.

- **To publish** (the transactional outbox): :func:`append` stages outgoing envelopes in the
  state-changing transaction; the :class:`OutboxRelay` publishes committed rows in id order and
  marks them (``published_at``). A crash between publishing and marking publishes a row twice,
  which the consumers' inboxes absorb.
- **Kept as published**: :func:`append_published` keeps events the service took from an ingress
  topic as if it had published them; :func:`append_history_copies` keeps a copy of an event under
  a second account's key for that account's history, never published.
- **Dead letters**: :mod:`billing_events.deadletter` appends their rows with :func:`append_rows`,
  and the relay publishes them to the dead-letter topic.
- **History and refill**: :func:`account_page` reads an account's events in order (the history
  API); :func:`published` streams the published events for a restore of the topics or a replay;
  :func:`published_topics` and :func:`unpublished` tell what is there and what waits.

Rows are selected by ``published_at IS NULL``, never by "last published id": in PostgreSQL a
transaction that took id 7 can commit after the one that took id 8. One relay at a time holds a
PostgreSQL advisory lock, so two instances of a service never publish out of order.

A relay is woken after its own process commits, and on PostgreSQL by the notification every
transaction that appended rows sends at commit (so another instance's rows go out at once too);
it polls as well, for whatever no wake-up announced.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError, RecordTooLargeError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events import metrics
from billing_events.clock import Clock
from billing_events.db import Database, any_of, bulk_insert, retry_transient
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.schema import outbox
from billing_contracts.topics import TopicNames
from billing_events.wakeup import woken

log = get_logger(__name__)

NOTIFY_CHANNEL = "billing_outbox"
"""PostgreSQL notification channel: each service has its own database, so one name serves all."""

UNDELIVERABLE = (MessageSizeTooLargeError, InvalidTopicError, RecordTooLargeError)
"""Refusals no retry cures: such a row is set aside (``error``) so the rows after it go out."""

HISTORY_ONLY = ".history"
"""Suffix of the topic of a row kept only for another account's history (:func:`append_history_copies`):
no such topic exists, and nothing publishes, restores or replays those rows."""

Publish = Callable[[str, bytes, bytes, dict[str, str]], Awaitable[Awaitable[Any]]]
"""(topic, key, value, headers) -> a future that resolves when the broker acknowledged."""


async def append(
    conn: AsyncConnection, envelopes: Iterable[Envelope[Any]], *, topics: TopicNames, clock: Clock
) -> int:
    now = clock.now()
    rows = [
        {
            "topic": topics(envelope.topic),
            "key": envelope.account,
            "value": envelope.to_bytes(),
            "headers": envelope.kafka_headers(),
            "created_at": now,
        }
        for current in envelopes
        for envelope in (current, *current.previous_versions())
    ]
    return await append_rows(conn, rows)


async def append_published(conn: AsyncConnection, records: Sequence[Any], *, clock: Clock) -> None:
    """Keep events a service took from an ingress topic as if it had published them (already
    published): its history and a restore of the topics then hold them too."""
    now = clock.now()
    await bulk_insert(conn, outbox, [
        {"topic": record.topic, "key": (record.key or b"").decode(errors="replace"), "value": record.value,
         "headers": {name: value.decode(errors="replace") for name, value in record.headers or ()},
         "created_at": now, "published_at": now}
        for record in records
    ])


async def append_history_copies(
    conn: AsyncConnection, copies: Sequence[tuple[str, Envelope[Any]]], *, topics: TopicNames, clock: Clock
) -> None:
    """Keep a copy of each event under a second account's key, so that account's history shows it
    too. The event itself is published once, under the key that orders it: consumers never see
    the copy (already marked published, and its topic is ``<topic>.history``)."""
    now = clock.now()
    await bulk_insert(conn, outbox, [
        {"topic": topics(envelope.topic) + HISTORY_ONLY, "key": key, "value": envelope.to_bytes(),
         "headers": envelope.kafka_headers(), "created_at": now, "published_at": now}
        for key, envelope in copies
    ])


async def append_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    await bulk_insert(conn, outbox, rows)
    if rows and conn.dialect.name == "postgresql":
        # Delivered when (and only if) this transaction commits, to every relay listening on
        # this service's database: another instance's relay too, not only this process's.
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return len(rows)


async def listen_for_appended_rows(db: Database, wake: Callable[[], None]) -> None:
    """Call ``wake`` whenever a transaction that staged rows commits on the service's database,
    in any process. PostgreSQL only; raises when the listening connection is lost, so that a
    supervisor starts it again (the relay's polling covers the gap)."""
    dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(dsn)
    lost = asyncio.Event()
    try:
        listener.add_termination_listener(lambda _: lost.set())
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake())
        wake()  # rows committed while nobody listened
        await lost.wait()
        raise ConnectionError("the connection listening for staged outbox rows was lost")
    finally:
        await listener.close()


async def unpublished(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) or 0


async def published(
    conn: AsyncConnection,
    *,
    account: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    topics: Sequence[str] | None = None,
    chunk: int = 1000,
) -> AsyncIterator[Sequence[Any]]:
    """Published events still kept in the outbox, oldest first: of the given ``topics`` (real
    names), or of every event topic (dead letters and history-only copies excluded)."""
    query = (
        select(outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
        .where(outbox.c.published_at.is_not(None), outbox.c.error.is_(None))
        .order_by(outbox.c.id)
    )
    if topics is None:
        query = query.where(outbox.c.topic.not_like("%.dlq"), outbox.c.topic.not_like(f"%{HISTORY_ONLY}"))
    else:
        query = query.where(outbox.c.topic.in_(list(topics)))
    if account is not None:
        query = query.where(outbox.c.key == account)
    if since is not None:
        query = query.where(outbox.c.created_at >= since)
    if until is not None:
        query = query.where(outbox.c.created_at < until)
    result = await conn.stream(query.execution_options(yield_per=chunk))
    async for rows in result.partitions(chunk):
        yield rows


async def published_topics(conn: AsyncConnection) -> list[str]:
    """The topics this service's kept events went to."""
    return list(await conn.scalars(select(outbox.c.topic).where(
        outbox.c.published_at.is_not(None), outbox.c.topic.not_like(f"%{HISTORY_ONLY}")).distinct()))


async def account_page(conn: AsyncConnection, account: str, *, after_id: int = 0, limit: int = 1000) -> Sequence[Any]:
    """One page of an account's events (dead letters and undeliverable rows excluded; copies kept
    for its history included, :func:`append_history_copies`), in the order they were staged: ``id, value, headers`` of up to ``limit`` rows after ``after_id``.
    Reads the ``outbox_by_key`` index, so its cost follows the account's own events."""
    query = (
        select(outbox.c.id, outbox.c.value, outbox.c.headers)
        .where(outbox.c.key == account, outbox.c.id > after_id, outbox.c.topic.not_like("%.dlq"),
               outbox.c.error.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return (await conn.execute(query)).all()


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        clock: Clock,
        name: str,
        batch_size: int = 2000,
        poll_interval: float = 0.5,
        retention: timedelta | None = timedelta(hours=24),
    ) -> None:
        self._db = db
        self._publish = publish
        self._clock = clock
        self._name = name
        self._lock_key = zlib.crc32(f"outbox:{name}".encode())
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.published = 0

    def wake(self) -> None:
        """Called after a commit that staged events: publish now instead of at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        rounds = 0
        while not self._stopping:
            try:
                await self.drain()
                rounds += 1
                if rounds % 600 == 0:
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed; will retry")
            await woken(self._wakeup, self._poll_interval)
            self._wakeup.clear()
        await self.drain()  # what was committed before the stop

    def stop(self) -> None:
        """Ask :meth:`run` to publish what is committed and return; await its task to wait.

        The relay is never cancelled mid-batch: a batch sent but not yet marked would be sent
        again (harmless to consumers' inboxes, but noise on the topic)."""
        self._stopping = True
        self._wakeup.set()

    async def drain(self) -> int:
        total = 0
        while True:
            sent = await retry_transient(self._publish_one_batch, what="outbox relay", max_wait=30)
            total += sent
            if sent < self._batch_size:
                self.published += total
                return total

    async def _publish_one_batch(self) -> int:
        async with self._db.transaction() as conn:
            if not await self._take_lock(conn):
                return 0
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(self._batch_size)
                )  # no row locks: the advisory lock above already makes this relay the only one
            ).all()
            if not rows:
                return 0
            # Send all, then wait for every acknowledgement: one round trip per batch, and the
            # producer keeps per-partition order because sends are issued in id order.
            # Sends are issued one after another (never concurrently) so each partition gets them
            # in id order; only the acknowledgements are awaited together.
            sent = [await self._send(row) for row in rows]
            outcomes = await asyncio.gather(*sent, return_exceptions=True)
            failed = {row.id: outcome for row, outcome in zip(rows, outcomes, strict=True)
                      if isinstance(outcome, BaseException)}
            for outcome in failed.values():
                if not isinstance(outcome, UNDELIVERABLE):
                    metrics.PUBLISH_FAILURES.labels(self._name, "retried").inc()
                    raise outcome  # the broker is away: the whole batch is tried again
            now = self._clock.now()
            await conn.execute(
                update(outbox)
                .where(any_of(conn, outbox.c.id, [row.id for row in rows if row.id not in failed]))
                .values(published_at=now)
            )
            for row_id, error in failed.items():
                # A message the broker will never take must not hold back every one after it.
                log.error("outbox row undeliverable; set aside", row_id=row_id, error=repr(error))
                await conn.execute(update(outbox).where(outbox.c.id == row_id)
                                   .values(published_at=now, error=repr(error)[:500]))
        # Counted once committed: a failed commit sends the batch again, which must not count twice.
        metrics.EVENTS_PUBLISHED.labels(self._name).inc(len(rows) - len(failed))
        if failed:
            metrics.PUBLISH_FAILURES.labels(self._name, "refused").inc(len(failed))
        return len(rows)

    async def restore(self, topics: Sequence[str]) -> int:
        """Publish every kept event of ``topics`` again, unchanged and in their original order:
        to fill topics a broker lost (the embedded broker keeps them in memory only; a rebuilt
        cluster starts empty). Consumers' inboxes recognise the events they already took.
        Call it before the relay runs, so that nothing newer reaches those topics first."""
        count = 0
        async with self._db.transaction() as conn:
            if not await self._take_lock(conn):
                return 0  # another instance of the service is publishing: it restores them
            async for rows in published(conn, topics=topics, chunk=self._batch_size):
                await asyncio.gather(*[await self._send(row) for row in rows])
                count += len(rows)
        metrics.EVENTS_PUBLISHED.labels(self._name).inc(count)
        return count

    async def _send(self, row: Any) -> Awaitable[Any]:
        """Hand one row to the producer; a refusal raised at once comes back as the outcome."""
        try:
            return await self._publish(row.topic, row.key.encode(), row.value, row.headers)
        except UNDELIVERABLE as exc:
            refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            return refused

    async def _take_lock(self, conn: AsyncConnection) -> bool:
        if conn.dialect.name != "postgresql":
            return True  # SQLite has one writer at a time already
        return bool(await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": self._lock_key}))

    async def purge(self) -> int:
        """Published rows are kept for a while (for inspection and replays), then deleted;
        ``retention=None`` keeps them: the outbox is then the service's archive of its events."""
        if self._retention is None:
            return 0
        cutoff = self._clock.now() - self._retention
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(outbox).where(outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff)
            )
        return result.rowcount or 0
