"""One unit of work: one database transaction of a service and everything it leaves behind.

The consumer takes a batch of events in one; a command (HTTP, the CLI, a command taken now) is
taken in another; both through :class:`UnitOfWork`, so a committed transaction holds the same
things wherever its work came from:

- the service's state change, written by its store on :attr:`UnitOfWork.conn`;
- the inbox claims of the events or commands it took (:meth:`UnitOfWork.claim`);
- the events it publishes (:meth:`UnitOfWork.stage`), the ingress records it keeps as published
  (:meth:`UnitOfWork.keep`), the copies of events for another account's history
  (:meth:`UnitOfWork.copy_to_history`) and the dead letters (:meth:`UnitOfWork.dead_letter`).

Those last four are gathered while the work runs and appended to the event log at its end in
one order, kept records, history copies, staged events, dead letters, so each account's archive
reads cause before effect (a transfer's copy in the receiving account's history before that
account's BalanceChanged, as when the copies were written first). What a handler staged under a
:meth:`UnitOfWork.savepoint` that it then gave up is dropped with the savepoint's writes.

:func:`run` opens one, runs the work, commits, and retries the whole on a transient database
failure for as long as its policy allows (nothing of a failed attempt survives it: the
transaction is undone and the gathered events go with the object).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.envelope import Envelope
from billing_contracts.topics import TopicNames
from billing_events import deadletter, event_log, inbox
from billing_events.clock import Clock
from billing_events.db import Database, retry_transient

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a unit of work is tried again after transient database failures (the database
    went away, was busy, undid the transaction to break a conflict) before the failure is the
    caller's."""

    max_wait: float
    """Seconds of failures after which the last one propagates."""


NO_RETRY = None
"""A unit of work tried once: its caller (an HTTP request, a CLI command) answers the failure."""

RETRY_FOR_A_MINUTE = RetryPolicy(max_wait=60.0)
"""A consumer's batch (after a minute of failures the subscriber rewinds and the broker
redelivers), and work whose caller would only try again (a tariff command, a day close)."""


@dataclass
class UnitOfWork:
    """What one transaction of ``service`` writes, beside the state its store writes on ``conn``."""

    conn: AsyncConnection
    service: str
    """The service's name: its inbox's consumer, and the producer of what it stages."""
    topics: TopicNames
    clock: Clock
    staged: list[Envelope[Any]] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    """Ingress broker records kept as published (the records themselves, as the broker gave them)."""
    history_copies: list[tuple[str, Envelope[Any]]] = field(default_factory=list)
    dead_letters: list[deadletter.DeadLetter] = field(default_factory=list)

    async def claim(self, fingerprints: Mapping[UUID, str]) -> set[UUID]:
        """Claim events by id in the service's inbox: returns those never claimed before."""
        return await inbox.claim(self.conn, self.service, list(fingerprints), clock=self.clock,
                                 fingerprints=fingerprints)

    async def conflicting(self, fingerprints: Mapping[UUID, str]) -> set[UUID]:
        """Of events claimed before, those whose payload differs from what was claimed."""
        return await inbox.conflicting(self.conn, self.service, fingerprints)

    async def release(self, event_ids: Collection[UUID]) -> None:
        """Forget claims of events refused: once their cause is fixed, they are taken when sent again."""
        await inbox.release(self.conn, self.service, event_ids)

    def stage(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """Publish ``envelopes`` once the transaction commits (the outbox)."""
        self.staged.extend(envelopes)

    def keep(self, records: Sequence[Any]) -> None:
        """Keep ingress ``records`` as if this service had published them (its archive)."""
        self.kept.extend(records)

    def copy_to_history(self, copies: Sequence[tuple[str, Envelope[Any]]]) -> None:
        """Show each (account, event) in that account's history too; never published again."""
        self.history_copies.extend(copies)

    def dead_letter(self, letters: Sequence[deadletter.DeadLetter]) -> None:
        self.dead_letters.extend(letters)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of the work that can fail alone: on an exception its writes are undone, what
        it staged, kept or copied is dropped, and the exception goes on."""
        marks = len(self.staged), len(self.kept), len(self.history_copies), len(self.dead_letters)
        savepoint = await self.conn.begin_nested()
        try:
            yield
        except BaseException:
            await savepoint.rollback()
            for gathered, mark in zip((self.staged, self.kept, self.history_copies, self.dead_letters), marks,
                                      strict=True):
                del gathered[mark:]
            raise
        await savepoint.commit()

    async def flush(self) -> None:
        """Append what was gathered to the event log, in the transaction, cause before effect."""
        await event_log.append_published(self.conn, self.kept, clock=self.clock)
        # A copy is what another account's history shows of the cause of its own events that follow.
        await event_log.append_history_copies(self.conn, self.history_copies, topics=self.topics, clock=self.clock)
        await event_log.append(self.conn, self.staged, topics=self.topics, clock=self.clock)
        await deadletter.record(self.conn, self.dead_letters, consumer=self.service, topics=self.topics,
                                clock=self.clock)


async def run(db: Database, work: Callable[[UnitOfWork], Awaitable[T]], *, service: str, topics: TopicNames,
              clock: Clock, retry: RetryPolicy | None, what: str) -> T:
    """Run ``work`` in a new unit of work and commit it; under ``retry``, start again from
    nothing after a transient failure."""

    async def attempt() -> T:
        async with db.transaction() as conn:
            unit = UnitOfWork(conn, service, topics, clock)
            result = await work(unit)
            await unit.flush()
        return result

    if retry is None:
        return await attempt()
    return await retry_transient(attempt, what=what, max_wait=retry.max_wait)
