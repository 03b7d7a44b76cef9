"""What a billing day costs an account: the day's share of its plan, of each option and of each
piece of equipment not free with the day's plan.

Charge ids are a function of (account, day, fee kind, code) alone, so closing a day twice, or
again after a restart, yields the same ids and the ledger (and our own store) post them once.
"""

from __future__ import annotations

from datetime import date

from billing_contracts.catalog.tariff import ChargeApplied, FeeKind
from billing_contracts.money import PositiveMoney
from tariff.catalog import Catalog
from tariff.domain.proration import daily_share, days_in_month
from tariff.domain.subscription import Subscription


class DailyFees:
    """What a plan or an option costs a day in a region: the catalog lookups, the proration and
    the description worked out once per (fee, region, day) and kept. Closing a day for many
    accounts charges the same few fees over and over; working each out anew costs more than the
    charge itself. Keep one for as long as its catalog is the service's."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._known: dict[tuple[FeeKind, str, str, date], _Fee | None] = {}

    def of(self, kind: FeeKind, code: str, region: str, day: date) -> _Fee | None:
        """(name, the day's share, description) of the fee; None when the share is zero. An
        equipment fee is its regional rent: the caller leaves out equipment free with the plan."""
        key = (kind, code, region, day)
        if key not in self._known:  # a refusal (an item no longer sold) is not kept: it raises again
            self._known[key] = self._work_out(*key)
        return self._known[key]

    def _work_out(self, kind: FeeKind, code: str, region: str, day: date) -> _Fee | None:
        catalog = self.catalog
        if kind is FeeKind.SUBSCRIPTION:
            name, monthly = catalog.plan(code).name, catalog.plan_price(code, region)
        elif kind is FeeKind.EQUIPMENT:  # its regional rent: free equipment is never asked for
            name, monthly = catalog.equipment_item(code).name, catalog.equipment_price(code, region)
        else:
            name, monthly = catalog.option(code).name, catalog.option_price(code, region)
        share = daily_share(monthly, day)
        if share.minor == 0:  # a monthly price below one kopeck a day leaves some days at zero
            return None
        return (name, PositiveMoney(minor=share.minor, currency=share.currency),
                f"{name}: day {day.day} of {days_in_month(day)}, monthly {monthly}")


_Fee = tuple[str, PositiveMoney, str]


def charges_for_day(
    state: Subscription, catalog: Catalog, day: date, fees: DailyFees | None = None
) -> tuple[ChargeApplied, ...]:
    """The charges for ``day``: none before the plan takes effect, while the account is blocked
    (for debt, or a voluntary block covering the day), or after its closing day. ``fees``: prices
    worked out before, of the same catalog."""
    if state.is_blocked_on(day) or (state.closed_on is not None and day > state.closed_on):
        return ()
    return tuple(ChargeApplied.of(state.account_number, day, kind, code, amount, description)
                 for kind, code, (_, amount, description) in day_fees(state, day, fees or DailyFees(catalog)))


def day_fees(state: Subscription, day: date, fees: DailyFees) -> list[tuple[FeeKind, str, _Fee]]:
    """(fee kind, code, fee) of each item the terms in effect on ``day`` charge for it, blocks
    aside: the plan, the options, then the equipment not free with the plan; none before a plan
    takes effect."""
    terms = state.terms_on(day)
    if terms.plan is None:
        return []
    items = [(FeeKind.SUBSCRIPTION, terms.plan)] + [(FeeKind.OPTION, option) for option in terms.options]
    items += [(FeeKind.EQUIPMENT, code) for code in terms.equipment
              if not fees.catalog.equipment_item(code).is_free_with(terms.plan)]
    return [(kind, code, fee) for kind, code in items if (fee := fees.of(kind, code, state.region, day)) is not None]
