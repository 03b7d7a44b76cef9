"""The ledger's store on both databases the suite supports (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import text

from billing_events.catalog.identity import LegalStatus, SubscriberRegistered
from billing_events.catalog.payments import PaymentReceived
from billing_events.catalog.tariff import ChargeApplied, FeeKind
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_events.envelope import Envelope
from billing_events.money import Money
from billing_events.schema import plumbing_metadata
from billing_events.testing.intruder import as_intruder
from billing_events.topics import TopicNames
from ledger import service, store
from ledger.service import LedgerContext

clock = ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
A = "100000000008"


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
                           fee_kind=FeeKind.SUBSCRIPTION, billing_day=clock.now().date())
    batch = [_envelope(registered), *map(_envelope, payments), _envelope(payments[0]), _envelope(charge)]
    try:
        async with db.transaction() as conn:
            outcome = await service.post(ctx, conn, batch)
        assert outcome.rejected == []
        expected = sum(1_000 + i for i in range(50)) - 60_000
        assert (await service.balance(ctx, A)).main == expected
        assert len([e for e in outcome.publish if e.event_type == "BalanceChanged"]) == 51
        replay = await service.replay_account(ctx, A)
        assert replay.matches and replay.replayed_main == expected
        report = await service.verify(ctx)
        assert report.ok and report.transactions == 51 and report.totals == {"RUB": 0}
        async with db.transaction() as conn:  # the same batch again changes nothing
            again = await service.post(ctx, conn, batch)
        assert again.publish == [] and (await service.balance(ctx, A)).main == expected
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
        async with db.transaction() as conn:
            await service.post(ctx, conn, [_envelope(registered), *map(_envelope, payments)])
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
