"""What the cabinet shows before a top-up: what today costs, the day the money lasts until, and
what to pay now to stay unblocked to the end of the month.

Every figure is worked out with the daily charges' own rules (:mod:`tariff.domain.proration`:
whole kopecks per day of the month's length, the first days of a month carrying the remainder),
day by day, over the terms each day will have (changes scheduled from tomorrow included) and
without the days of a voluntary block (not charged). The money is the expected balance (the
ledger's last word less the charges published since), plus the credit limit on a credit account:
the debt rule's own input, so "lasts until" is the last day the debt rule would not block for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from billing_contracts.catalog.tariff import FeeKind
from billing_contracts.money import Money
from tariff.domain.charging import DailyFees, day_fees
from tariff.domain.proration import days_in_month
from tariff.domain.subscription import Subscription

ONE_DAY = timedelta(days=1)
HORIZON_DAYS = 3 * 366
"""How far "lasts until" looks: money that lasts longer is said to (``lasts_until`` None)."""


@dataclass(frozen=True)
class DailyItem:
    fee_kind: FeeKind
    code: str
    name: str
    fee: Money


@dataclass(frozen=True)
class Forecast:
    today: date
    items: tuple[DailyItem, ...]
    """Today's fee of each item in effect (the plan, then the options), blocks aside."""
    daily_fee: Money
    available: Money
    """The expected balance, with the credit limit on a credit account."""
    first_day_to_charge: date
    """The first billing day not charged yet: the forecast charges it and those after."""
    lasts_until: date | None
    """The last day the money pays for in full; None: longer than :data:`HORIZON_DAYS` (or
    nothing is charged). The day before the first day to charge: it does not pay for that one."""
    month_end: date
    to_pay_now: Money
    """What keeps the account within the debt rule through ``month_end``: the charges of the
    days to charge up to it, less the money available, and never below zero."""


def month_end(day: date) -> date:
    return day.replace(day=days_in_month(day))


def forecast(state: Subscription, fees: DailyFees, today: date, first_day_to_charge: date) -> Forecast:
    """The forecast on ``today`` of an account whose days before ``first_day_to_charge`` are
    charged (in its expected balance, or settled); a debt block aside, as paying lifts it."""
    currency = state.balance.main.currency
    money = state.expected_balance.available().minor
    end = month_end(today)

    def cost(day: date) -> int:
        if state.voluntary_block_on(day) is not None:
            return 0
        return sum(fee.minor for _, _, (_, fee, _) in day_fees(state, day, fees))

    to_month_end = sum(cost(first_day_to_charge + ONE_DAY * n) for n in range((end - first_day_to_charge).days + 1))
    lasts_until, left, day = None, money, first_day_to_charge
    for _ in range(HORIZON_DAYS):
        left -= cost(day)
        if left < 0:
            lasts_until = day - ONE_DAY
            break
        day += ONE_DAY
    items = tuple(DailyItem(kind, code, name, Money(minor=fee.minor, currency=currency))
                  for kind, code, (name, fee, _) in day_fees(state, today, fees))
    return Forecast(
        today=today, items=items, daily_fee=Money(minor=sum(item.fee.minor for item in items), currency=currency),
        available=Money(minor=money, currency=currency), first_day_to_charge=first_day_to_charge,
        lasts_until=lasts_until, month_end=end, to_pay_now=Money(minor=max(0, to_month_end - money), currency=currency),
    )
