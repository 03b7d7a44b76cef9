"""The ledger's store on both databases the suite supports (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import select, text

from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_events.testing.memory import staged_by
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.schema import plumbing_metadata
from billing_events.testing.intruder import as_intruder
from billing_contracts.topics import TopicNames
from ledger import service, store
from ledger.commands import ChangePaymentType, Transfer
from ledger.context import LedgerContext

clock = ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
A = "100000000008"

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


def _envelope(payload: object) -> Envelope:
    return Envelope.new(payload, account=A, producer="test", clock=clock)  # type: ignore[arg-type]


async def test_batch_posting_replay_and_verify(database_url: str) -> None:
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames())
    registered = SubscriberRegistered(account_number=A, contract_number="D-1", region="moscow",
                                      legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
    payments = [PaymentReceived(account_number=A, channel="bank", reference=f"r{i}", amount=Money(minor=1_000 + i),
                                received_at=clock.now()) for i in range(50)]
    charge = ChargeApplied(charge_id=f"c-{uuid4()}", account_number=A, amount=Money(minor=60_000),
                           charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=clock.now().date())
    batch = [_envelope(registered), *map(_envelope, payments), _envelope(payments[0]), _envelope(charge)]
    try:
        outcome, published = await staged_by(ctx, lambda uow: service.post(ctx, uow, batch))
        assert outcome.rejected == []
        expected = sum(1_000 + i for i in range(50)) - 60_000
        assert (await service.balance(ctx, A)).main == expected
        assert len([e for e in published if e.event_type == "BalanceChanged"]) == 51
        replay = await service.replay_account(ctx, A)
        assert replay.matches and replay.replayed_main == expected
        report = await service.verify(ctx)
        assert report.ok and report.transactions == 51 and report.totals == {"RUB": 0}
        _, again = await staged_by(ctx, lambda uow: service.post(ctx, uow, batch))  # the same batch again changes nothing
        assert again == [] and (await service.balance(ctx, A)).main == expected
    finally:
        await db.dispose()


async def test_repair_refuses_a_tampered_journal_unless_trusted(database_url: str) -> None:
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames())
    registered = SubscriberRegistered(account_number=A, contract_number="D-1", region="moscow",
                                      legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
    payments = [PaymentReceived(account_number=A, channel="bank", reference=f"q{i}", amount=Money(minor=500),
                                received_at=clock.now()) for i in range(3)]
    try:
        await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [_envelope(registered), *map(_envelope, payments)]))
        async with db.transaction() as conn:
            await conn.execute(text("UPDATE accounts SET main = 1"))
        repaired = await service.rebuild(ctx, repair=True)
        assert repaired.repaired and repaired.refused == [] and (await service.balance(ctx, A)).main == 1_500
        async with as_intruder(db) as conn:  # a posting edited, and the balance made to match
            await conn.execute(text("UPDATE postings SET amount = 600 WHERE id = (SELECT max(id) FROM postings)"))
        refused = await service.rebuild(ctx, repair=True)
        assert not refused.repaired and {f.kind.value for f in refused.refused} == {"unbalanced", "broken_link"}
        assert (await service.balance(ctx, A)).main == 1_500
        trusted = await service.rebuild(ctx, repair=True, trust_journal=True, operator="auditor")
        assert trusted.repaired and trusted.trusted == refused.refused and (await service.balance(ctx, A)).main == 1_600
    finally:
        await db.dispose()


async def test_dropping_every_projection_and_rebuilding_gives_back_identical_accounts(database_url: str) -> None:
    """The journal is the whole truth: accounts' settings (opening, payment type, credit limit) are
    account facts in the chain, so the projections come back from it alone."""
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames())
    b = "100000000016"
    registered = [SubscriberRegistered(account_number=n, contract_number=f"D-{n}", region="moscow",
                                       legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
                  for n in (A, b)]
    payment = PaymentReceived(account_number=A, channel="card", reference="r-1", amount=Money(minor=90_000),
                              received_at=clock.now())
    lost = PaymentReceived(account_number="999999999999", channel="bank", reference="r-2", amount=Money(minor=1),
                           received_at=clock.now())
    charge = ChargeApplied(charge_id="c-1", account_number=b, amount=Money(minor=3_000),
                           charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=clock.now().date())
    try:
        await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [*map(_envelope_for, registered), _envelope(payment), _envelope_for(lost)]))
        await service.change_payment_type(ctx, ChangePaymentType(account_number=b, payment_type=PaymentType.CREDIT,
                                                                 credit_limit=Money(minor=50_000),
                                                                 requested_by="operator"))
        await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [_envelope_for(charge)]))
        await service.transfer(ctx, Transfer(from_account=A, to_account=b, amount=Money(minor=10_000),
                                             requested_by=f"cabinet:{A}"))
        before = await _projections(db)
        assert before["accounts"][1][4:6] == ("credit", 50_000)
        async with db.transaction() as conn:
            await conn.execute(text("DROP TABLE accounts"))
            await conn.execute(text("DROP TABLE operator_balances"))
        await db.create_schema(plumbing_metadata, store.metadata)
        drift = await service.verify(ctx)
        assert {f.kind.value for f in drift.findings} == {"projection_drift"}
        rebuilt = await service.rebuild(ctx, repair=True)
        assert rebuilt.repaired and rebuilt.refused == []
        after = await _projections(db)
        assert _without_versions(after) == _without_versions(before)
        # An account row made again starts past every version it announced, so the services'
        # views of it take what it announces next (they ignore what is not newer).
        announced = {row[0]: row[-1] for row in before["accounts"]}
        assert all(row[-1] > announced[row[0]] for row in after["accounts"])
        assert (await service.verify(ctx)).ok
    finally:
        await db.dispose()


def _without_versions(projections: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The projections without the accounts' versions (their last column): the money and settings."""
    return {**projections, "accounts": [row[:-1] for row in projections["accounts"]]}


