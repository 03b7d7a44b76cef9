"""Repairing the projections while payments flow: nothing posted during a repair is overwritten.
Every kind of projection damage, with operator accounts in two currencies, is reported alike by
`verify` and `rebuild` and gone after one repair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from billing_contracts.accounts import luhn_check_digit
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.schema import plumbing_metadata
from billing_events.testing.intruder import as_intruder
from billing_events.testing.plugin import eventually
from billing_contracts.topics import TopicNames
from ledger import service, store
from ledger.context import LedgerContext
from ledger.domain import FindingKind, Seal

NUMBERS = [body + luhn_check_digit(body) for body in (f"1000000{i:04d}" for i in range(6))]
ROUNDS, BATCH = 5, 300
PAYMENTS = ROUNDS * BATCH


async def _postings(ledger: Any) -> int:
    async with ledger.runtime.db.connect() as conn:
        return await store.count_postings(conn)


async def test_repair_while_payments_flow_leaves_zero_drift(ledger: Any) -> None:
    """Each round sends payments and repairs as soon as the first of them is posted, while the
    consumer posts the rest: a repair that overwrote a posting made beside it would leave drift
    for the next repair to find."""
    for number in NUMBERS:
        await ledger.register(number)
    await ledger.pay(NUMBERS[0], 1_000, "before")
    await ledger.balance_becomes(NUMBERS[0], 1_000)
    async with ledger.runtime.db.transaction() as conn:  # something for the first repair to fix
        await conn.execute(text("UPDATE accounts SET main = main + 777 WHERE number = :n"), {"n": NUMBERS[1]})
    first = await service.rebuild(ledger.ctx, repair=True)
    assert first.repaired and first.refused == []
    assert [(m.account, m.stored, m.replayed) for m in first.mismatches] == [(f"sub:{NUMBERS[1]}:main", 777, 0)]
    expected = {n: 0 for n in NUMBERS}
    expected[NUMBERS[0]] = 1_000
    repairs = [first]

    async def send(round_: int) -> None:
        for i in range(round_ * BATCH, (round_ + 1) * BATCH):
            number = NUMBERS[i % len(NUMBERS)]
            await ledger.pay(number, 100 + i, f"flow-{i}")
            expected[number] += 100 + i

    for round_ in range(ROUNDS):
        sending = asyncio.create_task(send(round_))
        seen = repairs[-1].entries
        await eventually(lambda seen=seen: _more_than(ledger, seen), what=f"a payment of round {round_} posted")
        repairs.append(await service.rebuild(ledger.ctx, repair=True))  # the round's other payments go on
        await sending
    for number in NUMBERS:
        await ledger.balance_becomes(number, expected[number])
    assert [(r.mismatches, r.settings_mismatches, r.repaired, r.refused) for r in repairs[1:]] == \
        [([], [], False, [])] * ROUNDS
    entries = [r.entries for r in repairs]
    assert entries == sorted(set(entries)), "payments landed between the repairs"
    report = await service.verify(ledger.ctx)
    assert report.ok, report.findings
    assert report.mismatches == [] and report.transactions == 1 + PAYMENTS


async def _more_than(ledger: Any, postings: int) -> bool:
    return await _postings(ledger) > postings


# --- repair per (account, currency), on both databases ------------------------------------

A, B, NOBODY = "100000000008", "100000000016", "100000000024"  # NOBODY is never registered
STRANGER = "100000000032"
SUSPENSE = "op:suspense"
repair_clock = ManualClock(datetime(2026, 12, 10, 9, tzinfo=UTC))


def _envelope(payload: Any, account: str) -> Envelope[Any]:
    return Envelope.new(payload, account=account, producer="test", clock=repair_clock)


def _payment(number: str, minor: int, reference: str, currency: str = "RUB") -> Envelope[Any]:
    return _envelope(PaymentReceived(account_number=number, channel="terminal", reference=reference,
                                     amount=Money(minor=minor, currency=currency), received_at=repair_clock.now()),
                     number)


@pytest.fixture(params=["postgresql", "sqlite"])
async def two_currencies(request: Any, postgres_databases: Any, tmp_path: Path) -> AsyncIterator[LedgerContext]:
    """A ledger whose operator accounts hold roubles and dollars: A and B pay in roubles, a
    rouble payment for an unknown account and a dollar payment for A (kept in roubles) are parked
    in suspense, B is charged."""
    url = await postgres_databases.create() if request.param == "postgresql" else \
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    db = Database(url)
    await db.create_schema(plumbing_metadata, store.metadata)
    ctx = LedgerContext(db=db, clock=repair_clock, topics=TopicNames())
    registrations = [_envelope(SubscriberRegistered(
        account_number=n, contract_number=f"D-{n}", region="moscow", legal_status=LegalStatus.PERSON,
        masked_phone="+7", sealed_contact="x"), n) for n in (A, B)]
    charge = _envelope(ChargeApplied(charge_id="C-1", account_number=B, amount=Money(minor=3_000),
                                     charged_for=ChargedFor(item=ChargedItem.PLAN, code="internet-100"),
                                     fee_kind=FeeKind.SUBSCRIPTION, billing_day=repair_clock.now().date()), B)
    try:
        outcome = await ctx.unit_of_work(lambda uow: service.post(ctx, uow, [
                *registrations, _payment(A, 10_000, "T-1"), _payment(B, 20_000, "T-2"),
                _payment(NOBODY, 7_000, "T-3"), _payment(A, 4_200, "T-4", "USD"), charge]))
        assert outcome.rejected == []
        yield ctx
    finally:
        await db.dispose()


async def _projections(ctx: LedgerContext) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Every row of both projections, as stored."""
    async with ctx.db.connect() as conn:
        accounts = {tuple(row) for row in await conn.execute(select(
            store.accounts.c.number, store.accounts.c.currency, store.accounts.c.main, store.accounts.c.bonus,
            store.accounts.c.payment_type, store.accounts.c.credit_limit, store.accounts.c.is_open))}
        operators = {tuple(row) for row in await conn.execute(select(store.operator_balances))}
    return accounts, operators


