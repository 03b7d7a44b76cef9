"""Closing an account (support's decision): its final charges, then nothing more.

Every billing day not closed yet, up to and including the closing day, is charged as the day
close would charge it (the closing day in full: the service ran on it). The money left must
cover those charges: an account that would be left owing is refused, the debt is paid first.
Then the subscription is closed: no day after the closing day is ever charged, and
SubscriptionClosed tells the ledger to settle what is left (a refund, or a transfer to another
account, as the operator chose) and close the account there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from billing_contracts.catalog.tariff import ClosureSettlement, SubscriptionClosed
from billing_contracts.money import Money
from tariff.catalog import Catalog
from tariff.domain.day_close import close_account_day
from tariff.domain.subscription import Outcome, Subscription
from tariff.errors import AccountIsClosed, ClosureLeavesDebt


def close_subscription(
    state: Subscription,
    catalog: Catalog,
    open_days: Sequence[date],
    today: date,
    at: datetime,
    *,
    settlement: ClosureSettlement,
    transfer_to: str | None,
    requested_by: str,
    reason: str,
) -> Outcome:
    """Charge ``open_days`` (the days not closed yet, through ``today``, the closing day) and close."""
    if state.closed_on is not None:
        raise AccountIsClosed(state.account_number, state.closed_on)
    events = []
    current = state
    for day in open_days:
        closed_day = close_account_day(current, catalog, day, at)
        current = closed_day.state
        events += closed_day.events
    final = Outcome(current, tuple(events))
    left = state.expected_balance.after(final.charges).main
    if left < Money.zero(left.currency):
        raise ClosureLeavesDebt(state.account_number, Money(minor=-left.minor, currency=left.currency))
    closing = SubscriptionClosed(
        account_number=state.account_number, last_day=today, settlement=settlement, transfer_to=transfer_to,
        requested_by=requested_by, reason=reason, closed_at=at,
    )
    return Outcome(current.model_copy(update={"closed_on": today}), (*final.events, closing))
