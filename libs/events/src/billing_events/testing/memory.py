"""In-memory fakes of a service's two ports, for service-layer tests with no broker and no server.

- :func:`in_memory_database`: the database every unit of work of a service's context opens on
  (SQLite in memory, one connection), with the plumbing's tables and the service's own.
- :class:`MemoryBroker`: the broker's publish, faked. A service's real relay publishes into it
  (:meth:`MemoryBroker.relay`), and it hands what it holds to a service's real consumer as
  broker records (:meth:`MemoryBroker.deliver`): a command's events reach another service's
  handlers through the same inbox, unit of work and outbox as over Kafka.

What this cannot show (ordering across partitions, a broker that goes away, two processes at
once, PostgreSQL's locks) the flow and fault tests show over the real broker and databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from sqlalchemy import MetaData

from billing_contracts.envelope import Envelope, decode
from billing_contracts.topics import INGRESS_TOPICS
from billing_events.consumer import BatchHandler, EventConsumer
from billing_events.db import Database
from billing_events.event_log import OutboxRelay
from billing_events.schema import plumbing_metadata
from billing_events.service import ServiceContext
from billing_events.settings import ServiceSettings
from billing_events.unit_of_work import UnitOfWork

DEAD_LETTERS = ".dlq"

T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)


async def in_memory_database(*metadatas: MetaData) -> Database:
    """A fresh database in memory with the plumbing's tables and those of ``metadatas``."""
    db = Database("sqlite+aiosqlite://")
    await db.create_schema(plumbing_metadata, *metadatas)
    return db


def service_settings(settings_cls: type[S], **overrides: Any) -> S:
    """A service's settings for a test in memory: its database in memory, a broker never reached
    (its address is never dialled), the test run's token and operator keys."""
    from billing_events.testing import plugin, signing

    values: dict[str, Any] = {
        "database_url": "sqlite+aiosqlite://", "kafka": {"closed_network": True},
        "token_public_keys": [plugin.TEST_TOKEN_PUBLIC_KEY], "operator_keys": [plugin.TEST_OPERATOR_KEY_RING_ENTRY],
        **signing.settings_values(settings_cls.service_name),
    }
    if "token_private_key" in settings_cls.model_fields:  # identity signs
        values["token_private_key"] = plugin.TEST_TOKEN_PRIVATE_KEY
    return settings_cls(**{**values, **overrides})


async def staged_by(ctx: ServiceContext, work: Callable[[UnitOfWork], Awaitable[T]]) -> tuple[T, list[Envelope[Any]]]:
    """Run ``work`` in one of ``ctx``'s units of work: its result, and the events it staged."""
    seen: list[Envelope[Any]] = []

    async def watched(uow: UnitOfWork) -> T:
        result = await work(uow)
        seen[:] = uow.staged
        return result

    return await ctx.unit_of_work(watched), seen


@dataclass(frozen=True)
class Message:
    """One message in the broker's log, as a relay handed it over."""

    topic: str
    key: bytes
    value: bytes
    headers: dict[str, str]


@dataclass
class MemoryBroker:
    """What relays published, in order, each message once (as a broker's log holds it), and how
    far each consuming service has been handed it."""

    messages: list[Message] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)

    async def publish(self, topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> Awaitable[Any]:
        """The relay's publish: the message is in the log at once, acknowledged."""
        self.messages.append(Message(topic, key, value, headers))
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    async def relay(self, ctx: ServiceContext) -> list[Envelope[Any]]:
        """Publish what ``ctx``'s service has committed to its outbox, with its real relay;
        returns the events published now (dead letters aside)."""
        before = len(self.messages)
        await OutboxRelay(ctx.db, self.publish, clock=ctx.clock, name=ctx.producer).drain()
        return [decode(m.value) for m in self.messages[before:] if not m.topic.endswith(DEAD_LETTERS)]

    def events(self) -> list[Envelope[Any]]:
        """Every event published so far, in order (dead letters aside)."""
        return [decode(m.value) for m in self.messages if not m.topic.endswith(DEAD_LETTERS)]

    async def deliver(self, ctx: ServiceContext, handler: BatchHandler, topics: Sequence[str]) -> int:
        """Hand ``ctx``'s service, as one batch through its real consumer, what ``topics`` (logical
        names) received since its last delivery; returns how many messages that was."""
        wanted = {ctx.topics(topic) for topic in topics}
        start = self.positions.get(ctx.producer, 0)
        records = [broker_record(m.topic, m.key, m.value, m.headers, offset)
                   for offset, m in enumerate(self.messages[start:], start) if m.topic in wanted]
        self.positions[ctx.producer] = len(self.messages)
        await consume(ctx, handler, records, keeps=[topic for topic in topics if topic in INGRESS_TOPICS])
        return len(records)


async def consume(ctx: ServiceContext, handler: BatchHandler, records: Sequence[ConsumerRecord[bytes, bytes]], *,
                  keeps: Sequence[str] = ()) -> None:
    """``records`` taken by ``ctx``'s service as one batch, through its real consumer, which
    keeps what comes from the ingress topics ``keeps`` (logical names) as a service's runtime
    does; signatures are not checked (nothing signs in memory)."""
    consumer = EventConsumer(name=ctx.producer, db=ctx.db, handler=handler, topics=ctx.topics, clock=ctx.clock,
                             on_commit=ctx.wake_relay, keeps=[ctx.topics(topic) for topic in keeps], keyring=None)
    await consumer.process(records)


def as_record(ctx: ServiceContext, envelope: Envelope[Any], offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    """``envelope`` as a record of its topic, as its producer would have sent it to ``ctx``'s service."""
    return broker_record(ctx.topics(envelope.topic), envelope.account, envelope.to_bytes(), envelope.kafka_headers(),
                         offset)


def broker_record(topic: str, key: bytes | str, value: bytes, headers: dict[str, str],
                  offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    """A record as a consumer gets it from the broker."""
    key_bytes = key.encode() if isinstance(key, str) else key
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key_bytes,
                          value=value, checksum=None, serialized_key_size=len(key_bytes),
                          serialized_value_size=len(value), headers=[(k, v.encode()) for k, v in headers.items()])
