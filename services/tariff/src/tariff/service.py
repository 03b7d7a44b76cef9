"""The tariff service's commands and its billing clock.

Every command is one async function of (:class:`tariff.context.TariffContext`, command): in one
unit of work, load (and lock) the account's state, let the domain decide, write the new state and
stage the events in the SAME transaction; the relay is woken once it commits. A refusal raises a
:class:`tariff.errors.TariffError` (a :class:`billing_events.errors.DomainError`) before anything
is written, so nothing changes and nothing is charged.

Billing days
------------
A billing day is a calendar date in the billing time zone (setting ``billing_time_zone``,
default Europe/Moscow). A day is charged AFTER it ends: the billing clock closes day D at its
first tick after midnight that starts D+1. That is the reading of the domain's "a change takes
effect from the next day" that keeps every rule consistent: whatever is requested during D
(a plan change, an option, a block that starts today and is not charged, an early end of a
block that charges today again) is already known when D is charged. For the same reason
:func:`close_days` never closes the current day or a later one: ``until`` is clamped to
yesterday.

Accounts are closed in batches (``batch_size``, a thousand by default): one transaction locks the
batch's due subscriptions (in account order), closes each one's next open day, claims the
``closed_days`` rows, writes the states, moves the cursors and stages the day's ChargeApplied
(charge ids are ``account:day:kind:code``, deterministic), each in one statement. A transaction
per account and day would spend most of its time on round trips and commits; a batch's costs are
shared by a thousand accounts; two batches, over disjoint ranges of accounts, are in flight at
once (:data:`CLOSE_LANES`). A crash or restart in the middle undoes the batches in flight
whole, and the next run resumes at the cursors; a day already claimed is never charged again,
so each charge is published once by the tariff (and the ledger, which posts a charge id once,
would absorb a republished one anyway).

A transaction closes ONE day per account: an account several days behind is closed again by the
next transaction over the same accounts, until it is caught up, before the batch moves on. Days
are so closed in order, with the debt rule between them. The charges a day close stages count
against the account's expected balance in the same transaction (see :mod:`tariff.domain.debt`):
if they take it beyond the debt rule, AccountBlocked is staged after them and the next day is
not charged. So a catch-up of 30 days, closed without waiting for the ledger, blocks the account
on the same day as 30 single-day closes, each after the ledger's answer, would. (Closing one day
at a time and waiting for the ledger's answer instead would tie the billing clock to the
ledger's pace and liveness: a catch-up of D days would take D round trips per account.)

A voluntary block ends automatically when its last day is closed (VoluntaryBlockEnded and
AccountUnblocked are published by that day's close): the billing clock's day closing is also
what ends finished blocks.

What closing day D decides is dated by D, not by when the close ran: its charges carry
``billing_day`` D, and a debt block its charges cause (``blocked_at``) or the end of a voluntary
block whose last day D was (``unblocked_at``, ``ended_at``) carry the end of D (the midnight that
starts D+1 in the billing time zone, when they take effect). A catch-up on 1 October so dates
a block decided by 16 September's charges 17 September 00:00, as the timely close would have.
The envelope's ``occurred_at`` stays the moment the fact was recorded (see docs/events.md).
"""

from __future__ import annotations

import asyncio
from functools import partial
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.ids import uuid7
from billing_contracts.catalog.tariff import ChargeApplied
from billing_events.db import retry_transient
from billing_events.unit_of_work import RETRY_FOR_A_MINUTE, UnitOfWork
from billing_contracts.envelope import Envelope, Event
from billing_events.logging import get_logger
from tariff import store
from tariff.catalog import Catalog
from tariff.commands import (
    AccountCommand,
    ActivatePlan,
    AddOption,
    ChangePlan,
    CloseAccount,
    CommandResult,
    EndVoluntaryBlock,
    RemoveOption,
    RentEquipment,
    ReturnEquipment,
    StartVoluntaryBlock,
)
from tariff.context import TariffContext
from tariff.domain import (
    DailyFees,
    Forecast,
    Outcome,
    Subscription,
    SubscriptionStatus,
    activate,
    add_option,
    change_plan,
    charges_published,
    close_account_day,
    close_subscription,
    end_voluntary_block,
    forecast,
    remove_option,
    rent_equipment,
    return_equipment,
    start_voluntary_block,
)
from tariff.errors import AccountIsClosed, ClosureTargetRefused, NotActive, TariffError, UnknownAccount

