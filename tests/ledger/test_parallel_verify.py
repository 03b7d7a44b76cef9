"""Verify on every core: the journal cut into spans audited in worker processes finds what one
pass finds, finding for finding in the same order, whatever was done to the rows: a content
edited, a row deleted, two swapped, one inserted, a predecessor's hash edited, the chain
rewritten consistently, at the first row of a span and within one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_contracts.topics import TopicNames
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_events.schema import plumbing_metadata
from billing_events.testing.intruder import as_intruder
from ledger import integrity, service, store
from ledger.context import LedgerContext
from ledger.domain import GENESIS_HASH, FindingKind, Seal

clock = ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
A = "100000000008"
RECORDS = 40
"""The account's opening and 39 payments: with 3 workers the spans start at seq 1, 15 and 29;
with 7 at 1, 7, 13, 19, 25, 31 and 37."""
WORKERS = (2, 3, 7)
Tamper = Callable[[AsyncConnection], Awaitable[None]]


def _envelope(payload: Any) -> Envelope[Any]:
    return Envelope.new(payload, account=A, producer="test", clock=clock)


@pytest.fixture
async def ctx(postgres_url: str) -> AsyncIterator[LedgerContext]:
    db = Database(postgres_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames())
    registered = SubscriberRegistered(account_number=A, contract_number="D-1", region="moscow",
                                      legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
    payments = [PaymentReceived(account_number=A, channel="bank", reference=f"r{i}", amount=Money(minor=1_000 + i),
                                received_at=clock.now()) for i in range(RECORDS - 1)]
    try:
        await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [_envelope(registered), *map(_envelope, payments)]))
        yield ctx
    finally:
        await db.dispose()


async def _hash_at(conn: AsyncConnection, seq: int) -> bytes:
    return (await conn.execute(text("SELECT hash FROM journal WHERE seq = :s"), {"s": seq})).scalar_one()


async def _edit_amounts(conn: AsyncConnection, seq: int) -> None:
    """A payment made one kopeck larger, on both its postings: balanced, but not what was hashed."""
    await conn.execute(text("UPDATE postings SET amount = amount + sign(amount)"
                            " WHERE txn_id = (SELECT txn_id FROM journal WHERE seq = :s)"), {"s": seq})


async def _delete(conn: AsyncConnection, seq: int) -> None:
    await conn.execute(text("DELETE FROM postings WHERE txn_id = (SELECT txn_id FROM journal WHERE seq = :s)"),
                       {"s": seq})
    await conn.execute(text("DELETE FROM journal WHERE seq = :s"), {"s": seq})


async def _swap(conn: AsyncConnection, seq: int) -> None:
    """The rows at ``seq`` and the one before trade places."""
    places = {"s": seq, "before": seq - 1}
    await conn.execute(text("UPDATE journal SET seq = -seq WHERE seq IN (:s, :before)"), places)
    await conn.execute(text("UPDATE journal SET seq = CASE WHEN -seq = :s THEN :before ELSE :s END WHERE seq < 0"),
                       places)


async def _insert_before(conn: AsyncConnection, seq: int) -> None:
    """A forged row before ``seq``: a copy of it under another id, saying it follows the row
    before it (its hash is the copied one, not that of its own content)."""
    await conn.execute(text("UPDATE journal SET seq = -seq * 10"))  # through negatives: no two rows share a seq
    await conn.execute(text("UPDATE journal SET seq = -seq"))
    await conn.execute(text(
        "INSERT INTO journal (seq, txn_id, kind, business_key, cause_event_id, cause_type, occurred_at, recorded_at,"
        " hash, prev_hash) SELECT seq - 5, gen_random_uuid(), kind, business_key || '-forged', cause_event_id,"
        " cause_type, occurred_at, recorded_at, hash, prev_hash FROM journal WHERE seq = :s * 10"), {"s": seq})


async def _edit_prev_hash(conn: AsyncConnection, seq: int) -> None:
    """Only the predecessor's hash a row stores: the row itself still hashes right after the row before."""
    await conn.execute(text("UPDATE journal SET prev_hash = :h WHERE seq = :s"), {"h": b"\x07" * 32, "s": seq})


async def _edit_and_reseal_prev_hash(conn: AsyncConnection, seq: int) -> None:
    """A row's content edited and its hash made that of the new content after the predecessor's
    hash it now claims: the row checks on its own, and only its join gives it away."""
    await _edit_amounts(conn, seq)
    forged_previous = b"\x09" * 32
    record = await _record_at(conn, seq)
    await conn.execute(text("UPDATE journal SET prev_hash = :p, hash = :h WHERE seq = :s"),
                       {"p": forged_previous, "h": record.content_hash(forged_previous), "s": seq})


