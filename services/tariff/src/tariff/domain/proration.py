"""Spreading a monthly price over the days of the month, to the kopeck.

A month of D days is charged D daily shares of the monthly price. Integer division leaves a
remainder of fewer than D kopecks; those go one each to the first days of the month, so the D
shares add up to the monthly price exactly and no two days differ by more than one kopeck.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date

from billing_contracts.money import Money


def days_in_month(day: date) -> int:
    return monthrange(day.year, day.month)[1]


def share_of_day(monthly_minor: int, days: int, day_of_month: int) -> int:
    """Day ``day_of_month`` (1-based) of a ``days``-day month's share of ``monthly_minor``."""
    if monthly_minor < 0:
        raise ValueError("a monthly price cannot be negative")
    if not 1 <= day_of_month <= days:
        raise ValueError(f"day {day_of_month} is outside a month of {days} days")
    base, remainder = divmod(monthly_minor, days)
    return base + (1 if day_of_month <= remainder else 0)


def daily_share(monthly: Money, day: date) -> Money:
    """The share of a monthly price charged for ``day``."""
    minor = share_of_day(monthly.minor, days_in_month(day), day.day)
    return Money(minor=minor, currency=monthly.currency)
