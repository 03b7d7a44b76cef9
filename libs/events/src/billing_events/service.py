"""The shape every service's command layer shares.

A service's commands are functions of ``(context, command) -> outcome``. The context is a small
frozen object built once in the service's ``app.py``: the fields below, which every service
needs, plus exactly what its own commands need (a catalog, a policy, a port to a channel). A
command is a :class:`Command` model, validated where it enters (HTTP, a command topic, the CLI).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events import event_log, inbox
from billing_events.clock import Clock
from billing_events.db import Database
from billing_events.errors import DomainError
from billing_contracts.envelope import Envelope, Event
from billing_contracts.topics import TopicNames

T = TypeVar("T")


class Command(BaseModel):
    """Base of every command model: immutable, and nothing it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True)
class Decision:
    """What a service decided about a command taken now."""

    events: Sequence[Envelope[Any]]
    """Its answer: the events it produced, or those of its first decision when it is a repeat."""
    repeat: bool = False
    """Decided before (the same request again): nothing is staged, the first answer stands."""
    refusal: DomainError | None = None
    """A refusal that is news (its events announce it): committed with the events, then raised."""


Decide = Callable[[AsyncConnection, Envelope[Any]], Awaitable[Decision]]
"""A service's decision on one command envelope, in the caller's transaction: it stores its
state; the events it returns are staged by :meth:`ServiceContext.submit`. A refusal raises."""


def _nothing_to_wake() -> None:
    """A context built without a relay in the process (a CLI, a test): committed rows wait for
    the relay's next poll, or its database notification."""


@dataclass(frozen=True, kw_only=True)
class ServiceContext:
    """What every service's commands need from their process."""

    producer: str
    """The service's name: the producer of every envelope it writes."""
    db: Database
    clock: Clock
    topics: TopicNames
    wake_relay: Callable[[], None] = _nothing_to_wake

    def envelope(self, payload: Event, *, account: str, cause: Envelope[Any] | None = None,
                 correlation_id: UUID | None = None) -> Envelope[Any]:
        """An event of this service, caused by ``cause`` when it answers one."""
        return Envelope.new(payload, account=account, producer=self.producer, clock=self.clock,
                            cause=cause, correlation_id=correlation_id)

    async def stage(self, conn: AsyncConnection, envelopes: Sequence[Envelope[Any]]) -> None:
        """Write ``envelopes`` to the outbox in the caller's transaction."""
        await event_log.append(conn, envelopes, topics=self.topics, clock=self.clock)

    async def unit_of_work(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction; once it commits, tell the relay there is news."""
        async with self.db.transaction() as conn:
            result = await work(conn)
        self.wake_relay()
        return result

    async def submit(self, payload: Event, *, account: str, decide: Decide) -> Sequence[Envelope[Any]]:
        """Take one command now, as if it came from the service's command topic: claimed in this
        service's inbox with its fingerprint (so the topic's copy is never taken again), decided,
        staged to the outbox with the events it produced (the command itself for the record),
        committed, and the relay woken. Returns the events, the caller's answer, or raises the
        decision's refusal once what announces it is committed."""
        command = self.envelope(payload, account=account)

        async def work(conn: AsyncConnection) -> Decision:
            await inbox.claim(conn, self.producer, [command.event_id], clock=self.clock,
                              fingerprints={command.event_id: inbox.fingerprint(command)})
            decision = await decide(conn, command)
            if not decision.repeat:
                await self.stage(conn, [command, *decision.events])
            return decision

        decision = await self.unit_of_work(work)
        if decision.refusal is not None:
            raise decision.refusal
        return decision.events
