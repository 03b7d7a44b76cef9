"""Blocking over the real broker and PostgreSQL: debt (from the ledger's BalanceChanged) and the
voluntary block's six rules, through the service commands and the running billing clock."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.catalog.tariff import RequestChannel
from billing_events.clock import ManualClock
from billing_events.testing.plugin import eventually
from tariff import store
from tariff.catalog import Catalog
from tariff.errors import (
    BlockAlreadyRunning,
    BlockAlreadyUsedThisYear,
    BlockDaysOutOfRange,
    BlockNeedsHomeInternet,
    BlockNotAffordable,
    NoRunningBlock,
)
from tariff.commands import ActivatePlan, EndVoluntaryBlock, StartVoluntaryBlock
from tariff.service import activate_plan, close_days, end_block, start_block

ONE_DAY = timedelta(days=1)
DEBTOR, CREDIT, EARLY = "100000000040", "100000000057", "100000000065"
V1, V2, V3, V4 = "100000000073", "100000000081", "100000000099", "100000000107"
SWITCHER, LENDER = "100000000115", "100000000123"


def days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def charged_days(tariff: Any, reader: Any, account: str) -> set[date]:
    return {
        c.billing_day for c in tariff.of(reader, "ChargeApplied", account)
        if c.fee_kind == "subscription"
    }


async def test_debt_blocks_charging_and_a_payment_unblocks(tariff: Any, catalog: Catalog) -> None:
    clock = ManualClock(tariff.noon(date(2026, 1, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        # A balance can arrive before the registration: it is kept and applied then.
        await tariff.send_balance(runtime, producer, EARLY, -500)
        assert await tariff.state(runtime, EARLY) is None
        registered = await tariff.register(runtime, producer, EARLY)
        assert registered.debt_blocked and registered.balance.main.minor == -500

        for account in (DEBTOR, CREDIT):
            await tariff.register(runtime, producer, account)
            await activate_plan(ctx, ActivatePlan(account_number=account, plan="internet-100"))
        # Enough for Feb 1 (1965), not for Feb 2 as well; the credit account starts at zero.
        await tariff.send_balance(runtime, producer, DEBTOR, 3830)
        await tariff.send_balance(runtime, producer, CREDIT, 0,
                                  payment_type=PaymentType.CREDIT, credit_limit=50000)
        clock.set(tariff.noon(date(2026, 2, 3)))
        await close_days(ctx, date(2026, 2, 2))  # Feb 1 and 2 charged

        await tariff.settle(runtime, producer, DEBTOR, -100)  # the ledger posted them
        await reader.wait_for_type("AccountBlocked", account=DEBTOR)
        # The credit type goes below zero without a block, down to minus its limit.
        await tariff.send_balance(runtime, producer, CREDIT, -40000,
                                  payment_type=PaymentType.CREDIT, credit_limit=50000)
        assert not (await tariff.state(runtime, CREDIT)).debt_blocked
        await tariff.send_balance(runtime, producer, CREDIT, -50001,
                                  payment_type=PaymentType.CREDIT, credit_limit=50000)
        await reader.wait_for_type("AccountBlocked", account=CREDIT)

        clock.set(tariff.noon(date(2026, 2, 6)))
        blocked = await close_days(ctx, date(2026, 2, 5))  # Feb 3 to 5: nothing charged
        assert (blocked.days_closed, blocked.charges) == (6, 0)

        await tariff.send_balance(runtime, producer, DEBTOR, 4900, delta=5000)  # a payment
        await reader.wait_for_type("AccountUnblocked", account=DEBTOR)
        await tariff.send_balance(runtime, producer, DEBTOR, 4800, delta=-100)  # no new verdict
        clock.set(tariff.noon(date(2026, 2, 8)))
        resumed = await close_days(ctx, date(2026, 2, 7))
        assert resumed.charges == 2  # the debtor's Feb 6 and 7; the credit account stays blocked
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 6)

    blocks = [(e.account_number, e.reason) for e in tariff.of(reader, "AccountBlocked")]
    assert sorted(blocks) == sorted([(EARLY, "debt"), (DEBTOR, "debt"), (CREDIT, "debt")])
    assert [(e.account_number, e.reason) for e in tariff.of(reader, "AccountUnblocked")] == [
        (DEBTOR, "debt")
    ]
    assert charged_days(tariff, reader, DEBTOR) == days(date(2026, 2, 1), date(2026, 2, 2)) | days(
        date(2026, 2, 6), date(2026, 2, 7)
    )
    assert charged_days(tariff, reader, CREDIT) == days(date(2026, 2, 1), date(2026, 2, 2))
    assert not tariff.of(reader, "ChargeApplied", EARLY)


async def test_a_payment_type_change_alone_moves_the_line_of_debt(tariff: Any) -> None:
    """The ledger tells a switch to credit or a new limit by PaymentTypeChanged alone when no
    money moves: the tariff takes the new line at once (the simulation's seed 1 found an account
    switched to credit before any payment blocked on its first charged day, and unblocked only
    when the ledger's answer to that charge carried the limit)."""
    clock = ManualClock(tariff.noon(date(2026, 1, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        for account in (SWITCHER, LENDER):
            await tariff.register(runtime, producer, account)
            await activate_plan(ctx, ActivatePlan(account_number=account, plan="internet-100"))
        await tariff.send_balance(runtime, producer, SWITCHER, -500)
        await reader.wait_for_type("AccountBlocked", account=SWITCHER)

        credit = tariff.payment_type(SWITCHER, PaymentType.CREDIT, 50000, 2, clock)
        await tariff.send_ledger(runtime, producer, credit)  # a debt within the new limit
        await reader.wait_for_type("AccountUnblocked", account=SWITCHER)
        await tariff.send_ledger(runtime, producer, tariff.payment_type(LENDER, PaymentType.CREDIT, 50000, 1, clock))
        clock.set(tariff.noon(date(2026, 2, 3)))
        await close_days(ctx, date(2026, 2, 2))  # Feb 1 and 2: below zero, within the limit

        # An older change delivered again (a rewind) moves the line back for nobody.
        await tariff.send_ledger(runtime, producer, tariff.payment_type(SWITCHER, PaymentType.PREPAID, 0, 1, clock))
        await tariff.send_ledger(runtime, producer, credit)
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 4)

    for account in (SWITCHER, LENDER):
        state = await tariff.state(runtime, account)
        assert not state.debt_blocked and state.balance.credit_limit.minor == 50000
        assert charged_days(tariff, reader, account) == days(date(2026, 2, 1), date(2026, 2, 2))
    assert [e.account_number for e in tariff.of(reader, "AccountBlocked")] == [SWITCHER]
    assert [e.account_number for e in tariff.of(reader, "AccountUnblocked")] == [SWITCHER]


async def caught_up(runtime: Any, accounts: list[str], today: date) -> None:
    """Wait until the billing clock has closed every day before ``today`` for the accounts."""

    async def done() -> bool:
        async with runtime.db.connect() as conn:
            rows = await conn.execute(
                select(store.subscriptions.c.next_close_day).where(
                    store.subscriptions.c.account_number.in_(accounts)
                )
            )
            return all(day == today for day in rows.scalars())

    await eventually(done, what=f"days before {today} closed")


async def test_every_voluntary_block_rule_allowed_and_refused(
    tariff: Any, catalog: Catalog
) -> None:
    """V1: moscow internet, 5 days from the cabinet; V2: TV only; V3: spb bundle, 30 days from
    support, ended early; V4: too poor, then exactly the price, a one-day block. The running
    billing clock (ticking every 50 ms) closes the days as the manual clock moves."""
    clock = ManualClock(tariff.noon(date(2026, 11, 30)))
    settings = await tariff.settings(billing_clock_enabled=True)
    accounts = [V1, V2, V3, V4]
    async with tariff.running(settings, clock) as (runtime, ctx, producer, reader):
        for account, region, plan, money in [
            (V1, "moscow", "internet-100", 100000),
            (V2, "moscow", "tv-basic", 100000),
            (V3, "spb", "combo-100-optimum", 100000),
            (V4, "moscow", "internet-100", 16072),
        ]:
            await tariff.register(runtime, producer, account, region)
            await activate_plan(ctx, ActivatePlan(account_number=account, plan=plan))
            await tariff.send_balance(runtime, producer, account, money)

        # December 1 to 9 cost V4 15972, which it has, but leave it 1.00 RUB.
        december_10 = date(2026, 12, 10)
        clock.set(tariff.noon(december_10))
        await caught_up(runtime, accounts, december_10)

        def ask(account: str, n: int, via: RequestChannel = RequestChannel.CABINET) -> Any:
            return start_block(
                ctx, StartVoluntaryBlock(account_number=account, days=n, requested_via=via)
            )

        # Rule 1: 1 to 30 days.
        for bad in (0, 31):
            refusal = await tariff.refused(runtime, V1, ask(V1, bad), BlockDaysOutOfRange)
            assert "rule 1" in str(refusal) and refusal.field == "days"
        # Rule 3: no home internet, no block.
        refusal = await tariff.refused(runtime, V2, ask(V2, 5), BlockNeedsHomeInternet)
        assert "rule 3" in str(refusal)
        # Rule 5: the balance must pay the region's price (15000 in moscow).
        refusal = await tariff.refused(runtime, V4, ask(V4, 1), BlockNotAffordable)
        assert "rule 5" in str(refusal) and "150.00 RUB" in str(refusal)
        # Rule 6: nothing to end.
        await tariff.refused(
            runtime, V1, end_block(ctx, EndVoluntaryBlock(account_number=V1)), NoRunningBlock
        )

        started = await ask(V1, 5)
        assert started.events == ["ChargeApplied", "AccountBlocked", "VoluntaryBlockStarted"]
        await ask(V3, 30, RequestChannel.SUPPORT)  # rule 1: 30 days allowed; rule 2: support
        await tariff.settle(runtime, producer, V4, 100)  # the ledger posted December 1 to 9
        await tariff.send_balance(runtime, producer, V4, 15000, delta=14900)
        await ask(V4, 1, RequestChannel.SUPPORT)  # rule 5: exactly the price is enough
        await tariff.settle(runtime, producer, V4, 0)  # the ledger posted the block's price
        await tariff.send_balance(runtime, producer, V4, 60000, delta=60000)  # for the days after
        await tariff.refused(runtime, V1, ask(V1, 3), BlockAlreadyRunning)

        december_13 = date(2026, 12, 13)
        clock.set(tariff.noon(december_13))
        await caught_up(runtime, accounts, december_13)
        ended = await end_block(ctx, EndVoluntaryBlock(account_number=V3))  # rule 6: early
        assert ended.events == ["AccountUnblocked", "VoluntaryBlockEnded"]

        december_16 = date(2026, 12, 16)
        clock.set(tariff.noon(december_16))
        await caught_up(runtime, accounts, december_16)
        # Rule 1: once a calendar year, also after the block ended (early or not).
        for account in (V1, V3):
            refusal = await tariff.refused(runtime, account, ask(account, 1),
                                           BlockAlreadyUsedThisYear)
            assert "2026" in str(refusal)

        january_4 = date(2027, 1, 4)
        clock.set(tariff.noon(january_4))
        await caught_up(runtime, accounts, january_4)
        await ask(V1, 2)  # a new year, a new block
        await tariff.published(runtime)
        await reader.wait_for_type("VoluntaryBlockStarted", 4)
        await reader.wait_for_type("VoluntaryBlockEnded", 3)

    started_events = {e.account_number: e for e in tariff.of(reader, "VoluntaryBlockStarted")}
    assert (started_events[V1].start, started_events[V1].last_day) == (
        date(2027, 1, 4), date(2027, 1, 5)
    )
    first_v1 = tariff.of(reader, "VoluntaryBlockStarted", V1)[0]
    assert (first_v1.start, first_v1.last_day, first_v1.requested_via) == (
        december_10, date(2026, 12, 14), "cabinet"
    )
    assert started_events[V3].requested_via == "support" and started_events[V3].days == 30
    # Rule 5: paid at the region's price, once per block.
    block_fees = [
        (c.account_number, c.amount.minor, c.billing_day)
        for c in tariff.of(reader, "ChargeApplied") if c.fee_kind == "voluntary_block"
    ]
    assert sorted(block_fees) == sorted([
        (V1, 15000, december_10), (V3, 12000, december_10), (V4, 15000, december_10),
        (V1, 15000, january_4),
    ])
    # Rule 6: each block ended, by itself at its end or early on request.
    ends = {(e.account_number, e.last_day, e.early) for e in tariff.of(reader, "VoluntaryBlockEnded")}
    assert ends == {
        (V4, december_10, False), (V3, date(2026, 12, 12), True), (V1, date(2026, 12, 14), False)
    }
    unblocked = [(e.account_number, e.reason) for e in tariff.of(reader, "AccountUnblocked")]
    assert sorted(unblocked) == sorted([(V4, "voluntary"), (V3, "voluntary"), (V1, "voluntary")])
    # Rule 4: no fees on blocked days, charged again from the day after (or the day of an
    # early end); the refused TV-only account is charged every day.
    through = date(2027, 1, 3)
    december = date(2026, 12, 1)
    assert charged_days(tariff, reader, V1) == days(december, through) - days(
        december_10, date(2026, 12, 14)
    )
    assert charged_days(tariff, reader, V3) == days(december, through) - days(
        december_10, date(2026, 12, 12)
    )
    assert charged_days(tariff, reader, V4) == days(december, through) - {december_10}
    assert charged_days(tariff, reader, V2) == days(december, through)
    assert not [c for c in tariff.of(reader, "ChargeApplied", V2) if c.fee_kind == "voluntary_block"]
