"""What the tariff service's commands need from their process, built once in :mod:`tariff.app`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from billing_events.service import ServiceContext
from tariff.catalog import Catalog


@dataclass(frozen=True, kw_only=True)
class TariffContext(ServiceContext):
    producer: str = "tariff"
    catalog: Catalog
    zone: ZoneInfo
    """Where a billing day begins and ends (setting ``billing_time_zone``)."""
    charge_applied_version: Literal[1, 2]
    """The ChargeApplied version published (setting ``charge_applied_version``)."""

    def billing_day(self, moment: datetime | None = None) -> date:
        """The billing day a moment (by default: now) belongs to."""
        return billing_day(moment or self.clock.now(), self.zone)

    def end_of_billing_day(self, day: date) -> datetime:
        """The moment ``day`` ends (the next day's midnight in the billing time zone): when what
        closing it decides takes effect, and the date those facts carry however late it closed."""
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)


def billing_day(moment: datetime, zone: ZoneInfo) -> date:
    """The billing day a moment belongs to: its date in the billing time zone."""
    return moment.astimezone(zone).date()
