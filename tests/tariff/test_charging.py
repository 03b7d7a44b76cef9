"""Daily charging over the real broker and PostgreSQL, moving a manual clock through months."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from billing_events.clock import ManualClock
from billing_contracts.envelope import is_current
from tariff import store
from tariff.catalog import Catalog
from tariff.domain import share_of_day
from tariff.commands import ActivatePlan, AddOption, ChangePlan, RemoveOption
from tariff.service import activate_plan, add_account_option, change_tariff, close_days, remove_account_option

ONE_DAY = timedelta(days=1)
ALICE, BOB, CAROL = "100000000016", "100000000024", "100000000032"
FUNDS = 10_000_000  # 100 000.00 RUB: these tests are about what days cost, not about debt


def by_month(charges: list[Any]) -> dict[tuple[int, int], int]:
    totals: dict[tuple[int, int], int] = defaultdict(int)
    for charge in charges:
        totals[(charge.billing_day.year, charge.billing_day.month)] += charge.amount.minor
    return dict(totals)


async def test_months_of_28_29_30_and_31_days_add_up_to_the_monthly_price(
    tariff: Any, catalog: Catalog
) -> None:
    # February 2028 (29 days) comes from a second account activated later; the first one keeps
    # being charged meanwhile, which also proves that months in a row each add up.
    clock = ManualClock(tariff.noon(date(2027, 1, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        await tariff.register(runtime, producer, ALICE, "moscow")
        await tariff.register(runtime, producer, BOB, "spb")
        for account in (ALICE, BOB):
            await tariff.send_balance(runtime, producer, account, FUNDS)
        await activate_plan(ctx, ActivatePlan(account_number=ALICE, plan="combo-100-optimum"))
        await add_account_option(ctx, AddOption(account_number=ALICE, option="multiroom"))

        clock.set(tariff.noon(date(2027, 5, 1)))
        closed = await close_days(ctx, date(2027, 4, 30))
        assert closed.days_closed == 28 + 31 + 30
        assert closed.charges == 2 * closed.days_closed

        clock.set(tariff.noon(date(2028, 1, 31)))
        await activate_plan(ctx, ActivatePlan(account_number=BOB, plan="internet-300"))
        clock.set(tariff.noon(date(2028, 3, 1)))
        await close_days(ctx, date(2028, 2, 29))
        await tariff.published(runtime)
        await reader.wait_for(
            lambda envs: sum(e.event_type == "ChargeApplied" and is_current(e) for e in envs) >= 2 * 394 + 29,
            what="every charge",
        )

    monthly_alice = (
        catalog.plan_price("combo-100-optimum", "moscow").minor
        + catalog.option_price("multiroom", "moscow").minor
    )
    alice = by_month(tariff.of(reader, "ChargeApplied", ALICE))
    assert alice[(2027, 2)] == monthly_alice  # 28 days
    assert alice[(2027, 4)] == monthly_alice  # 30 days
    assert alice[(2027, 3)] == monthly_alice  # 31 days
    assert all(total == monthly_alice for total in alice.values())
    assert sorted(alice) == [(2027, m) for m in range(2, 13)] + [(2028, 1), (2028, 2)]
    bob = tariff.of(reader, "ChargeApplied", BOB)
    assert by_month(bob) == {(2028, 2): catalog.plan_price("internet-300", "spb").minor}  # 29 days
    assert len(bob) == 29
    ids = [charge.charge_id for charge in tariff.of(reader, "ChargeApplied")]
    assert len(ids) == len(set(ids)) == 2 * 394 + 29


async def test_a_plan_change_and_options_mid_month(tariff: Any, catalog: Catalog) -> None:
    clock = ManualClock(tariff.noon(date(2026, 3, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        await tariff.register(runtime, producer, CAROL, "kazan")
        await tariff.send_balance(runtime, producer, CAROL, FUNDS)
        await activate_plan(ctx, ActivatePlan(account_number=CAROL, plan="internet-100"))
        await add_account_option(ctx, AddOption(account_number=CAROL, option="antivirus"))

        clock.set(tariff.noon(date(2026, 4, 15)))
        await close_days(ctx, date(2026, 4, 14))
        changed = await change_tariff(ctx, ChangePlan(account_number=CAROL, plan="internet-300"))
        assert changed.events == ["TariffChanged"]
        removed = await remove_account_option(
            ctx, RemoveOption(account_number=CAROL, option="antivirus")
        )
        assert removed.events == ["OptionRemoved"]

        clock.set(tariff.noon(date(2026, 5, 1)))
        await close_days(ctx, date(2026, 4, 30))
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 15 * 2 + 15)

    (activated,) = tariff.of(reader, "SubscriptionActivated", CAROL)
    assert activated.effective_from == date(2026, 4, 1)
    assert activated.monthly_price.minor == 42000
    (change,) = tariff.of(reader, "TariffChanged", CAROL)
    assert (change.previous_plan, change.plan, change.effective_from) == (
        "internet-100", "internet-300", date(2026, 4, 16)
    )
    charges = tariff.of(reader, "ChargeApplied", CAROL)
    per_code: Counter[str] = Counter()
    for charge in charges:
        per_code[charge.charge_id.rsplit(":", 1)[1]] += charge.amount.minor
    old, new = catalog.plan_price("internet-100", "kazan").minor, 55000
    antivirus = catalog.option_price("antivirus", "kazan").minor
    # The change day (the 15th) is still charged at the old plan; the new one from the 16th.
    assert per_code["internet-100"] == sum(share_of_day(old, 30, d) for d in range(1, 16))
    assert per_code["internet-300"] == sum(share_of_day(new, 30, d) for d in range(16, 31))
    assert per_code["antivirus"] == sum(share_of_day(antivirus, 30, d) for d in range(1, 16))
    assert {c.billing_day for c in charges if c.fee_kind == "subscription"} == {
        date(2026, 4, d) for d in range(1, 31)
    }


async def test_charges_exactly_once_across_a_restart_and_a_second_close(
    tariff: Any, catalog: Catalog
) -> None:
    settings = await tariff.settings()
    clock = ManualClock(tariff.noon(date(2026, 6, 30)))
    accounts = [ALICE, BOB, CAROL]
    async with tariff.running(settings, clock) as (runtime, ctx, producer, _):
        for account in accounts:
            await tariff.register(runtime, producer, account, "moscow")
            await tariff.send_balance(runtime, producer, account, FUNDS)
            await activate_plan(ctx, ActivatePlan(account_number=account, plan="internet-500"))
        clock.set(tariff.noon(date(2026, 8, 1)))
        first = await close_days(ctx, date(2026, 7, 10))
        assert (first.days_closed, first.charges) == (3 * 10, 3 * 10)
        # Then the process stops in the middle of closing the rest of the month.
        closing = asyncio.create_task(close_days(ctx, date(2026, 7, 31)))
        while (await closed_count(runtime)) < 3 * 10 + 5 and not closing.done():
            await asyncio.sleep(0.001)
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        interrupted_at = await closed_count(runtime)
        assert 3 * 10 < interrupted_at < 3 * 31, "the close was interrupted in the middle"
    # A new process on the same database (and the same topics).
    async with tariff.running(settings, clock) as (runtime, ctx, producer, reader):
        second = await close_days(ctx, date(2026, 7, 31))
        assert second.days_closed == second.charges == 3 * 31 - interrupted_at
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 3 * 31)
        outbox_before = await tariff.outbox_rows(runtime)
        again = await close_days(ctx, date(2026, 7, 31))  # the same days, closed twice
        assert (again.days_closed, again.charges, again.events) == (0, 0, 0)
        assert await tariff.outbox_rows(runtime) == outbox_before
        await tariff.published(runtime)
        seen = len(reader.envelopes)
        staged = await tariff.outbox_events(runtime, "ChargeApplied")

    assert len(reader.envelopes) == seen
    # The outbox delivers at least once (a relay stopped between publishing and marking sends a
    # row again, with the same event id, which consumers' inboxes absorb): count distinct events.
    distinct = {e.event_id: e for e in reader.envelopes if e.event_type == "ChargeApplied" and is_current(e)}
    charges = [e.payload for e in distinct.values()]
    ids = [charge.charge_id for charge in charges]
    assert len(ids) == len(set(ids)) == 3 * 31
    staged_ids = [charge.charge_id for charge in staged]  # what the tariff itself published
    assert len(staged_ids) == len(set(staged_ids)) == 3 * 31
    assert set(staged_ids) == set(ids)
    price = catalog.plan_price("internet-500", "moscow").minor
    assert by_month(charges) == {(2026, 7): 3 * price}


async def test_a_day_is_closed_only_after_it_ends(tariff: Any) -> None:
    clock = ManualClock(tariff.noon(date(2026, 9, 30)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, _):
        await tariff.register(runtime, producer, ALICE, "moscow")
        await activate_plan(ctx, ActivatePlan(account_number=ALICE, plan="internet-100"))
        clock.set(tariff.noon(date(2026, 10, 3)))
        result = await close_days(ctx, date(2026, 10, 31))
        assert result.until == date(2026, 10, 2)
        assert result.days_closed == 2


async def closed_count(runtime: Any) -> int:
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(store.closed_days)) or 0


@pytest.mark.parametrize("version", [1, 2])
async def test_charges_go_out_in_the_version_the_setting_names_and_the_ledger_answer_settles_them(
    tariff: Any, version: int
) -> None:
    """BILLING_TARIFF_CHARGE_APPLIED_VERSION=1: v1 alone (a consumer reading only v1 still runs);
    2: v2, with a v1 copy beside it. Either way the charge the service tracks is the one event
    the ledger takes and answers."""
    clock = ManualClock(tariff.noon(date(2026, 6, 1)))
    settings = await tariff.settings(charge_applied_version=version)
    async with tariff.running(settings, clock) as (runtime, ctx, producer, reader):
        await tariff.register(runtime, producer, ALICE, "moscow")
        await tariff.send_balance(runtime, producer, ALICE, FUNDS)
        await activate_plan(ctx, ActivatePlan(account_number=ALICE, plan="internet-100"))
        clock.set(tariff.noon(date(2026, 6, 3)))  # the plan is charged from the day after
        assert (await close_days(ctx, date(2026, 6, 2))).charges == 1
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 1)
        published = [e for e in reader.envelopes if e.event_type == "ChargeApplied"]
        [charge] = [e for e in published if is_current(e)]
        assert sorted(e.as_sent.version for e in published) == ([1] if version == 1 else [1, 2])
        assert charge.as_sent.version == version
        assert charge.payload.charged_for.code == "internet-100"  # read as v2 either way
        [tracked] = (await tariff.state(runtime, ALICE)).unsettled
        assert tracked.event_id == charge.event_id

        await tariff.settle(runtime, producer, ALICE, FUNDS - charge.payload.amount.minor)
        assert (await tariff.state(runtime, ALICE)).unsettled == ()
