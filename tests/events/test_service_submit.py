"""A command taken now goes the way its command topic would take it: inbox, decision, outbox, commit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select

from billing_contracts.catalog.ledger import TransferRefusal, TransferRejected, TransferRequested
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_events.errors import DomainError, ErrorKind
from billing_contracts.money import Money
from billing_events.schema import inbox, outbox, plumbing_metadata
from billing_events.service import CommandDecision, ServiceContext
from billing_events.unit_of_work import UnitOfWork
from billing_contracts.topics import TopicNames

A, B = "100000000008", "100000000016"
clock = ManualClock(datetime(2026, 11, 28, tzinfo=UTC))


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[tuple[ServiceContext, list[str]]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    await db.create_schema(plumbing_metadata)
    woken: list[str] = []
    try:
        yield ServiceContext(producer="ledger", db=db, clock=clock, topics=TopicNames(),
                             wake_relay=lambda: woken.append("woken")), woken
    finally:
        await db.dispose()


def _request() -> TransferRequested:
    return TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=100),
                             requested_by="cabinet")


def _rejected(ctx: ServiceContext, command: Envelope[Any]) -> Envelope[Any]:
    request = command.payload
    return ctx.envelope(TransferRejected(request_id=request.request_id, from_account=A, to_account=B,
                                         amount=request.amount, reason=TransferRefusal.INSUFFICIENT_FUNDS,
                                         detail="not enough money"), account=A, cause=command)


async def _rows(ctx: ServiceContext) -> tuple[list[Any], list[Any]]:
    async with ctx.db.connect() as conn:
        claimed = (await conn.execute(select(inbox.c.consumer, inbox.c.event_id, inbox.c.fingerprint))).all()
        staged = (await conn.execute(select(outbox.c.key, outbox.c.value))).all()
    return claimed, staged


async def test_a_command_is_claimed_decided_and_staged_with_its_events(ctx: Any) -> None:
    context, woken = ctx
    seen: list[Envelope[Any]] = []

    async def decide(uow: UnitOfWork, command: Envelope[Any]) -> CommandDecision:
        seen.append(command)
        return CommandDecision([_rejected(context, command)])

    answer = await context.submit(_request(), account=A, decide=decide)
    [command] = seen
    assert command.producer == "ledger" and command.account == A
    assert [e.event_type for e in answer] == ["TransferRejected"]
    claimed, staged = await _rows(context)
    assert [(c.consumer, c.event_id) for c in claimed] == [("ledger", command.event_id)]
    assert claimed[0].fingerprint is not None
    staged_ids = {json.loads(row.value)["event_id"] for row in staged}
    assert {str(command.event_id), str(answer[0].event_id)} <= staged_ids  # (and the answer's older version)
    assert woken == ["woken"]


async def test_a_repeat_answers_with_the_first_events_and_stages_nothing(ctx: Any) -> None:
    context, _ = ctx
    first = Envelope.new(_request(), account=A, producer="ledger", clock=clock)

    async def decide(uow: UnitOfWork, command: Envelope[Any]) -> CommandDecision:
        return CommandDecision([_rejected(context, first)], repeat=True)

    answer = await context.submit(_request(), account=A, decide=decide)
    assert [e.payload.request_id for e in answer] == [first.payload.request_id]
    claimed, staged = await _rows(context)
    assert len(claimed) == 1 and staged == []


async def test_a_refusal_leaves_nothing_behind(ctx: Any) -> None:
    context, woken = ctx

    async def decide(uow: UnitOfWork, command: Envelope[Any]) -> CommandDecision:
        raise DomainError("no account here", code="unknown_account", kind=ErrorKind.NOT_FOUND)

    with pytest.raises(DomainError, match="no account here"):
        await context.submit(_request(), account=A, decide=decide)
    assert await _rows(context) == ([], [])
    assert woken == []


async def test_an_announced_refusal_is_committed_with_its_events_then_raised(ctx: Any) -> None:
    """A refusal that is news (TransferRejected): the announcement is staged and committed with the
    command, and the caller gets the refusal as an error, as every other refusal reaches it."""
    context, woken = ctx
    refusal = DomainError("not enough money", code="insufficient_funds", kind=ErrorKind.CONFLICT)
    announced: list[Envelope[Any]] = []

    async def decide(uow: UnitOfWork, command: Envelope[Any]) -> CommandDecision:
        announced.append(_rejected(context, command))
        return CommandDecision(announced, refusal=refusal)

    with pytest.raises(DomainError) as raised:
        await context.submit(_request(), account=A, decide=decide)
    assert raised.value is refusal
    claimed, staged = await _rows(context)
    assert len(claimed) == 1
    assert str(announced[0].event_id) in {json.loads(row.value)["event_id"] for row in staged}
    assert woken == ["woken"]
