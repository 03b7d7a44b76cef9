"""Random interleavings of registrations, payments (redelivered under new and old event ids, and
repeated with other content), charges, transfers and suspense placements through the ledger's
service layer on a real database. After every run: each payment key was credited, parked or
placed exactly once and its money exists exactly once; the journal sums to zero; the balances
equal the replayed journal.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import TransactionKind, TransferRequested
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.schema import plumbing_metadata
from billing_contracts.topics import TopicNames
from ledger import service, store
from ledger.commands import ResolveSuspense
from ledger.domain import LedgerError, OperatorNote, SuspenseStatus
from ledger.context import LedgerContext

NUMBERS = ("100000000008", "100000000016", "100000000024")
REFERENCES = ("r1", "r2", "r3", "r4", "r5")
CHARGES = ("c1", "c2", "c3")
REQUESTS = tuple(UUID(int=n) for n in range(1, 4))
clock = ManualClock(datetime(2026, 12, 1, 10, tzinfo=UTC))

numbers = st.sampled_from(NUMBERS)
amounts = st.integers(min_value=1, max_value=5_000)
actions = st.one_of(
    st.tuples(st.just("register"), numbers),
    st.tuples(st.just("pay"), numbers, amounts, st.sampled_from(REFERENCES)),
    st.tuples(st.just("redeliver"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("charge"), numbers, amounts, st.sampled_from(CHARGES)),
    st.tuples(st.just("transfer"), numbers, numbers, amounts, st.sampled_from(REQUESTS)),
    st.tuples(st.just("place"), st.integers(min_value=0, max_value=5), numbers),
)
# Each inner list is one database transaction (a consumer's batch).
scenarios = st.lists(st.lists(actions, min_size=1, max_size=4), min_size=1, max_size=12)

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


def _envelope(payload: Any, account: str) -> Envelope[Any]:
    return Envelope.new(payload, account=account, producer="test", clock=clock)


class Run:
    def __init__(self, ctx: LedgerContext) -> None:
        self.ctx = ctx
        self.sent: list[Envelope[Any]] = []
        self.first_payment: dict[str, tuple[str, int]] = {}
        """Each payment key's first content: the one that must stand."""

    def build(self, action: tuple[Any, ...]) -> Envelope[Any] | None:
        match action:
            case ("register", number):
                return _envelope(SubscriberRegistered(
                    account_number=number, contract_number=f"D-{number}", region="moscow",
                    legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x"), number)
            case ("pay", number, minor, reference):
                self.first_payment.setdefault(f"terminal:{reference}", (number, minor))
                return _envelope(PaymentReceived(account_number=number, channel="terminal", reference=reference,
                                                 amount=Money(minor=minor), received_at=clock.now()), number)
            case ("redeliver", pick):
                return self.sent[pick % len(self.sent)] if self.sent else None  # the very same event
            case ("charge", number, minor, charge_id):
                return _envelope(ChargeApplied(charge_id=charge_id, account_number=number, amount=Money(minor=minor),
                                               charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=clock.now().date()), number)
            case ("transfer", source, target, minor, request_id):
                return _envelope(TransferRequested(request_id=request_id, from_account=source, to_account=target,
                                                   amount=Money(minor=minor), requested_by=f"cabinet:{source}"), source)
        return None

    async def batch(self, batch: list[tuple[Any, ...]]) -> None:
        envelopes = []
        for action in batch:
            if action[0] == "place":
                await self.place(action[1], action[2])
            elif (envelope := self.build(action)) is not None:
                envelopes.append(envelope)
        if envelopes:
            await self.ctx.unit_of_work(lambda uow: service.post(self.ctx, uow, envelopes))
            self.sent.extend(envelopes)

    async def place(self, pick: int, target: str) -> None:
        async with self.ctx.db.connect() as conn:
            parked = await store.open_suspense(conn)
        if parked:
            item = parked[pick % len(parked)]
            try:
                await service.resolve_suspense(self.ctx, ResolveSuspense(
                    parked_transaction_id=item.transaction_id, target_account=target,
                    operator=OperatorNote("operator.test", "the payer typed it wrong")))
            except LedgerError as refused:
                assert refused.code in {"unknown_account", "account_closed"}

    async def check(self) -> None:
        async with self.ctx.db.connect() as conn:
            rows = (await conn.execute(
                select(store.journal.c.kind, store.journal.c.business_key, store.postings.c.account,
                       store.postings.c.amount)
                .join(store.postings, store.postings.c.txn_id == store.journal.c.txn_id))).all()
            suspense = {item.transaction_id: item for item in
                        (await conn.execute(select(store.suspense))).all()}
        decided = Counter(r.business_key for r in rows if r.kind in {TransactionKind.PAYMENT, TransactionKind.PAYMENT_PARKED}
                          and r.account.startswith("op:cash:"))
        assert set(decided) == set(self.first_payment), "every payment key decided"
        assert all(count == 1 for count in decided.values()), f"a payment key decided twice: {decided}"
        cash = sum(r.amount for r in rows if r.account == "op:cash:terminal")
        assert -cash == sum(minor for _, minor in self.first_payment.values()), "each payment's money exists once"
        for r in rows:
            if r.kind == TransactionKind.PAYMENT_PARKED and r.account == "op:suspense":
                number, minor = self.first_payment[r.business_key]
                assert r.amount == minor
        placed_or_open = [s for s in suspense.values() if s.status in {SuspenseStatus.OPEN, SuspenseStatus.RESOLVED}]
        assert len(placed_or_open) == sum(1 for r in rows if r.kind == TransactionKind.PAYMENT_PARKED
                                          and r.account == "op:suspense")
        assert sum(r.amount for r in rows) == 0, "the journal sums to zero"
        report = await service.verify(self.ctx)
        assert report.ok, report


async def _scenario(url: str, batches: list[list[tuple[Any, ...]]]) -> None:
    db = Database(url)
    await db.create_schema(plumbing_metadata, store.metadata)
    if db.dialect == "postgresql":  # one database for every example: start each from nothing
        async with db.transaction() as conn:
            tables = ", ".join(t.name for t in (*plumbing_metadata.sorted_tables, *store.metadata.sorted_tables))
            await conn.execute(text(f"TRUNCATE {tables}"))
    run = Run(LedgerContext(db=db, clock=clock, topics=TopicNames()))
    try:
        for batch in batches:
            await run.batch(batch)
        await run.check()
    finally:
        await db.dispose()


@settings(max_examples=120, deadline=None)
@given(batches=scenarios)
def test_money_enters_the_journal_once_on_sqlite(batches: list[list[tuple[Any, ...]]]) -> None:
    asyncio.run(_scenario("sqlite+aiosqlite://", batches))  # a database in memory: a new one for each example


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=scenarios)
def test_money_enters_the_journal_once_on_postgresql(postgres_url: str, batches: list[list[tuple[Any, ...]]]) -> None:
    asyncio.run(_scenario(postgres_url, batches))
