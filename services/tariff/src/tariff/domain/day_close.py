"""Closing a billing day: what each account is charged for it, and what ends with it.

Exactly once per account and day is shared work: the domain makes the result of closing a day
a pure function of the state (the same charges and charge ids however often the day is
closed), and the store records the closed (account, day) pairs so a day is closed once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from tariff.catalog import Catalog
from tariff.domain.charging import DailyFees, charges_for_day
from tariff.domain.history import record_day
from tariff.domain.subscription import Outcome, Subscription
from tariff.domain.voluntary_block import end_finished_voluntary_block


def close_account_day(
    state: Subscription, catalog: Catalog, day: date, at: datetime, fees: DailyFees | None = None
) -> Outcome:
    """Charge ``day``, record it in the tariff history, fold in the terms that took effect by it,
    end a block whose last day it was.

    Terms from the next day stay scheduled, so closing the same day again charges the same.
    ``fees``: the catalog's daily fees, kept across the accounts of a batch.
    """
    charges = charges_for_day(state, catalog, day, fees)
    ended = end_finished_voluntary_block(record_day(state, day, charges).settled(day), day, at)
    return Outcome(ended.state, (*charges, *ended.events))


def close_day(
    states: Iterable[Subscription], catalog: Catalog, day: date, at: datetime
) -> list[Outcome]:
    """Close ``day`` for every account, one outcome per account in the given order."""
    fees = DailyFees(catalog)
    return [close_account_day(state, catalog, day, at, fees) for state in states]
