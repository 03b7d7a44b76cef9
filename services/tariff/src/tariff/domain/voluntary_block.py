"""The voluntary (temporary) block, under the six rules of the domain note.

1. 1 to 30 days, once a year. A block counts toward every calendar year it touches: its days
   in the year each falls in, and it is the one use of each of those years. A block from
   20 December to 18 January is the use of both years, so no block may follow it in January;
   one block a year of at most 30 days keeps every year's blocked days within 30. One block
   at a time.
2. Requested in the cabinet or through support: recorded as ``requested_via``.
3. Refused when the plan in effect has no home internet (a TV-only plan).
4. No fees while blocked: the block covers the billing days ``start`` to ``start + days - 1``
   and :func:`tariff.domain.charging.charges_for_day` charges none of them.
5. Paid at the region's price, charged when the block starts; refused when the balance (plus
   the credit limit on the credit type) cannot pay it: the balance last announced by the
   ledger, less the charges it has not settled yet.
6. Ends automatically when its last day is closed, or earlier on request. An early end takes
   effect at once: the day of the request is charged again (the block's last day becomes the
   day before), so a block ended on its first day covers no day at all; the price is not
   refunded and the year's block counts as used.

A block starts on the day it is requested, which is then not charged: access is cut at once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    ChargeApplied,
    FeeKind,
    RequestChannel,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from tariff.catalog import Catalog
from tariff.domain.subscription import Outcome, Subscription, VoluntaryBlock
from tariff.errors import (
    BlockAlreadyRunning,
    BlockAlreadyUsedThisYear,
    BlockDaysOutOfRange,
    BlockNeedsHomeInternet,
    BlockNotAffordable,
    NoRunningBlock,
    NotActive,
)

MAX_BLOCK_DAYS = 30
ONE_DAY = timedelta(days=1)


def start_voluntary_block(
    state: Subscription,
    catalog: Catalog,
    days: int,
    today: date,
    at: datetime,
    requested_via: RequestChannel = RequestChannel.CABINET,
) -> Outcome:
    """Block the account from ``today`` for ``days`` days, charging the region's price."""
    if not 1 <= days <= MAX_BLOCK_DAYS:
        raise BlockDaysOutOfRange(days, MAX_BLOCK_DAYS)
    # A block that finished before today but whose last day is not closed yet ends first, so its
    # AccountUnblocked cannot arrive after the new block's AccountBlocked.
    finished = end_finished_voluntary_block(state, today - ONE_DAY, at)
    current = finished.state
    price = catalog.voluntary_block_price(current.region)
    block = VoluntaryBlock(
        start=today, days=days, last_day=today + timedelta(days=days - 1), price=price
    )
    _check_may_block(current, catalog, block)
    events = (
        ChargeApplied.of(
            current.account_number, today, FeeKind.VOLUNTARY_BLOCK, current.region, block.price,
            f"Voluntary block, {days} day(s) from {today.isoformat()}",
        ),
        AccountBlocked(
            account_number=current.account_number,
            reason=BlockReason.VOLUNTARY,
            blocked_at=at,
            until=block.last_day,
        ),
        VoluntaryBlockStarted(
            account_number=current.account_number,
            start=block.start,
            last_day=block.last_day,
            days=days,
            price=block.price,
            requested_via=requested_via,
        ),
    )
    started = current.model_copy(update={"voluntary_blocks": (*current.voluntary_blocks, block)})
    return Outcome(started, (*finished.events, *events))


def _check_may_block(state: Subscription, catalog: Catalog, asked: VoluntaryBlock) -> None:
    running = state.unended_voluntary_block
    if running is not None:
        raise BlockAlreadyRunning(running.last_day)
    plan = state.terms_on(asked.start).plan
    if plan is None:
        raise NotActive(state.account_number)
    if not catalog.has_home_internet(plan):
        raise BlockNeedsHomeInternet(plan)
    for used in state.voluntary_blocks:
        shared = set(used.years) & set(asked.years)
        if shared:
            raise BlockAlreadyUsedThisYear(min(shared), used.start, used.last_day)
    available = state.expected_balance.available()
    if available < asked.price:
        raise BlockNotAffordable(asked.price, available)


def end_voluntary_block(state: Subscription, today: date, at: datetime) -> Outcome:
    """End the running block at the subscriber's request; ``today`` is charged again."""
    running = state.unended_voluntary_block
    if running is None:
        raise NoRunningBlock(state.account_number)
    return _end(state, running, min(running.last_day, today - ONE_DAY), at)


def end_finished_voluntary_block(state: Subscription, closed_day: date, at: datetime) -> Outcome:
    """Announce the end of a block whose last day is ``closed_day`` or earlier; else nothing."""
    running = state.unended_voluntary_block
    if running is None or running.last_day > closed_day:
        return Outcome(state)
    return _end(state, running, running.last_day, at)


def _end(state: Subscription, block: VoluntaryBlock, last_day: date, at: datetime) -> Outcome:
    ended = block.model_copy(update={"last_day": last_day, "ended": True})
    blocks = tuple(ended if b == block else b for b in state.voluntary_blocks)
    events = (
        AccountUnblocked(
            account_number=state.account_number, reason=BlockReason.VOLUNTARY, unblocked_at=at
        ),
        VoluntaryBlockEnded(
            account_number=state.account_number,
            start=block.start,
            last_day=last_day,
            early=last_day < block.last_day,
            ended_at=at,
        ),
    )
    return Outcome(state.model_copy(update={"voluntary_blocks": blocks}), events)
