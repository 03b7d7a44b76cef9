"""The tariff history of an account: each plan, option and rented item of equipment with the days it was in effect and
what it was charged, kept by the day close as a fact of each closed day (a change is recorded on
the first day it is in effect, never when it is requested: a scheduled change replaced before
that day never happened)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from billing_contracts.catalog.tariff import ChargeApplied, FeeKind
from billing_contracts.money import Money
from tariff.domain.subscription import ItemPeriod, Subscription

Item = tuple[FeeKind, str]


def items_in_effect(state: Subscription, day: date) -> list[Item]:
    terms = state.terms_on(day)
    if terms.plan is None:
        return []
    return [(FeeKind.SUBSCRIPTION, terms.plan), *((FeeKind.OPTION, option) for option in terms.options),
            *((FeeKind.EQUIPMENT, item) for item in terms.equipment)]


def record_day(state: Subscription, day: date, charges: Sequence[ChargeApplied]) -> Subscription:
    """The history once ``day`` is closed with ``charges``: the items no longer in effect end the
    day before, those newly in effect start on it, and each charged item counts the day."""
    in_effect = items_in_effect(state, day)
    if not in_effect and not state.history:
        return state  # no plan ever: nothing to record
    charged = {(charge.fee_kind, charge.charged_for.code): charge.amount for charge in charges}
    periods = list(state.history)
    open_items = {(period.fee_kind, period.code) for period in periods if period.ended is None}
    zero = Money.zero(state.balance.main.currency)
    periods += [ItemPeriod(fee_kind=kind, code=code, started=day, charged=zero)
                for kind, code in in_effect if (kind, code) not in open_items]
    for index, period in enumerate(periods):
        if period.ended is not None:
            continue
        item = (period.fee_kind, period.code)
        if item not in in_effect:
            periods[index] = period.model_copy(update={"ended": day - timedelta(days=1)})
        elif (amount := charged.get(item)) is not None:
            periods[index] = period.model_copy(update={
                "charged_days": period.charged_days + 1, "charged": period.charged + amount,
                "daily_fee": Money(minor=amount.minor, currency=amount.currency)})
    return state.model_copy(update={"history": tuple(periods)})
