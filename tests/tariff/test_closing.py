"""Closing a subscription (the domain, no database): the final charges through the closing
day, a refusal while they would leave a debt, and nothing charged after."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from billing_contracts.catalog.tariff import ClosureSettlement, SubscriptionClosed
from billing_contracts.money import Money
from tariff.catalog import Catalog
from tariff.domain import AccountBalance, activate, charges_for_day, close_subscription, register
from tariff.errors import AccountIsClosed, ClosureLeavesDebt

ACCOUNT = "100000000016"
ONE_DAY = timedelta(days=1)
AT = datetime(2027, 4, 10, 9, tzinfo=UTC)


def _subscribed(catalog: Catalog, paid: int) -> Any:
    state = register(ACCOUNT, "moscow", catalog)
    state = state.model_copy(update={"balance": AccountBalance(main=Money(minor=paid), credit_limit=Money.zero())})
    return activate(state, catalog, "internet-100", date(2027, 3, 31)).state


def _close(state: Any, catalog: Catalog, open_days: list[date], today: date) -> Any:
    return close_subscription(state, catalog, open_days, today, AT, settlement=ClosureSettlement.REFUND,
                              transfer_to=None, requested_by="operations", reason="moving abroad")


def test_the_open_days_through_the_closing_day_are_charged_then_nothing(catalog: Catalog) -> None:
    state = _subscribed(catalog, 100_000)
    open_days = [date(2027, 4, 8), date(2027, 4, 9), date(2027, 4, 10)]
    closed = _close(state, catalog, open_days, date(2027, 4, 10))

    assert [c.billing_day for c in closed.charges] == open_days
    assert isinstance(closed.events[-1], SubscriptionClosed) and closed.events[-1].last_day == date(2027, 4, 10)
    assert closed.state.closed_on == date(2027, 4, 10) and closed.state.status.value == "closed"
    assert charges_for_day(closed.state, catalog, date(2027, 4, 11)) == ()
    with pytest.raises(AccountIsClosed):
        _close(closed.state, catalog, [], date(2027, 4, 12))


def test_a_closure_that_would_leave_a_debt_is_refused(catalog: Catalog) -> None:
    state = _subscribed(catalog, 3_000)  # 30.00: less than two days of internet-100 in Moscow
    with pytest.raises(ClosureLeavesDebt, match="would owe 6.68 RUB"):
        _close(state, catalog, [date(2027, 4, 9), date(2027, 4, 10)], date(2027, 4, 10))