def _stranger() -> Any:
    return insert(store.accounts).values(number=STRANGER, currency="RUB", main=50_000, bonus=0, payment_type="prepaid",
                                         credit_limit=0, is_open=True, opened_at=repair_clock.now())


DAMAGE = {
    "an edited balance": [text(f"UPDATE accounts SET main = main - 1 WHERE number = '{A}'")],
    "money moved between an operator account's currencies": [text(
        f"UPDATE operator_balances SET balance = balance + CASE currency WHEN 'RUB' THEN 500000000"
        f" ELSE -500000000 END WHERE code = '{SUSPENSE}'")],
    "an operator balance edited in one currency": [text(
        "UPDATE operator_balances SET balance = balance + 1 WHERE code = 'op:cash:terminal' AND currency = 'USD'")],
    "a deleted operator row": [text(f"DELETE FROM operator_balances WHERE code = '{SUSPENSE}' AND currency = 'USD'")],
    "an operator row in a currency never posted": [text(
        "INSERT INTO operator_balances (code, currency, balance) VALUES ('op:cash:terminal', 'EUR', 100)")],
    "edited settings": [text(
        f"UPDATE accounts SET payment_type = 'credit', credit_limit = 100000 WHERE number = '{A}'")],
    "an account moved to another currency": [text(f"UPDATE accounts SET currency = 'USD' WHERE number = '{B}'")],
    "a deleted account": [text(f"DELETE FROM accounts WHERE number = '{B}'")],
    "an account the journal never opened": [_stranger()],
}


@pytest.mark.parametrize("damage", DAMAGE)
async def test_one_repair_makes_every_projection_what_the_journal_says(two_currencies: LedgerContext,
                                                                      damage: str) -> None:
    ctx = two_currencies
    sound = await _projections(ctx)
    assert ("op:suspense", "USD", 4_200) in sound[1] and ("op:suspense", "RUB", 7_000) in sound[1]
    async with as_intruder(ctx.db) as conn:
        for statement in DAMAGE[damage]:
            await conn.execute(statement)
    found = await service.verify(ctx)
    assert found.findings and found.journal_findings == [], found.findings
    check = await service.rebuild(ctx)  # reports every drift verify reports, settings included
    assert (check.mismatches, check.settings_mismatches) == (found.mismatches, found.settings_mismatches)
    assert len(check.mismatches) + len(check.settings_mismatches) == len(found.findings)
    assert not check.repaired and await _projections(ctx) != sound

    repaired = await service.rebuild(ctx, repair=True)
    assert repaired.repaired and repaired.refused == []
    assert await _projections(ctx) == sound
    after = await service.verify(ctx)
    assert after.ok, after.findings
    again = await service.rebuild(ctx, repair=True)
    assert not again.repaired and again.mismatches == [] and again.settings_mismatches == []


async def test_money_moved_between_currencies_of_suspense_is_drift_in_each(two_currencies: LedgerContext) -> None:
    async with as_intruder(two_currencies.db) as conn:
        for statement in DAMAGE["money moved between an operator account's currencies"]:
            await conn.execute(statement)
    found = await service.verify(two_currencies)
    assert [(m.account, m.currency, m.stored, m.replayed) for m in found.mismatches] == [
        (SUSPENSE, "RUB", 500_007_000, 7_000), (SUSPENSE, "USD", -499_995_800, 4_200)]
    assert [(m.account, m.currency) for m in (await service.rebuild(two_currencies)).mismatches] == [
        (SUSPENSE, "RUB"), (SUSPENSE, "USD")]


async def test_a_repair_is_refused_while_the_journal_does_not_reproduce_a_seal(two_currencies: LedgerContext) -> None:
    async with two_currencies.db.connect() as conn:
        head = await store.head(conn)
    assert head is not None
    async with as_intruder(two_currencies.db) as conn:
        for statement in DAMAGE["an edited balance"]:
            await conn.execute(statement)
    damaged = await _projections(two_currencies)
    other_history = Seal(head.length, bytes(32), "a seal of another history")
    refused = await service.rebuild(two_currencies, repair=True, seals=[other_history])
    assert [f.kind for f in refused.refused] == [FindingKind.SEAL_NOT_REPRODUCED] and refused.seals_checked == 1
    assert not refused.repaired and await _projections(two_currencies) == damaged
    sealed = await service.rebuild(two_currencies, repair=True, seals=[Seal(head.length, head.hash, "the head")])
    assert sealed.repaired and sealed.refused == [] and sealed.seals_checked == 1
    assert (await service.verify(two_currencies)).ok