log = get_logger(__name__)

ONE_DAY = timedelta(days=1)


# Results


class CloseResult(BaseModel):
    """What one run of :func:`close_days` did."""

    until: date = Field(description="Last day closed (after clamping to yesterday)")
    days_closed: int = 0
    charges: int = 0
    charged_minor: int = 0
    currency: str = Field(description="Currency of charged_minor (the catalog's)")
    events: int = 0
    failed: list[str] = Field(default_factory=list, description="Accounts left for the next run")


# Commands


async def activate_plan(ctx: TariffContext, command: ActivatePlan) -> CommandResult:
    catalog = ctx.catalog
    return await _run(
        ctx, command,
        lambda state, today, _: activate(state, catalog, command.plan, today, command.equipment),
    )


async def change_tariff(ctx: TariffContext, command: ChangePlan) -> CommandResult:
    catalog = ctx.catalog
    return await _run(
        ctx, command, lambda state, today, _: change_plan(state, catalog, command.plan, today)
    )


async def add_account_option(ctx: TariffContext, command: AddOption) -> CommandResult:
    catalog = ctx.catalog
    return await _run(
        ctx, command, lambda state, today, _: add_option(state, catalog, command.option, today)
    )


async def remove_account_option(ctx: TariffContext, command: RemoveOption) -> CommandResult:
    return await _run(
        ctx, command, lambda state, today, _: remove_option(state, command.option, today)
    )


async def rent_account_equipment(ctx: TariffContext, command: RentEquipment) -> CommandResult:
    catalog = ctx.catalog
    return await _run(
        ctx, command,
        lambda state, today, _: rent_equipment(state, catalog, command.equipment, today),
    )


async def return_account_equipment(ctx: TariffContext, command: ReturnEquipment) -> CommandResult:
    return await _run(
        ctx, command, lambda state, today, _: return_equipment(state, command.equipment, today)
    )


async def start_block(ctx: TariffContext, command: StartVoluntaryBlock) -> CommandResult:
    return await _run(
        ctx,
        command,
        lambda state, today, now: start_voluntary_block(
            state, ctx.catalog, command.days, today, now, command.requested_via
        ),
    )


async def end_block(ctx: TariffContext, command: EndVoluntaryBlock) -> CommandResult:
    return await _run(
        ctx, command, lambda state, today, now: end_voluntary_block(state, today, now)
    )


async def close_account(ctx: TariffContext, command: CloseAccount) -> CommandResult:
    """Charge the account's open days through today, close it and stop the billing clock's
    visits; the ledger settles and closes the account when SubscriptionClosed reaches it."""
    account = command.account_number
    correlation_id = command.correlation_id or uuid7()

    async def decide_and_write(uow: UnitOfWork) -> CommandResult:
        now = ctx.clock.now()
        today = ctx.billing_day(now)
        found = await store.load_with_cursor(uow.conn, account, for_update=True)
        if found is None:
            raise UnknownAccount(account)
        state, cursor = found
        if command.transfer_to is not None:
            await _check_closure_target(uow.conn, account, command.transfer_to)
        open_days = [] if cursor is None else [cursor + ONE_DAY * n for n in range((today - cursor).days + 1)]
        outcome = close_subscription(
            state, ctx.catalog, open_days, today, now, settlement=command.settlement,
            transfer_to=command.transfer_to, requested_by=command.requested_by, reason=command.reason)
        for day in open_days:
            charges = [c for c in outcome.charges if c.billing_day == day]
            await store.claim_day(uow.conn, account, day, charges=len(charges),
                                  charged_minor=sum(c.amount.minor for c in charges), now=now)
        done = await _commit(ctx, uow, outcome, now, correlation_id, stop_billing=True)
        return CommandResult(subscription=done.state, events=[e.event_type for e in done.events], billing_day=today)

    result = await ctx.unit_of_work(decide_and_write, retry=RETRY_FOR_A_MINUTE, what="CloseAccount")
    log.info("account closed", settlement=command.settlement.value, published=result.events)
    return result


async def _check_closure_target(conn: AsyncConnection, account: str, target: str) -> None:
    if target == account:
        raise ClosureTargetRefused("the account being closed")
    found = await store.load(conn, target)
    if found is None:
        raise ClosureTargetRefused(f"account {target} is not registered")
    if found.closed_on is not None:
        raise ClosureTargetRefused(f"account {target} is closed")