def _envelope_for(payload: Any) -> Envelope:
    return Envelope.new(payload, account=payload.account_number, producer="test", clock=clock)


async def _projections(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    async with db.connect() as conn:
        return {table: [tuple(row) for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]
                for table in ("accounts", "operator_balances")}


async def test_the_raw_journal_is_the_same_whatever_its_batches(database_url: str) -> None:
    """The audit's read gives every journal row with its own postings, in chain order, however the
    rows are batched: a batch ending inside a transaction's postings, a count of rows or postings
    no batch size divides, a row left without postings in the middle of the chain."""
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames())
    registered = SubscriberRegistered(account_number=A, contract_number="D-1", region="moscow",
                                      legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
    payments = [PaymentReceived(account_number=A, channel="bank", reference=f"b{i}", amount=Money(minor=100 + i),
                                received_at=clock.now()) for i in range(7)]
    try:
        await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [_envelope(registered), *map(_envelope, payments)]))
        async with as_intruder(db) as conn:  # the fourth payment loses its postings
            await conn.execute(text("DELETE FROM postings WHERE txn_id = (SELECT txn_id FROM journal ORDER BY seq"
                                    " LIMIT 1 OFFSET 4)"))
        async with db.connect() as conn:
            ids = (await conn.execute(select(store.journal.c.txn_id).order_by(store.journal.c.seq))).scalars().all()
            lines = (await conn.execute(
                select(store.postings.c.txn_id, store.postings.c.account, store.postings.c.amount)
                .order_by(store.postings.c.id))).all()
            expected = [[(account, amount) for txn, account, amount in lines if txn == txn_id] for txn_id in ids]
            whole = [record async for record in store.raw_journal(conn)]
            assert [r.id for r in whole] == ids and len(whole) == 8
            assert [[(p.account, p.amount) for p in r.postings] for r in whole] == expected
            assert [len(r.postings) for r in whole] == [0, 2, 2, 2, 0, 2, 2, 2]
            for batch in (1, 2, 3, 5, 1000):
                chunks = [chunk async for chunk in store.raw_journal_chunks(conn, batch)]
                assert [record for chunk in chunks for record in chunk] == whole, batch
                assert all(chunks)
    finally:
        await db.dispose()
