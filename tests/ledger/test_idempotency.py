"""Money enters the journal once: one idempotency record per business key, the first fate wins,
and a repeat with other content is a conflict that is reported, never applied.

On both databases the suite supports, through the service layer the consumer and the commands use.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, text

from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import (
    BonusRedemptionRequested,
    PaymentType,
    RedemptionPurpose,
    TransferRequested,
)
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.refusal import Refusal
from billing_events.clock import ManualClock
from billing_events.testing.memory import staged_by
from billing_events.db import Database
from billing_contracts.envelope import Envelope, Event
from billing_contracts.money import Money
from billing_events.schema import outbox, plumbing_metadata
from billing_contracts.topics import TopicNames
from ledger import service, store
from ledger.commands import ChangePaymentType, RedeemBonus, Transfer
from ledger.domain import BonusCampaign, LedgerError, RequestRefused
from ledger.context import LedgerContext

A, B = "100000000008", "100000000016"
clock = ManualClock(datetime(2026, 12, 1, 10, tzinfo=UTC))

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


def envelope(payload: Event, account: str | None = None) -> Envelope[Any]:
    key = account or getattr(payload, "account_number", None) or payload.from_account  # type: ignore[attr-defined]
    return Envelope.new(payload, account=key, producer="test", clock=clock)


def registered(number: str) -> SubscriberRegistered:
    return SubscriberRegistered(account_number=number, contract_number=f"D-{number}", region="moscow",
                                legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")


def payment(number: str, minor: int, reference: str = "ref-1", channel: str = "terminal") -> PaymentReceived:
    return PaymentReceived(account_number=number, channel=channel, reference=reference,
                           amount=Money(minor=minor), received_at=clock.now())


def transfer(source: str, target: str, minor: int, request_id: UUID | None = None) -> Transfer:
    """The subscriber of ``source`` moves ``minor`` kopecks to ``target``."""
    return Transfer(from_account=source, to_account=target, amount=Money(minor=minor),
                    requested_by=f"cabinet:{source}", request_id=request_id)


def charge(number: str, minor: int, charge_id: str = "charge-1") -> ChargeApplied:
    return ChargeApplied(charge_id=charge_id, account_number=number, amount=Money(minor=minor),
                         charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=clock.now().date())


@dataclass(frozen=True)
class Posted:
    """What posting a batch staged and what it refused."""

    publish: list[Envelope[Any]]
    rejected: list[tuple[Envelope[Any], Refusal]]


class Ledger:
    def __init__(self, ctx: LedgerContext) -> None:
        self.ctx = ctx

    async def post(self, *payloads: Event) -> Posted:
        verdicts, published = await staged_by(self.ctx, lambda uow: service.post(self.ctx, uow, [envelope(p) for p in payloads]))
        return Posted(published, verdicts.rejected)

    async def main(self, number: str) -> int:
        return (await service.balance(self.ctx, number)).main

    async def bonus(self, number: str) -> int:
        return (await service.balance(self.ctx, number)).bonus

    async def open_suspense(self) -> list[Any]:
        async with self.ctx.db.connect() as conn:
            return await store.open_suspense(conn)

    async def journal_size(self) -> int:
        async with self.ctx.db.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(store.journal)) or 0)


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    campaigns = (BonusCampaign(name="20 % back", basis_points=2000, valid_from=datetime(2026, 1, 1, tzinfo=UTC),
                               valid_to=datetime(2028, 1, 1, tzinfo=UTC)),)
    ctx = LedgerContext(db=db, clock=clock, topics=TopicNames(), campaigns=campaigns, bonus_pays_charges=True)
    try:
        yield Ledger(ctx)
    finally:
        await db.dispose()


def reasons(outcome: Posted) -> list[str]:
    return [str(reason) for _, reason in outcome.rejected]


async def test_a_parked_payment_delivered_again_after_the_account_opened_stays_parked(ledger: Ledger) -> None:
    await ledger.post(payment(A, 15_000))  # the registration lags: parked in suspense
    assert len(await ledger.open_suspense()) == 1
    await ledger.post(registered(A))
    again = await ledger.post(payment(A, 15_000))  # the channel retries, under a new event id
    assert again.publish == [] and again.rejected == []
    assert await ledger.main(A) == 0
    assert [item.amount for item in await ledger.open_suspense()] == [15_000]


async def test_a_charge_settled_from_bonus_is_not_settled_again_once_the_bonus_is_spent(ledger: Ledger) -> None:
    await ledger.post(registered(A), payment(A, 10_000))  # 20 % back: 2,000 in bonuses
    assert await ledger.bonus(A) == 2_000
    await ledger.post(charge(A, 1_500))  # paid from the bonus balance
    await ledger.post(charge(A, 500, charge_id="charge-2"))  # the bonus is spent now
    assert (await ledger.main(A), await ledger.bonus(A)) == (10_000, 0)
    again = await ledger.post(charge(A, 1_500))  # charge-1 redelivered
    assert again.publish == [] and again.rejected == []
    assert (await ledger.main(A), await ledger.bonus(A)) == (10_000, 0)


async def test_a_payment_repeated_with_another_amount_is_a_conflict_reported_and_not_applied(ledger: Ledger) -> None:
    await ledger.post(registered(A), registered(B), payment(A, 15_000))
    size = await ledger.journal_size()
    other_amount = await ledger.post(payment(A, 99_000))
    other_account = await ledger.post(payment(B, 15_000))
    for outcome in (other_amount, other_account):
        assert outcome.publish == []
        [reason] = reasons(outcome)
        assert reason.startswith("conflicting_duplicate")
        assert "terminal:ref-1" in reason and "150.00 RUB" in reason
    assert "990.00 RUB" in reasons(other_amount)[0]
    assert B in reasons(other_account)[0] and A in reasons(other_account)[0]
    assert (await ledger.main(A), await ledger.main(B), await ledger.journal_size()) == (15_000, 0, size)


async def test_two_deliveries_of_one_payment_in_one_batch_credit_it_once(ledger: Ledger) -> None:
    await ledger.post(registered(A))
    outcome = await ledger.post(payment(A, 15_000), payment(A, 15_000), payment(A, 16_000))
    assert await ledger.main(A) == 15_000
    assert [r.split(":")[0] for r in reasons(outcome)] == ["conflicting_duplicate"]


async def test_a_refused_transfer_delivered_again_after_a_top_up_stays_refused(ledger: Ledger) -> None:
    await ledger.post(registered(A), registered(B))
    request = TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=5_000),
                                requested_by=f"cabinet:{A}")
    first = await ledger.post(request)
    assert [e.event_type for e in first.publish] == ["TransferRejected"]
    await ledger.post(payment(A, 10_000))
    again = await ledger.post(request)
    assert again.publish == [] and (await ledger.main(A), await ledger.main(B)) == (10_000, 0)


async def test_a_command_retried_with_its_request_id_answers_the_original_outcome(ledger: Ledger) -> None:
    await ledger.post(registered(A), registered(B), payment(A, 10_000))
    request_id = uuid4()
    first = await service.transfer(ledger.ctx, transfer(A, B, 4_000, request_id))
    again = await service.transfer(ledger.ctx, transfer(A, B, 4_000, request_id))
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert (await ledger.main(A), await ledger.main(B)) == (6_000, 4_000)
    with pytest.raises(LedgerError) as refused:
        await service.transfer(ledger.ctx, transfer(A, B, 9_000, request_id))
    assert refused.value.code == "conflicting_duplicate"
    assert "40.00 RUB" in refused.value.message and "90.00 RUB" in refused.value.message


async def test_a_refused_request_retried_with_its_request_id_is_refused_again_and_announced_once(
        ledger: Ledger) -> None:
    """The retry's answer is the first decision's, refusal included, even after a top-up."""
    await ledger.post(registered(A), registered(B), payment(A, 1_000))
    request_id = uuid4()
    refusals = []
    for _ in range(2):
        with pytest.raises(RequestRefused) as refused:
            await service.transfer(ledger.ctx, transfer(A, B, 4_000, request_id))
        refusals.append((refused.value.code, refused.value.message, refused.value.request_id))
        await ledger.post(payment(A, 10_000, reference=f"TOP-UP-{len(refusals)}"))
    assert refusals[0] == refusals[1] == ("insufficient_funds", f"{A} may transfer 10.00 RUB, not 40.00 RUB", request_id)
    assert (await ledger.main(A), await ledger.main(B)) == (21_000, 0)
    async with ledger.ctx.db.connect() as conn:
        staged = [json.loads(value) for value in (await conn.scalars(select(outbox.c.value))).all()]
    announced = [e for e in staged if e["event_type"] == "TransferRejected" and e["schema_version"] == 2]
    assert [e["payload"]["request_id"] for e in announced] == [str(request_id)]


async def test_the_store_refuses_a_second_record_for_one_key_whatever_the_code_path(ledger: Ledger) -> None:
    await ledger.post(registered(A), payment(A, 15_000))
    async with ledger.ctx.db.connect() as conn:
        rows = (await conn.execute(select(store.idempotency_keys))).mappings().all()
    [record] = [r for r in rows if r["family"] == "payment"]
    assert (record["key"], record["fate"]) == ("terminal:ref-1", "posted")
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        async with ledger.ctx.db.transaction() as conn:
            await conn.execute(store.idempotency_keys.insert().values({**record, "fingerprint": "other"}))


async def test_an_over_limit_payment_from_a_channel_is_parked_with_a_reason(ledger: Ledger) -> None:
    ledger.ctx = LedgerContext(db=ledger.ctx.db, clock=clock, topics=TopicNames(), max_payment=1_000_000)
    await ledger.post(registered(A))
    most = 10**15 - 1_000_001  # what suspense may still hold beside the first: it stays within ±10^15 too
    outcome = await ledger.post(payment(A, 1_000_001), payment(A, most, reference="ref-2"))
    assert outcome.rejected == []
    assert await ledger.main(A) == 0
    parked = await ledger.open_suspense()
    assert [(i.amount, i.reason.value) for i in parked] == [(1_000_001, "amount_over_limit"),
                                                            (most, "amount_over_limit")]
    [(_, past_the_bound)] = (await ledger.post(payment(A, 1, reference="ref-3"))).rejected  # credited, but
    assert past_the_bound.code == "amount_out_of_bounds"  # the terminal's cash account is at −10^15
    assert "op:cash:terminal would hold -10000000000000.01 RUB" in past_the_bound.message
    with pytest.raises(LedgerError) as refused:
        await service.transfer(ledger.ctx, transfer(A, B, 1_000_001))
    assert refused.value.code == "amount_over_limit"
    assert "10000.01 RUB" in refused.value.message and "10000.00 RUB" in refused.value.message


async def test_a_balance_that_would_leave_the_money_range_is_refused_in_words(ledger: Ledger) -> None:
    ledger.ctx = LedgerContext(db=ledger.ctx.db, clock=clock, topics=TopicNames(), max_payment=10**15)
    await ledger.post(registered(A), payment(A, 10**15 - 1))
    outcome = await ledger.post(payment(A, 2, reference="ref-2", channel="card"))  # the terminal's cash is full
    assert outcome.rejected == []
    assert await ledger.main(A) == 10**15 - 1
    assert [i.reason.value for i in await ledger.open_suspense()] == ["amount_over_limit"]


async def test_credit_is_not_cash(ledger: Ledger) -> None:
    await ledger.post(registered(A), registered(B), payment(A, 90_000))
    await service.change_payment_type(ledger.ctx, ChangePaymentType(
        account_number=A, payment_type=PaymentType.CREDIT, credit_limit=Money(minor=500_000),
        requested_by="operator:ivanova"))
    with pytest.raises(RequestRefused) as refused:
        await service.transfer(ledger.ctx, transfer(A, B, 500_000))
    assert refused.value.code == "credit_not_transferable"
    assert refused.value.message == f"{A} may transfer 900.00 RUB, not 5000.00 RUB: the credit limit covers charges only"
    assert (await ledger.main(A), await ledger.main(B)) == (90_000, 0)
    await ledger.post(charge(A, 150_000))  # charges may use the credit (the 180.00 RUB of bonus first)
    assert (await ledger.main(A), await ledger.bonus(A)) == (90_000 + 18_000 - 150_000, 0)


async def test_a_refused_bonus_redemption_is_an_answer_not_a_dead_letter(ledger: Ledger) -> None:
    await ledger.post(registered(A), payment(A, 10_000))
    request = BonusRedemptionRequested(request_id=uuid4(), account_number=A, amount=Money(minor=5_000),
                                       purpose=RedemptionPurpose.GIFT)
    outcome = await ledger.post(request)
    assert outcome.rejected == []
    [rejected] = [e.payload for e in outcome.publish]
    assert rejected.event_type == "BonusRedemptionRejected"
    assert (rejected.reason.value, rejected.requested.minor, rejected.available.minor) == (
        "insufficient_bonus", 5_000, 2_000)
    assert rejected.detail == f"{A} has 20.00 RUB in bonuses, not 50.00 RUB"
    events = await service.redeem_bonus(ledger.ctx, RedeemBonus(account_number=A, amount=Money(minor=1_500),
                                                                purpose=RedemptionPurpose.DISCOUNT))
    assert [e.event_type for e in events] == ["BalanceChanged", "BonusRedeemed"]
    assert await ledger.bonus(A) == 500


RAW_DAMAGE = [
    ("a posting of zero", "INSERT INTO postings (txn_id, account, amount, currency) "
                          "SELECT txn_id, account, 0, currency FROM postings LIMIT 1"),
    ("a currency that is no code", "UPDATE postings SET currency = 'rub'"),
    ("a negative credit limit", "UPDATE accounts SET credit_limit = -1"),
    ("a suspense item of no money", "UPDATE suspense SET amount = 0"),
]


@pytest.mark.parametrize(("damage", "statement"), RAW_DAMAGE, ids=[d for d, _ in RAW_DAMAGE])
async def test_the_database_refuses_raw_writes_that_break_the_rules(ledger: Ledger, damage: str, statement: str) -> None:
    await ledger.post(registered(A), payment(A, 10_000), payment(B, 5_000, reference="ref-2"))
    with pytest.raises(Exception, match="(?i)constraint|check"):
        async with ledger.ctx.db.transaction() as conn:
            await conn.execute(text(statement))


async def test_postgresql_refuses_to_commit_a_transaction_whose_postings_do_not_sum_to_zero(
    postgres_url: str,
) -> None:
    db = Database(postgres_url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ledger = Ledger(LedgerContext(db=db, clock=clock, topics=TopicNames()))
    try:
        await ledger.post(registered(A), payment(A, 10_000))
        for statement in ("UPDATE postings SET amount = amount + 1 WHERE account LIKE 'sub:%'",
                          "DELETE FROM postings WHERE account LIKE 'op:%'"):
            with pytest.raises(Exception, match="do not sum to zero"):
                async with db.transaction() as conn:
                    await conn.execute(text(statement))
        async with db.transaction() as conn:  # a balanced edit inside one transaction commits
            await conn.execute(text("UPDATE postings SET amount = -amount"))
            await conn.execute(text("UPDATE postings SET amount = -amount"))
        assert await ledger.main(A) == 10_000
    finally:
        await db.dispose()


def test_the_ledger_codes_the_catalog_documents_are_the_ledgers_own() -> None:
    from billing_contracts.catalog.ledger import LEDGER_REFUSALS
    from ledger.domain import ErrorCode

    assert set(LEDGER_REFUSALS) <= {code.value for code in ErrorCode}


async def test_a_request_decided_before_keys_were_scoped_is_still_a_repeat(ledger: Ledger) -> None:
    """Its record is under the bare request id: the same request delivered again (the inbox
    forgot it) changes nothing; another requester's request under that id is its own."""
    await ledger.post(registered(A), registered(B), payment(A, 10_000), payment(B, 10_000, reference="ref-2"))
    request = TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=4_000),
                                requested_by=f"cabinet:{A}")
    await ledger.post(request)
    async with ledger.ctx.db.transaction() as conn:  # as the records were written before
        await conn.execute(store.idempotency_keys.update().where(store.idempotency_keys.c.family == "transfer")
                           .values(key=str(request.request_id)))
    again = await ledger.post(request)
    assert again.publish == [] and again.rejected == []
    assert (await ledger.main(A), await ledger.main(B)) == (6_000, 14_000)
    theirs = await ledger.post(TransferRequested(request_id=request.request_id, from_account=B, to_account=A,
                                                 amount=Money(minor=1_000), requested_by=f"cabinet:{B}"))
    assert theirs.rejected == [] and (await ledger.main(A), await ledger.main(B)) == (7_000, 13_000)