async def get_subscription(ctx: TariffContext, account_number: str) -> Subscription:
    state, _ = await _state_and_cursor(ctx, account_number)
    return state


@dataclass(frozen=True)
class TariffHistory:
    state: Subscription
    last_closed_day: date | None
    """The last billing day closed (the periods in effect are counted up to it); None: none yet."""


async def tariff_history(ctx: TariffContext, account_number: str) -> TariffHistory:
    """Every plan and option the account had, with the days it was in effect and its charges."""
    state, cursor = await _state_and_cursor(ctx, account_number)
    return TariffHistory(state, None if cursor is None else cursor - ONE_DAY)


async def account_forecast(ctx: TariffContext, account_number: str) -> Forecast:
    """Today's daily fee, the day the money lasts until, and what to pay now to stay unblocked to
    the end of the month: from the account's state and the balance the ledger last announced."""
    state, cursor = await _state_and_cursor(ctx, account_number)
    if cursor is None:
        raise NotActive(account_number)
    return forecast(state, DailyFees(ctx.catalog), ctx.billing_day(), cursor)


async def _state_and_cursor(ctx: TariffContext, account_number: str) -> tuple[Subscription, date | None]:
    async with ctx.db.connect() as conn:
        found = await store.load_with_cursor(conn, account_number)
    if found is None:
        raise UnknownAccount(account_number)
    return found


Rule = Callable[[Subscription, date, datetime], Outcome]
"""A command's rule of the domain, bound to its arguments: (the state, today, now) -> the outcome."""


async def _run(ctx: TariffContext, command: AccountCommand, rule: Rule) -> CommandResult:
    account = command.account_number
    correlation_id = command.correlation_id or uuid7()

    async def decide_and_write(uow: UnitOfWork) -> CommandResult:
        now = ctx.clock.now()
        today = ctx.billing_day(now)
        found = await store.load_with_cursor(uow.conn, account, for_update=True)
        if found is None:
            raise UnknownAccount(account)
        state, cursor = found
        if state.closed_on is not None:
            raise AccountIsClosed(account, state.closed_on)
        outcome = rule(state, today, now)  # a TariffError leaves before any write
        # Activation starts the billing cursor at the plan's first day.
        starts = (
            _first_charged_day(outcome.state)
            if cursor is None and outcome.state.status is SubscriptionStatus.ACTIVE
            else None
        )
        done = await _commit(ctx, uow, outcome, now, correlation_id, next_close_day=starts)
        return CommandResult(
            subscription=done.state,
            events=[event.event_type for event in done.events],
            billing_day=today,
        )

    try:
        result = await ctx.unit_of_work(decide_and_write, retry=RETRY_FOR_A_MINUTE, what=type(command).__name__)
    except TariffError as exc:
        log.info("command refused", command=type(command).__name__, reason_code=exc.code)
        raise
    log.info("command applied", command=type(command).__name__, published=result.events)
    return result


def _first_charged_day(state: Subscription) -> date:
    return min(entry.effective_from for entry in state.schedule if entry.terms.plan is not None)


async def _commit(
    ctx: TariffContext,
    uow: UnitOfWork,
    outcome: Outcome,
    now: datetime,
    correlation_id: UUID,
    *,
    next_close_day: date | None = None,
    stop_billing: bool = False,
) -> Outcome:
    """Write the state and stage its events (:func:`_judged_envelopes`), in the caller's
    transaction. What is written and staged comes back."""
    done, envelopes = _judged_envelopes(ctx, outcome, now, correlation_id)
    await store.save(uow.conn, done.state, now, next_close_day=next_close_day, stop_billing=stop_billing)
    uow.stage(envelopes)
    return done


def _judged_envelopes(
    ctx: TariffContext, outcome: Outcome, at: datetime, correlation_id: UUID
) -> tuple[Outcome, list[Envelope[Any]]]:
    """The state to write and the envelopes to stage for ``outcome``; a block the charges cause is
    dated ``at`` (a command's moment, or the end of the billing day a close charged).

    The charges among the events count against the account's expected balance from now on (the
    domain needs their event ids to know them again in the ledger's BalanceChanged); if they
    take it beyond the debt rule, the AccountBlocked is staged right after them. A charge goes
    out in the ChargeApplied version the settings name, under the same event id.
    """
    account = outcome.state.account_number

    def wrap(events: tuple[Event, ...]) -> list[Envelope[Any]]:
        return [ctx.envelope(event, account=account, correlation_id=correlation_id) for event in events]

    envelopes = wrap(outcome.events)
    charges = [(e.event_id, e.payload) for e in envelopes if isinstance(e.payload, ChargeApplied)]
    judged = charges_published(outcome.state, charges, at)
    if judged.events:
        log.info("debt verdict changed by the charges", debt_blocked=judged.state.debt_blocked)
    envelopes += wrap(judged.events)
    version = ctx.charge_applied_version
    envelopes = [e.in_version(version) if isinstance(e.payload, ChargeApplied) else e for e in envelopes]
    return Outcome(judged.state, (*outcome.events, *judged.events)), envelopes


