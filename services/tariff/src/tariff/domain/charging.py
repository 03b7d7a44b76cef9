"""What a billing day costs an account: the day's share of its plan and of each option.

Charge ids are a function of (account, day, fee kind, code) alone, so closing a day twice, or
again after a restart, yields the same ids and the ledger (and our own store) post them once.
"""

from __future__ import annotations

from datetime import date

from billing_events.catalog.tariff import ChargeApplied, FeeKind
from billing_events.money import Money, PositiveMoney
from tariff.catalog import Catalog
from tariff.domain.proration import daily_share, days_in_month
from tariff.domain.subscription import Subscription


def charges_for_day(state: Subscription, catalog: Catalog, day: date) -> tuple[ChargeApplied, ...]:
    """The charges for ``day``: none before the plan takes effect or while the account is
    blocked (for debt, or a voluntary block covering the day)."""
    terms = state.terms_on(day)
    if terms.plan is None or state.is_blocked_on(day):
        return ()
    plan = catalog.plan(terms.plan)
    fees = [
        (FeeKind.SUBSCRIPTION, plan.code, plan.name, catalog.plan_price(plan.code, state.region))
    ]
    fees += [
        (
            FeeKind.OPTION,
            option,
            catalog.option(option).name,
            catalog.option_price(option, state.region),
        )
        for option in terms.options
    ]
    charges = (_daily_charge(state.account_number, day, *fee) for fee in fees)
    return tuple(charge for charge in charges if charge is not None)


def _daily_charge(
    account_number: str, day: date, kind: FeeKind, code: str, name: str, monthly: Money
) -> ChargeApplied | None:
    share = daily_share(monthly, day)
    if share.minor == 0:  # a monthly price below one kopeck a day leaves some days at zero
        return None
    return ChargeApplied.of(
        account_number, day, kind, code, PositiveMoney(minor=share.minor, currency=share.currency),
        f"{name}: day {day.day} of {days_in_month(day)}, monthly {monthly}",
    )
