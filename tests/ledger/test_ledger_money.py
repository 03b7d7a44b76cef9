"""Transfers under concurrency, credit, bonuses, statements, replay and tamper detection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from billing_contracts.accounts import luhn_check_digit
from billing_contracts.catalog.ledger import PaymentType, TransactionKind
from billing_contracts.money import Money
from ledger import service
from ledger.commands import ChangePaymentType, Transfer
from ledger.domain import LedgerError, RequestRefused, transaction_id_for

NUMBERS = [body + luhn_check_digit(body) for body in (f"1000000{i:04d}" for i in range(10))]


async def _fund(ledger: Any, numbers: list[str], minor: int) -> None:
    for number in numbers:
        await ledger.register(number)
        await ledger.pay(number, minor, f"fund-{number}")
    for number in numbers:
        await ledger.balance_becomes(number, minor)


async def test_concurrent_transfers_keep_every_kopeck(ledger: Any) -> None:
    await _fund(ledger, NUMBERS, 10_000)
    rng = random.Random(7)
    pairs = [rng.sample(NUMBERS, 2) for _ in range(200)]

    async def one(source: str, target: str) -> str:
        try:
            events = await service.transfer(ledger.ctx, Transfer(
                from_account=source, to_account=target, amount=Money(minor=rng.randint(1, 4_000)),
                requested_by="test"))
        except RequestRefused:
            return "rejected"
        except LedgerError as exc:
            return exc.code
        assert [e.event_type for e in events if e.event_type == "FundsTransferred"] == ["FundsTransferred"]
        return "moved"

    outcomes = await asyncio.gather(*(one(s, t) for s, t in pairs))
    assert outcomes.count("moved") > 50 and outcomes.count("rejected") > 0
    balances = [await ledger.main_balance(n) for n in NUMBERS]
    assert sum(balances) == 10 * 10_000
    assert min(balances) >= 0, "a prepaid account went below zero"
    assert await ledger.journal_total() == 0
    report = await service.verify(ledger.ctx)
    assert report.ok, report


async def test_transfer_refusals_name_the_reason(ledger: Any) -> None:
    a, b = NUMBERS[:2]
    await _fund(ledger, [a, b], 1_000)
    too_much = await _refused(_transfer(ledger, a, b, 1_001))
    assert too_much.code == "insufficient_funds"
    [announced] = await ledger.reader.wait_for_type("TransferRejected", request_id=too_much.request_id)
    assert announced.payload.reason == "insufficient_funds" and announced.account == a
    same = await _refused(_transfer(ledger, a, a, 1))
    assert same.code == "same_account"
    unknown = await _refused(_transfer(ledger, a, "100000000099", 1))
    assert unknown.code == "target_unknown"
    assert [await ledger.main_balance(n) for n in (a, b)] == [1_000, 1_000]


async def _transfer(ledger: Any, source: str, target: str, minor: int) -> list[Any]:
    """Support moves ``minor`` kopecks from ``source`` to ``target``."""
    return await service.transfer(ledger.ctx, Transfer(from_account=source, to_account=target,
                                                       amount=Money(minor=minor), requested_by="support"))


async def _refused(request: Awaitable[Any]) -> RequestRefused:
    """The refusal a request gets: an error, raised once its announcement is committed."""
    with pytest.raises(RequestRefused) as refusal:
        await request
    return refusal.value


async def test_credit_payment_type_lets_the_balance_go_to_minus_the_limit(ledger: Any) -> None:
    a, b = NUMBERS[:2]
    await _fund(ledger, [a, b], 1_000)
    await service.change_payment_type(ledger.ctx, ChangePaymentType(
        account_number=a, payment_type=PaymentType.CREDIT, credit_limit=Money(minor=5_000), requested_by="operator"))
    credit = await _refused(_transfer(ledger, a, b, 6_000))
    assert credit.code == "credit_not_transferable"  # credit covers charges, it is not cash
    await ledger.charge(a, 6_000, "CREDIT-1")
    await ledger.balance_becomes(a, -5_000)
    refused = await _refused(_transfer(ledger, a, b, 1))
    assert refused.code == "insufficient_funds"
    with pytest.raises(LedgerError) as back:
        await service.change_payment_type(ledger.ctx, ChangePaymentType(
            account_number=a, payment_type=PaymentType.PREPAID, credit_limit=Money(minor=0), requested_by="operator"))
    assert back.value.code == "debt_outstanding"
    [changed] = await ledger.reader.wait_for_type("PaymentTypeChanged", account_number=a)
    assert changed.payload.credit_limit.minor == 5_000


async def test_campaign_bonus_accrues_and_is_redeemed_without_touching_real_money(ledger: Any) -> None:
    from billing_contracts.catalog.ledger import BonusRedemptionRequested, RedemptionPurpose
    from billing_contracts.ids import uuid7

    a = NUMBERS[0]
    await ledger.register(a)
    await ledger.pay(a, 100_000, "CARD-1", channel="card")  # 1 000 ₽ by card: 20 % back
    [accrued] = await ledger.reader.wait_for_type("BonusAccrued", account_number=a)
    assert accrued.payload.amount.minor == 20_000
    assert await ledger.main_balance(a) == 100_000
    events = await service.submit(ledger.ctx, BonusRedemptionRequested(
        request_id=uuid7(), account_number=a, amount=Money(minor=15_000), purpose=RedemptionPurpose.DISCOUNT,
    ), account=a)
    redeemed = [e for e in events if e.event_type == "BonusRedeemed"]
    assert redeemed[0].payload.bonus_balance.minor == 5_000
    state = await service.balance(ledger.ctx, a)
    assert (state.main, state.bonus) == (100_000, 5_000)
    too_much = await _refused(service.submit(ledger.ctx, BonusRedemptionRequested(
        request_id=uuid7(), account_number=a, amount=Money(minor=5_001), purpose=RedemptionPurpose.GIFT,
    ), account=a))
    assert (too_much.code, too_much.params["available"].minor) == ("insufficient_bonus", 5_000)


async def test_statement_and_receipt(ledger: Any) -> None:
    a = NUMBERS[0]
    await ledger.register(a)
    start = ledger.clock.now()
    await ledger.pay(a, 30_000, "S-1")
    await ledger.balance_becomes(a, 30_000)
    ledger.clock.advance(timedelta(days=1))
    await ledger.charge(a, 1_000, "S-charge-1")
    await ledger.balance_becomes(a, 29_000)
    ledger.clock.advance(timedelta(days=1))
    await ledger.pay(a, 500, "S-2")
    await ledger.balance_becomes(a, 29_500)
    statement = await service.statement(ledger.ctx, a, start + timedelta(hours=1), start + timedelta(days=3))
    assert statement.opening_balance == 30_000 and statement.closing_balance == 29_500
    assert (statement.total_in, statement.total_out) == (500, 1_000)
    assert [line.balance_after for line in statement.lines] == [29_000, 29_500]
    changes = await ledger.reader.wait_for_type("BalanceChanged", 3, account_number=a)
    receipt = await service.receipt(ledger.ctx, changes[0].payload.transaction_id)
    assert (receipt.amount, receipt.reference, receipt.balance_after) == (30_000, "S-1", 30_000)


async def test_replay_equals_the_projection_and_tampering_is_found(ledger: Any) -> None:
    a, b = NUMBERS[:2]
    await _fund(ledger, [a, b], 5_000)
    funded = ledger.clock.now()
    ledger.clock.advance(timedelta(hours=1))
    await ledger.charge(a, 1_200, "T-charge")
    await ledger.balance_becomes(a, 3_800)
    replay = await service.replay_account(ledger.ctx, a)
    assert replay.matches and [s.after for s in replay.steps if s.entry.account.endswith(":main")] == [5_000, 3_800]
    before_the_payment = await service.replay_account(ledger.ctx, a, as_of=funded - timedelta(minutes=1))
    assert (before_the_payment.replayed_main, before_the_payment.steps) == (0, [])
    before_the_charge = await service.replay_account(ledger.ctx, a, as_of=funded + timedelta(minutes=1))
    assert (before_the_charge.replayed_main, [s.after for s in before_the_charge.steps]) == (5_000, [5_000])
    assert (await service.rebuild(ledger.ctx)).mismatches == []

    async with ledger.runtime.db.transaction() as conn:  # someone edits the projection by hand
        await conn.execute(text("UPDATE accounts SET main = main + 100 WHERE number = :n"), {"n": b})
    report = await service.rebuild(ledger.ctx)
    assert [(m.account, m.stored, m.replayed) for m in report.mismatches] == [(f"sub:{b}:main", 5_100, 5_000)]
    assert not (await service.replay_account(ledger.ctx, b)).matches
    repaired = await service.rebuild(ledger.ctx, repair=True)
    assert repaired.repaired and await ledger.main_balance(b) == 5_000
    assert (await service.verify(ledger.ctx)).ok


async def test_verify_finds_an_edited_journal_row(ledger: Any) -> None:
    a = NUMBERS[0]
    await _fund(ledger, [a], 5_000)
    await ledger.charge(a, 700, "V-charge")
    await ledger.balance_becomes(a, 4_300)
    assert (await service.verify(ledger.ctx)).ok
    async with ledger.runtime.db.transaction() as conn:  # edit both sides: double entry still holds
        await conn.execute(text("UPDATE postings SET amount = amount * 2 WHERE txn_id = "
                                "(SELECT txn_id FROM journal WHERE business_key = 'V-charge')"))
    report = await service.verify(ledger.ctx)
    assert not report.ok and not any(report.totals.values())
    charge_id = transaction_id_for(TransactionKind.CHARGE, "V-charge")
    assert report.broken_link is not None and report.broken_link.transaction_id == charge_id
    assert report.broken_link.position == 2  # the account's opening and the payment before it are intact