# The billing clock


CLOSE_BATCH = 1000
"""Accounts per day-close transaction: enough to share a commit's and a statement's cost among
many, few enough to hold their row locks (which commands on those accounts wait for) briefly."""

CLOSE_LANES = 2
"""Batches in flight at once, over disjoint ranges of accounts: while the database writes one,
the service works out the next (alone, each side would wait for the other half the time)."""

async def close_days(ctx: TariffContext, until: date, *, batch_size: int = CLOSE_BATCH) -> CloseResult:
    """Close, for every account, every day not closed yet up to ``until`` (at most yesterday).

    The due accounts are cut into ranges of ``batch_size`` (in account order); each of
    :data:`CLOSE_LANES` lanes takes the next range and closes its days, batch after batch, until
    the range is caught up. Every transaction locks its accounts in account order, so lanes (and
    another close running meanwhile) wait for each other rather than deadlock."""
    yesterday = ctx.billing_day() - ONE_DAY
    if until > yesterday:
        log.info("a day is closed only after it ends; closing up to yesterday",
                 asked=until.isoformat(), until=yesterday.isoformat())
        until = yesterday
    result = CloseResult(until=until, currency=ctx.catalog.currency)
    fees = DailyFees(ctx.catalog)
    ranges = _DueRanges(ctx, until, batch_size)

    async def lane() -> None:
        while (taken := await ranges.next()) is not None:
            await _close_range(ctx, fees, until, *taken, batch_size, result)

    try:
        async with asyncio.TaskGroup() as lanes:  # one failing stops the others (batches undone)
            for _ in range(CLOSE_LANES):
                lanes.create_task(lane())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # what went wrong, as a single close would say it
    if result.days_closed:
        log.info("days closed", until=until.isoformat(), days=result.days_closed,
                 charges=result.charges, failed=len(result.failed))
    return result


class _DueRanges:
    """Consecutive ranges (after, upto] of up to ``size`` due accounts, handed to one lane each."""

    def __init__(self, ctx: TariffContext, until: date, size: int) -> None:
        self._ctx, self._until, self._size = ctx, until, size
        self._after: str | None = ""
        self._turn = asyncio.Lock()

    async def next(self) -> tuple[str, str] | None:
        async with self._turn:
            if self._after is None:
                return None
            after = self._after

            async def page() -> list[str]:
                async with self._ctx.db.connect() as conn:
                    return await store.due_accounts(conn, self._until, after=after, limit=self._size)

            accounts = await retry_transient(page, what="tariff due accounts")
            if not accounts:
                self._after = None
                return None
            self._after = accounts[-1]
            return after, accounts[-1]


async def _close_range(
    ctx: TariffContext, fees: DailyFees, until: date, after: str, upto: str, size: int,
    result: CloseResult,
) -> None:
    """Close every due day of the accounts in (after, upto], a batch per transaction."""
    failed: list[str] = []
    while True:
        batch = await ctx.unit_of_work(partial(_close_batch, ctx, fees, until, after, upto, failed, size),
                                       retry=RETRY_FOR_A_MINUTE, what="day close")
        if batch is None:
            return
        for account, exc in batch.failed:
            # e.g. the catalog no longer sells the account's plan: the others go on
            failed.append(account)
            result.failed.append(account)
            log.error("account's day could not be closed", reason_code=exc.code, reason=exc.message)
        for events in batch.closed:
            charges = [event for event in events if isinstance(event, ChargeApplied)]
            result.days_closed += 1
            result.charges += len(charges)
            result.charged_minor += sum(charge.amount.minor for charge in charges)
            result.events += len(events)
        if batch.caught_up:  # else the same accounts again: the next of their days
            after = batch.last


