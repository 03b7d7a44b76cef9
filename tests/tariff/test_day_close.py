"""The billing clock's batches: many accounts per transaction, on PostgreSQL and SQLite.

Exactly once per account and day when a batch fails in the middle; the debt rule between the
days of a catch-up in batches that mix prepaid, credit and blocking accounts; a command on an
account of a batch in flight neither lost nor overwritten.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import date, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text

from billing_contracts.accounts import luhn_check_digit
from billing_events import event_log
from billing_contracts.catalog.ledger import PaymentType
from billing_events.clock import ManualClock
from billing_contracts.money import Money
from billing_events.testing.plugin import eventually
from tariff import store
from tariff.catalog import Catalog
from tariff.context import TariffContext
from tariff.domain import AccountBalance, apply_balance, register
from tariff.commands import ActivatePlan, AddOption
from tariff.service import activate_plan, add_account_option, close_days

ONE_DAY = timedelta(days=1)
ACTIVATED = date(2026, 7, 31)  # internet-100 in moscow: 55000 a month, 1775 or 1774 a day in August
FIRST = ACTIVATED + ONE_DAY
RICH = 10_000_000


def with_check_digit(body: str) -> str:
    return body + luhn_check_digit(body)


async def open_accounts(ctx: TariffContext, balances: dict[str, AccountBalance]) -> None:
    """Register the accounts with their ledger balances, then activate internet-100 for each."""
    now = ctx.clock.now()
    states = [apply_balance(register(account, "moscow", ctx.catalog), balance, now).state
              for account, balance in balances.items()]
    async with ctx.db.transaction() as conn:
        assert await store.insert_subscriptions(conn, states, now) == set(balances)
    for account in balances:
        await activate_plan(ctx, ActivatePlan(account_number=account, plan="internet-100"))


def prepaid(minor: int) -> AccountBalance:
    return AccountBalance(main=Money(minor=minor), credit_limit=Money.zero())


def on_credit(minor: int, limit: int) -> AccountBalance:
    return AccountBalance(main=Money(minor=minor), payment_type=PaymentType.CREDIT,
                          credit_limit=Money(minor=limit))


async def closed_days(runtime: Any) -> list[tuple[str, date]]:
    async with runtime.db.connect() as conn:
        rows = await conn.execute(select(store.closed_days.c.account_number, store.closed_days.c.day))
        return sorted((row.account_number, row.day) for row in rows)


async def cursors(runtime: Any) -> set[date]:
    async with runtime.db.connect() as conn:
        return set((await conn.execute(select(store.subscriptions.c.next_close_day))).scalars())


async def test_a_batch_failing_midway_is_undone_whole_and_a_rerun_closes_each_day_once(
    tariff: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [with_check_digit(f"1000000001{n}") for n in range(7)]
    doomed = accounts[4]  # batches of three: its range is accounts 3 to 5
    clock = ManualClock(tariff.noon(ACTIVATED))
    settings = await tariff.settings(database="given", database_url=database_url)
    async with tariff.running(settings, clock) as (runtime, ctx, _, _):
        await open_accounts(ctx, {account: prepaid(RICH) for account in accounts})
        clock.set(tariff.noon(FIRST + 3 * ONE_DAY))  # three days to close for each account
        stage = event_log.append

        async def stage_then_fail_on_the_doomed_day(conn: Any, envelopes: list[Any], **kwargs: Any) -> int:
            staged = await stage(conn, envelopes, **kwargs)  # claimed, written, staged: not committed
            if any(e.account == doomed and e.payload.billing_day == FIRST + ONE_DAY for e in envelopes
                   if e.event_type == "ChargeApplied"):
                raise RuntimeError("the process dies in the middle of a batch")
            return staged

        monkeypatch.setattr(event_log, "append", stage_then_fail_on_the_doomed_day)
        with pytest.raises(RuntimeError):
            await close_days(ctx, FIRST + 2 * ONE_DAY, batch_size=3)
        monkeypatch.undo()
        committed = await closed_days(runtime)
        for account in accounts[3:6]:  # the batch of the doomed day, undone whole
            assert (account, FIRST + ONE_DAY) not in committed
        charged = sorted((c.account_number, c.billing_day)
                         for c in await tariff.outbox_events(runtime, "ChargeApplied"))
        assert charged == committed  # no day claimed without its charge, nor charged unclaimed
        for account in accounts:  # each cursor right after the account's last closed day
            state_days = [day for who, day in committed if who == account]
            assert state_days == [FIRST + n * ONE_DAY for n in range(len(state_days))]
            async with runtime.db.connect() as conn:
                _, cursor = await store.load_with_cursor(conn, account)
            assert cursor == FIRST + len(state_days) * ONE_DAY

        rerun = await close_days(ctx, FIRST + 2 * ONE_DAY, batch_size=3)
        assert (rerun.days_closed, rerun.charges) == (7 * 3 - len(committed),) * 2
        again = await close_days(ctx, FIRST + 2 * ONE_DAY, batch_size=3)
        assert (again.days_closed, again.charges, again.events) == (0, 0, 0)
        assert await closed_days(runtime) == sorted(
            (account, FIRST + n * ONE_DAY) for account in accounts for n in range(3)
        )
        assert await cursors(runtime) == {FIRST + 3 * ONE_DAY}
        charges = await tariff.outbox_events(runtime, "ChargeApplied")
        assert Counter(c.charge_id for c in charges) == Counter(
            f"{account}:{FIRST + n * ONE_DAY}:subscription:internet-100"
            for account in accounts for n in range(3)
        )
        for account in accounts:  # the debt rule's view: every charge of the account counted
            state = await tariff.state(runtime, account)
            assert [u.charge_id for u in state.unsettled] == [
                f"{account}:{FIRST + n * ONE_DAY}:subscription:internet-100" for n in range(3)
            ]


async def test_a_catch_up_in_mixed_batches_blocks_each_account_on_its_day(
    tariff: Any, database_url: str, catalog: Catalog
) -> None:
    poor, credit, rich, rich_credit = "100000000206", "100000000214", "100000000222", "100000000230"
    clock = ManualClock(tariff.noon(ACTIVATED))
    settings = await tariff.settings(database="given", database_url=database_url)
    async with tariff.running(settings, clock) as (runtime, ctx, _, _):
        await open_accounts(ctx, {
            poor: prepaid(3000),  # day 1 leaves 1225, day 2 takes it below zero
            credit: on_credit(0, 5000),  # -1775, -3550, then -5325: beyond the limit on day 3
            rich: prepaid(RICH),
            rich_credit: on_credit(-1000, RICH),
        })
        clock.set(tariff.noon(FIRST + 5 * ONE_DAY))
        result = await close_days(ctx, FIRST + 4 * ONE_DAY, batch_size=3)
        assert result.days_closed == 4 * 5
        assert result.charges == 2 + 3 + 5 + 5

        staged = await tariff.outbox_envelopes(runtime, "ChargeApplied")
        charged = {account: [e.payload.billing_day for e in staged if e.account == account]
                   for account in (poor, credit, rich, rich_credit)}
        days = [FIRST + n * ONE_DAY for n in range(5)]
        assert charged == {poor: days[:2], credit: days[:3], rich: days, rich_credit: days}
        assert [b.account_number for b in await tariff.outbox_events(runtime, "AccountBlocked")] in (
            [poor, credit], [credit, poor]
        )
        for account, last_charged in ((poor, days[1]), (credit, days[2])):
            state = await tariff.state(runtime, account)
            assert state.debt_blocked
            assert [u.charge_id.split(":")[1] for u in state.unsettled][-1] == last_charged.isoformat()
        assert await cursors(runtime) == {FIRST + 5 * ONE_DAY}


T = TypeVar("T")
OPERATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation", default=None)


def started(name: str, operation: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``operation`` as a task whose transactions (and those of the tasks it starts) are known
    by ``name``."""
    context = contextvars.copy_context()
    context.run(OPERATION.set, name)
    return asyncio.create_task(operation, context=context)


