"""One unit of work for a consumer's batch and a command taken now, on the in-memory fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import OperationalError

from billing_contracts.catalog.ledger import TransferRequested
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_contracts.topics import TopicNames
from billing_events.clock import ManualClock
from billing_events.consumer import EventRouter
from billing_events.deadletter import DeadLetter
from billing_events.schema import dead_letters, inbox, outbox
from billing_events.service import CommandDecision, ServiceContext
from billing_events.testing.memory import MemoryBroker, as_record, broker_record, consume, in_memory_database
from billing_events.unit_of_work import RetryPolicy, UnitOfWork

A, B = "100000000008", "100000000016"
clock = ManualClock(datetime(2026, 11, 28, tzinfo=UTC))
metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String(40)))


@pytest.fixture
async def ctx() -> AsyncIterator[ServiceContext]:
    db = await in_memory_database(metadata)
    try:
        yield ServiceContext(producer="ledger", db=db, clock=clock, topics=TopicNames(prefix="t."))
    finally:
        await db.dispose()


def _payment(reference: str = "R-1") -> Envelope[Any]:
    payment = PaymentReceived(account_number=A, channel="terminal", reference=reference, amount=Money(minor=100),
                              received_at=clock.now())
    return Envelope.new(payment, account=A, producer="payments", clock=clock)


def _transfer() -> TransferRequested:
    return TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=100),
                             requested_by="cabinet")


async def _log(ctx: ServiceContext) -> list[tuple[str, str, Any]]:
    """(topic, key, what the row holds: an event's id, or a dead letter's reason) in log order."""
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(select(outbox.c.topic, outbox.c.key, outbox.c.value).order_by(outbox.c.id))).all()
    return [(row.topic, row.key, json.loads(row.value).get("event_id") or json.loads(row.value)["reason"])
            for row in rows]


async def _count(ctx: ServiceContext, table: Table) -> int:
    async with ctx.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table)) or 0


async def test_what_a_unit_of_work_gathers_is_appended_at_its_end_cause_before_effect(ctx: ServiceContext) -> None:
    cause, effect = _payment(), _payment("R-2")
    kept = broker_record(ctx.topics(cause.topic), A, cause.to_bytes(), cause.kafka_headers())
    letter = DeadLetter(topic=ctx.topics(cause.topic), partition=0, offset=7, key=A.encode(), value=b"{",
                        reason="unreadable", code="unreadable")

    async def work(uow: UnitOfWork) -> None:
        uow.dead_letter([letter])
        uow.copy_to_history([(B, effect)])
        uow.stage([effect])
        uow.keep([kept])
        assert await uow.conn.scalar(select(func.count()).select_from(outbox)) == 0  # written at the end

    await ctx.unit_of_work(work)
    topic = ctx.topics(effect.topic)
    assert await _log(ctx) == [
        (topic, A, str(cause.event_id)),
        (topic + ".history", B, str(effect.event_id)),
        (topic, A, str(effect.event_id)),
        ("t.billing.ledger.dlq", A, "unreadable"),
    ]
    assert await _count(ctx, dead_letters) == 1


async def test_work_that_raises_leaves_nothing_and_wakes_no_relay(ctx: ServiceContext) -> None:
    woken: list[str] = []
    waking = ServiceContext(producer="ledger", db=ctx.db, clock=clock, topics=ctx.topics,
                            wake_relay=lambda: woken.append("woken"))

    async def work(uow: UnitOfWork) -> None:
        await uow.claim({uuid4(): "print"})
        await uow.conn.execute(insert(notes).values(text="written"))
        uow.stage([_payment()])
        raise RuntimeError("refused half way")

    with pytest.raises(RuntimeError, match="half way"):
        await waking.unit_of_work(work)
    assert (await _count(ctx, inbox), await _count(ctx, notes), await _log(ctx), woken) == (0, 0, [], [])


async def test_a_savepoint_given_up_drops_what_it_staged_and_undoes_what_it_wrote(ctx: ServiceContext) -> None:
    kept, dropped = _payment("kept"), _payment("dropped")

    async def work(uow: UnitOfWork) -> None:
        uow.stage([kept])
        with pytest.raises(ValueError):
            async with uow.savepoint():
                await uow.conn.execute(insert(notes).values(text="undone"))
                uow.stage([dropped])
                uow.copy_to_history([(B, dropped)])
                raise ValueError("this event only")
        async with uow.savepoint():
            await uow.conn.execute(insert(notes).values(text="kept"))

    await ctx.unit_of_work(work)
    assert [event_id for _, _, event_id in await _log(ctx)] == [str(kept.event_id)]
    async with ctx.db.connect() as conn:
        assert (await conn.execute(select(notes.c.text))).scalars().all() == ["kept"]


async def test_a_transient_failure_runs_the_work_again_from_nothing(ctx: ServiceContext) -> None:
    attempts: list[int] = []
    event = _payment()

    async def work(uow: UnitOfWork) -> str:
        attempts.append(len(attempts) + 1)
        uow.stage([event])
        await uow.conn.execute(insert(notes).values(text=f"attempt {len(attempts)}"))
        if len(attempts) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return "done"

    assert await ctx.unit_of_work(work, retry=RetryPolicy(max_wait=5.0)) == "done"
    assert attempts == [1, 2]
    assert [event_id for _, _, event_id in await _log(ctx)] == [str(event.event_id)]
    async with ctx.db.connect() as conn:
        assert (await conn.execute(select(notes.c.text))).scalars().all() == ["attempt 2"]


async def test_without_a_retry_policy_a_transient_failure_is_the_callers(ctx: ServiceContext) -> None:
    async def work(uow: UnitOfWork) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    with pytest.raises(OperationalError):
        await ctx.unit_of_work(work)


async def test_a_command_taken_now_is_not_taken_again_when_its_copy_comes_from_the_topic(ctx: ServiceContext) -> None:
    """``submit`` and the consumer claim in one inbox through one unit of work: the command's
    copy that the relay publishes, delivered back, is a repeat."""
    handled: list[Envelope[Any]] = []

    async def decide(uow: UnitOfWork, command: Envelope[Any]) -> CommandDecision:
        await uow.conn.execute(insert(notes).values(text="decided"))
        return CommandDecision([])

    async def on_transfer(uow: UnitOfWork, envelope: Envelope[Any]) -> None:
        handled.append(envelope)

    broker = MemoryBroker()
    await ctx.submit(_transfer(), account=A, decide=decide)
    [command] = await broker.relay(ctx)
    assert command.event_type == "TransferRequested"
    assert await broker.deliver(ctx, EventRouter({TransferRequested: on_transfer}), [command.topic]) == 1
    assert handled == []
    assert await _count(ctx, inbox) == 1 and await _count(ctx, notes) == 1

    fresh = ctx.envelope(_transfer(), account=A)
    await consume(ctx, EventRouter({TransferRequested: on_transfer}), [as_record(ctx, fresh)])
    assert [envelope.event_id for envelope in handled] == [fresh.event_id]
