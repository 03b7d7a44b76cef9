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

from billing_events import inbox, unit_of_work
from billing_events.clock import Clock
from billing_events.db import Database
from billing_events.errors import DomainError
from billing_events.unit_of_work import NO_RETRY, RetryPolicy, UnitOfWork
from billing_contracts.envelope import Envelope, Event
from billing_contracts.topics import TopicNames

T = TypeVar("T")


class Command(BaseModel):
    """Base of every command model: immutable, and nothing it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True)
class CommandDecision:
    """What a service decided about a command taken now."""

    events: Sequence[Envelope[Any]]
    """Its answer: the events it produced, or those of its first decision when it is a repeat."""
    repeat: bool = False
    """Decided before (the same request again): nothing is staged, the first answer stands."""
    refusal: DomainError | None = None
    """A refusal that is news (its events announce it): committed with the events, then raised."""


DecideCommand = Callable[[UnitOfWork, Envelope[Any]], Awaitable[CommandDecision]]
"""A service's decision on one command envelope, in the caller's unit of work: it stores its
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

    async def unit_of_work(self, work: Callable[[UnitOfWork], Awaitable[T]], *,
                           retry: RetryPolicy | None = NO_RETRY, what: str = "command") -> T:
        """Run ``work`` in one unit of work (one transaction, with what it stages); once it
        commits, tell the relay there is news."""
        result = await unit_of_work.run(self.db, work, service=self.producer, topics=self.topics, clock=self.clock,
                                        retry=retry, what=f"{self.producer} {what}")
        self.wake_relay()
        return result

    async def submit(self, payload: Event, *, account: str, decide: DecideCommand) -> Sequence[Envelope[Any]]:
        """Take one command now, as if it came from the service's command topic: claimed in this
        service's inbox with its fingerprint (so the topic's copy is never taken again), decided,
        staged to the outbox with the events it produced (the command itself for the record),
        committed, and the relay woken. Returns the events, the caller's answer, or raises the
        decision's refusal once what announces it is committed."""
        command = self.envelope(payload, account=account)

        async def work(uow: UnitOfWork) -> CommandDecision:
            await uow.claim({command.event_id: inbox.fingerprint(command)})
            decision = await decide(uow, command)
            if not decision.repeat:
                uow.stage([command, *decision.events])
            return decision

        decision = await self.unit_of_work(work)
        if decision.refusal is not None:
            raise decision.refusal
        return decision.events
