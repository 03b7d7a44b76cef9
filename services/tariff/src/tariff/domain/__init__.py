"""The tariff service's pure rules: subscriptions, daily charges, debt and voluntary blocks.

No I/O here: time comes in as ``date`` (the billing day) and ``datetime`` (the moment) arguments,
the catalog as a :class:`tariff.catalog.Catalog`. Every transition returns an
:class:`Outcome` (new state + events to publish) or raises a :class:`tariff.errors.TariffError`.
"""

from billing_contracts.catalog.tariff import charge_id
from tariff.domain.charging import DailyFees, charges_for_day, day_fees
from tariff.domain.closing import close_subscription
from tariff.domain.day_close import close_account_day, close_day
from tariff.domain.debt import apply_balance, balance_changed, charges_published, payment_type_changed
from tariff.domain.forecast import DailyItem, Forecast, forecast
from tariff.domain.history import record_day
from tariff.domain.proration import daily_share, days_in_month, share_of_day
from tariff.domain.subscription import (
    AccountBalance,
    ItemPeriod,
    Outcome,
    ScheduledTerms,
    Subscription,
    SubscriptionStatus,
    Terms,
    UnsettledCharge,
    VoluntaryBlock,
    activate,
    add_option,
    change_plan,
    next_billing_day,
    register,
    remove_option,
    rent_equipment,
    return_equipment,
)
from tariff.domain.voluntary_block import (
    MAX_BLOCK_DAYS,
    end_finished_voluntary_block,
    end_voluntary_block,
    start_voluntary_block,
)

__all__ = [
    "MAX_BLOCK_DAYS",
    "AccountBalance",
    "DailyFees",
    "DailyItem",
    "Forecast",
    "ItemPeriod",
    "Outcome",
    "ScheduledTerms",
    "Subscription",
    "SubscriptionStatus",
    "Terms",
    "UnsettledCharge",
    "VoluntaryBlock",
    "activate",
    "add_option",
    "apply_balance",
    "balance_changed",
    "payment_type_changed",
    "change_plan",
    "charge_id",
    "charges_published",
    "charges_for_day",
    "close_account_day",
    "close_day",
    "close_subscription",
    "daily_share",
    "day_fees",
    "forecast",
    "days_in_month",
    "end_finished_voluntary_block",
    "end_voluntary_block",
    "next_billing_day",
    "record_day",
    "register",
    "remove_option",
    "rent_equipment",
    "return_equipment",
    "share_of_day",
    "start_voluntary_block",
]
