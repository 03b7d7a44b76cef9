"""Scaling out: two instances of one service in one consumer group, one shared database.

The broker splits the topic's partitions between the instances; when one stops, the other takes
over all of them, and the inbox absorbs whatever the handover redelivers: every event is
applied exactly once. A tiny service (it sums payments per account and writes down which
instance applied each one) stands in for the real ones, as in test_pipeline.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.consumer import EventRouter, EventHandler
from billing_events.db import upsert
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.runtime import ServiceRuntime
from billing_events.schema import dead_letters
from billing_events.settings import ServiceSettings
from billing_events.testing.clock import RunningClock
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import eventually
from billing_events.unit_of_work import UnitOfWork

clock = RunningClock()
metadata = MetaData()
applied = Table(
    "applied", metadata,
    Column("event_id", String(36), primary_key=True),  # a second application would violate it
    Column("account", String(12), nullable=False),
    Column("instance", String(8), nullable=False),
)
totals = Table("totals", metadata, Column("account", String(12), primary_key=True), Column("minor", Integer))


class SummerSettings(ServiceSettings):
    service_name = "summer"


def payment_handler(instance: str) -> EventHandler:
    async def on_payment(uow: UnitOfWork, envelope: Envelope[PaymentReceived]) -> list[Envelope[Any]]:
        conn = uow.conn
        account, amount = envelope.payload.account_number, envelope.payload.amount.minor
        await conn.execute(applied.insert().values(event_id=str(envelope.event_id), account=account, instance=instance))
        current = await conn.scalar(select(totals.c.minor).where(totals.c.account == account)) or 0
        await conn.execute(upsert(conn, totals, ["account"], ["minor"]), {"account": account, "minor": current + amount})
        return []

    return on_payment


def instance(settings: SummerSettings, name: str) -> ServiceRuntime:
    return ServiceRuntime(
        settings=settings, clock=clock, metadata=metadata,
        handler=EventRouter({PaymentReceived: payment_handler(name)}), consumes=[topics.PAYMENTS],
    )


@pytest.fixture
async def settings(make_settings: Callable[..., Any]) -> SummerSettings:
    """One configuration for both instances: same group, same topics, same PostgreSQL database."""
    return await make_settings(SummerSettings)


@pytest.fixture
async def pair(settings: SummerSettings) -> AsyncIterator[tuple[ServiceRuntime, ServiceRuntime]]:
    first, second = instance(settings, "first"), instance(settings, "second")
    # One after the other: the second start finds the schema the first one created.
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()


def assigned(runtime: ServiceRuntime) -> set[int]:
    if not runtime.started:
        return set()
    return {tp.partition for tp in runtime.subscriber.consumer.assignment()}


def partition_of(account: str, partitions: int) -> int:
    """Where the producer (aiokafka's default partitioner, like the suite's) puts an account."""
    every = list(range(partitions))
    return DefaultPartitioner()(account.encode(), every, every)


def payments(accounts: list[str], reference: str, minor: int) -> list[Envelope[PaymentReceived]]:
    return [
        Envelope.new(
            PaymentReceived(account_number=account, channel="terminal", reference=f"{reference}-{account}",
                            amount=Money(minor=minor), received_at=clock.now()),
            account=account, producer="test", clock=clock,
        )
        for account in accounts
    ]


async def applied_by(runtime: ServiceRuntime) -> dict[str, str]:
    async with runtime.db.connect() as conn:
        return dict((await conn.execute(select(applied.c.event_id, applied.c.instance))).all())


async def count(runtime: ServiceRuntime, table: Table) -> int:
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table)) or 0


async def test_partitions_split_and_are_taken_over(
    pair: tuple[ServiceRuntime, ServiceRuntime], settings: SummerSettings, bootstrap_servers: str
) -> None:
    first, second = pair
    partitions = set(range(settings.kafka.partitions))
    accounts = [f"1000000{n:05d}" for n in range(40)]
    assert {partition_of(a, len(partitions)) for a in accounts} == partitions  # every partition gets work

    def split() -> tuple[set[int], set[int]] | None:
        owned = assigned(first), assigned(second)
        return owned if all(owned) and owned[0] | owned[1] == partitions else None

    first_owns, second_owns = await eventually(split, what="both instances holding partitions")
    assert first_owns.isdisjoint(second_owns)

    topic = first.topics(topics.PAYMENTS)
    while_both = payments(accounts, "both", 100)
    async with RawProducer(bootstrap_servers) as producer:
        await producer.send_many(topic, while_both)
        await eventually(lambda: _count_is(first, applied, len(while_both)), what="the first round applied")
        by_instance = await applied_by(first)
        for event in while_both:
            owner = "first" if partition_of(event.account, len(partitions)) in first_owns else "second"
            assert by_instance[str(event.event_id)] == owner, f"{event.account} applied by the wrong instance"

        # The second instance stops while a round is on its way: what it had not committed, the
        # first one takes over after the rebalance.
        during_handover = payments(accounts, "handover", 10)
        await producer.send_many(topic, during_handover)
        await second.stop()
        await eventually(lambda: assigned(first) == partitions, what="the first instance holding every partition")

        after = payments(accounts, "after", 1)
        await producer.send_many(topic, after)
        everything = len(while_both) + len(during_handover) + len(after)
        await eventually(lambda: _count_is(first, applied, everything), what="every round applied")

    by_instance = await applied_by(first)
    assert {by_instance[str(event.event_id)] for event in after} == {"first"}
    assert len(by_instance) == everything  # nothing lost, nothing applied twice (the key is the event id)
    async with first.db.connect() as conn:
        sums = dict((await conn.execute(select(totals.c.account, totals.c.minor))).all())
    assert sums == dict.fromkeys(accounts, 111)
    assert await count(first, dead_letters) == 0


async def _count_is(runtime: ServiceRuntime, table: Table, expected: int) -> bool:
    found = await count(runtime, table)
    assert found <= expected, f"{found} rows in {table.name}, more than the {expected} events sent"
    return found == expected