async def _rewrite_chain_from(conn: AsyncConnection, seq: int) -> None:
    """Content edited, then every hash from there on recomputed and the chain head moved: the
    predecessors' hashes the rows store are left as they were."""
    await _edit_amounts(conn, seq)
    previous = await _hash_at(conn, seq - 1)
    async for record in store.raw_journal(conn):
        if record.seq >= seq:
            previous = record.content_hash(previous)
            await conn.execute(text("UPDATE journal SET hash = :h WHERE seq = :s"), {"h": previous, "s": record.seq})
    await conn.execute(text("UPDATE chain_head SET hash = :h"), {"h": previous})


async def _record_at(conn: AsyncConnection, seq: int) -> Any:
    return next(iter([r async for r in store.raw_journal(conn) if r.seq == seq]))


async def _untouched(conn: AsyncConnection) -> None:
    """Nothing done: the spans join and the journal verifies clean."""


def _at(tamper: Callable[[AsyncConnection, int], Awaitable[None]], *seqs: int) -> Tamper:
    async def at_each(conn: AsyncConnection) -> None:
        for seq in seqs:
            await tamper(conn, seq)
    return at_each


SPAN_STARTS = (15, 19)
"""The first rows of spans (3 workers: 15; 7 workers: 19), and rows within the others'."""

TAMPERS: dict[str, Tamper] = {
    "untouched": _untouched,
    "content edited": _at(_edit_amounts, *SPAN_STARTS),
    "row deleted": _at(_delete, *SPAN_STARTS),
    "rows swapped": _at(_swap, 15),
    "row inserted": _at(_insert_before, 19),
    "predecessor's hash edited": _at(_edit_prev_hash, 1, *SPAN_STARTS, 22),
    "row resealed after a forged predecessor": _at(_edit_and_reseal_prev_hash, 15),
    "chain rewritten consistently": _at(_rewrite_chain_from, 15),
}


async def _seals(ctx: LedgerContext) -> list[Seal]:
    """One seal the journal reproduces as written, one it never did, one longer than the journal."""
    async with ctx.db.connect() as conn:
        return [Seal(10, await _hash_at(conn, 10), "auditor"), Seal(30, b"\x01" * 32, "auditor"),
                Seal(RECORDS + 5, b"\x02" * 32, "auditor")]


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
async def test_spans_audited_in_parallel_find_what_one_pass_finds(ctx: LedgerContext, tamper: Tamper) -> None:
    seals = await _seals(ctx)
    async with as_intruder(ctx.db) as conn:
        await tamper(conn)
    one_pass = await integrity.verify(ctx, seals, workers=1)
    for workers in WORKERS:
        in_parallel = await integrity.verify(ctx, seals, workers=workers)
        assert repr(in_parallel) == repr(one_pass), f"{workers} workers"


async def test_a_prev_hash_edited_alone_leaves_the_chain_whole(ctx: LedgerContext) -> None:
    """The chain is each row's hash after the hash the row before stores; the predecessor's hash
    a row keeps beside it only lets a span be checked on its own, so editing it alone is no break."""
    async with as_intruder(ctx.db) as conn:
        await _at(_edit_prev_hash, 15)(conn)
    report = await integrity.verify(ctx, workers=3)
    assert report.ok and report.records == RECORDS


async def test_a_resealed_row_is_the_first_broken_link_and_the_rest_are_suspect(ctx: LedgerContext) -> None:
    async with as_intruder(ctx.db) as conn:
        await _at(_edit_and_reseal_prev_hash, 15)(conn)
    report = await integrity.verify(ctx, workers=3)
    kinds = [f.kind for f in report.findings]
    assert report.broken_link is not None and report.broken_link.position == 14
    assert kinds[:2] == [FindingKind.BROKEN_LINK, FindingKind.BROKEN_LINK]  # the row and the one after it
    assert FindingKind.SUSPECT_AFTER_BREAK in kinds


async def test_every_row_stores_the_hash_of_the_row_before(ctx: LedgerContext) -> None:
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(text("SELECT prev_hash, hash FROM journal ORDER BY seq"))).all()
    assert len(rows) == RECORDS
    assert [prev for prev, _ in rows] == [GENESIS_HASH, *(own for _, own in rows[:-1])]


async def test_the_spans_cover_the_journal_in_order(ctx: LedgerContext) -> None:
    async with ctx.db.transaction() as conn:
        spans = await store.journal_spans(conn, 3)
    assert [(s.first_seq, s.last_seq, s.start, s.records) for s in spans] == [
        (1, 14, 0, 14), (15, 28, 14, 14), (29, 40, 28, 12)]