def watch_transactions(ctx: TariffContext, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names of the operations (:func:`started`) that have asked ``ctx``'s database for a
    connection since (on SQLite every connection's transaction begins IMMEDIATE: it takes the
    writers' lock)."""
    began: set[str] = set()

    def watched(acquire: Callable[[], Any]) -> Callable[[], Any]:
        def acquiring() -> Any:
            if (name := OPERATION.get()) is not None:
                began.add(name)
            return acquire()
        return acquiring

    monkeypatch.setattr(ctx.db, "transaction", watched(ctx.db.transaction))
    monkeypatch.setattr(ctx.db, "connect", watched(ctx.db.connect))
    return began


async def waits_for_a_lock(ctx: TariffContext, began: set[str], name: str) -> bool:
    """PostgreSQL: a session of the test's database waits for a lock; SQLite: the operation
    ``name`` asked for a connection (its BEGIN IMMEDIATE waits for the writer holding the database)."""
    if ctx.db.dialect != "postgresql":
        return name in began
    async with ctx.db.connect() as conn:
        return bool(await conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")))


@pytest.mark.parametrize("first", ["close", "command"])
async def test_a_command_during_a_batch_is_not_lost(
    tariff: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """``close``: the batch holds its accounts when an option is added to one of them;
    ``command``: the command holds its account when the batch starts. Either waits for the
    other and reads what it wrote: the day is charged once, the option is kept."""
    accounts = [with_check_digit(f"1000000003{n}") for n in range(4)]
    target = accounts[2]
    clock = ManualClock(tariff.noon(ACTIVATED))
    settings = await tariff.settings(database="given", database_url=database_url)
    async with tariff.running(settings, clock) as (runtime, ctx, _, _):
        await open_accounts(ctx, {account: prepaid(RICH) for account in accounts})
        clock.set(tariff.noon(FIRST + ONE_DAY))
        inside, release = asyncio.Event(), asyncio.Event()

        def held(original: Any) -> Any:
            async def holding(*args: Any, **kwargs: Any) -> Any:
                if not inside.is_set():
                    inside.set()
                    await release.wait()
                return await original(*args, **kwargs)
            return holding

        began = watch_transactions(ctx, monkeypatch)
        if first == "close":
            monkeypatch.setattr(store, "claim_days", held(store.claim_days))
            closing = started("close", close_days(ctx, FIRST))
            await inside.wait()
            command = started("command", add_account_option(ctx, AddOption(account_number=target, option="antivirus")))
        else:
            monkeypatch.setattr(store, "save", held(store.save))
            command = started("command", add_account_option(ctx, AddOption(account_number=target, option="antivirus")))
            await inside.wait()
            closing = started("close", close_days(ctx, FIRST))
        other = "command" if first == "close" else "close"
        await eventually(lambda: waits_for_a_lock(ctx, began, other), what=f"the {other} waiting for the lock")
        release.set()
        added, closed = await asyncio.gather(command, closing)

        assert added.events == ["OptionAdded"]
        assert closed.days_closed == closed.charges == len(accounts)
        state = await tariff.state(runtime, target)
        assert state.planned_terms.options == ("antivirus",)
        assert [u.charge_id for u in state.unsettled] == [f"{target}:{FIRST}:subscription:internet-100"]
        assert await cursors(runtime) == {FIRST + ONE_DAY}
        async with runtime.db.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(store.closed_days)) == len(accounts)