@dataclass(frozen=True)
class _ClosedBatch:
    """What one day-close transaction committed."""

    closed: list[tuple[Event, ...]]
    """The events of each account-day charged."""
    failed: list[tuple[str, TariffError]]
    last: str
    """The batch's last account."""
    caught_up: bool
    """No account of the batch has a day up to ``until`` left."""


async def _close_batch(
    ctx: TariffContext, fees: DailyFees, until: date, after: str, upto: str,
    failed: list[str], size: int, uow: UnitOfWork,
) -> _ClosedBatch | None:
    """Close the next open day of up to ``size`` due accounts in (after, upto] (none of
    ``failed``), in one unit of work; None when none is due."""
    now, conn = ctx.clock.now(), uow.conn
    due = await store.lock_due(conn, until, after=after, upto=upto, excluding=failed,
                               limit=size)
    if not due:
        return None
    closes: list[tuple[Subscription, date, Outcome]] = []
    refused: list[tuple[str, TariffError]] = []
    for state, day in due:
        try:
            closes.append((state, day, close_account_day(state, ctx.catalog, day,
                                                          ctx.end_of_billing_day(day), fees)))
        except TariffError as exc:
            refused.append((state.account_number, exc))
    claimed = await store.claim_days(conn, [
        (state.account_number, day, len(outcome.charges),
         sum(charge.amount.minor for charge in outcome.charges))
        for state, day, outcome in closes
    ], now=now)
    written: list[tuple[Subscription, date]] = []
    envelopes: list[Envelope[Any]] = []
    closed: list[tuple[Event, ...]] = []
    for state, day, outcome in closes:
        if state.account_number not in claimed:
            # closed before: only the cursor catches up, nothing is charged again
            written.append((state, day + ONE_DAY))
            continue
        done, staged = _judged_envelopes(ctx, outcome, ctx.end_of_billing_day(day), uuid7())
        written.append((done.state, day + ONE_DAY))
        envelopes += staged
        closed.append(done.events)
    if len(closed) < len(closes):
        log.warning("days already closed; cursors moved on", accounts=len(closes) - len(closed))
    await store.save_many(conn, written, now)
    uow.stage(envelopes)
    return _ClosedBatch(
        closed=closed, failed=refused, last=due[-1][0].account_number,
        caught_up=all(day >= until for _, day, _ in closes),
    )


async def record_catalog(ctx: TariffContext, source: str) -> None:
    """Remember which catalog version this start loaded (from ``source``); warn if an older one
    replaced a newer."""
    catalog: Catalog = ctx.catalog
    async with ctx.db.transaction() as conn:
        previous = await store.record_catalog_version(
            conn, catalog.version, source, ctx.clock.now()
        )
    if previous is not None and previous > catalog.version:
        log.warning("tariff catalog version went back", loaded=catalog.version,
                    highest_before=previous)
    else:
        log.info("tariff catalog loaded", version=catalog.version)


async def billing_tick(ctx: TariffContext) -> CloseResult:
    """One look at the clock: close every day that has ended (and so end finished blocks)."""
    return await close_days(ctx, ctx.billing_day() - ONE_DAY)


def catalog_recorder(ctx: TariffContext, source: str) -> Callable[[], Any]:
    """A one-shot background task: record the loaded catalog version once the schema exists."""

    async def record_catalog_version() -> None:
        await retry_transient(lambda: record_catalog(ctx, source), what="tariff catalog version")

    return record_catalog_version


BILLING_CLOCK_LOCK = 0x74617266  # "tarf": the advisory lock of the one running billing clock


def billing_clock(ctx: TariffContext, tick_seconds: float) -> Callable[[], Any]:
    """The background loop: every ``tick_seconds``, a :func:`billing_tick`, in one
    instance of the service at a time. Every instance runs this loop; the one holding the
    database's billing-clock lock ticks, the others wait for it, so a rolling update (a new pod
    beside the old one) never has two clocks, and a dead leader's lock passes on by itself."""

    async def billing_clock_loop() -> None:
        async with ctx.db.leading(BILLING_CLOCK_LOCK, poll_seconds=tick_seconds) as still_leading:
            log.info("this instance runs the billing clock")
            while True:
                await still_leading()  # the lock's connection lost: stop; the supervisor waits for it again
                try:
                    await billing_tick(ctx)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("billing tick failed; retried at the next tick")
                await asyncio.sleep(tick_seconds)

    return billing_clock_loop
