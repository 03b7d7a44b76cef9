"""The "balance running low" alarm: told once per fall below the threshold."""

from __future__ import annotations

from dataclasses import dataclass

from billing_events.catalog.ledger import BalanceChanged, PaymentType
from billing_events.money import CurrencyMismatch, Money

from notifier.domain.errors import ErrorCode, NotifierError


def spendable(change: BalanceChanged) -> Money:
    """What the subscriber can still spend before being blocked: a credit account may go
    below zero down to its credit limit, so the alarm watches the headroom, not the balance."""
    if change.payment_type is PaymentType.CREDIT:
        return change.main + change.credit_limit
    return change.main


@dataclass(frozen=True)
class LowBalanceAlarm:
    """Tells once per fall below the threshold; re-arms when the money is back above it."""

    armed: bool

    @classmethod
    def before(cls, change: BalanceChanged, threshold: Money) -> LowBalanceAlarm:
        """The alarm of an account never seen before, judged by its funds before ``change``."""
        funds_before = spendable(change) - change.delta_main
        return cls(armed=not _below(funds_before, threshold))

    def observe(self, funds: Money, threshold: Money) -> tuple[LowBalanceAlarm, bool]:
        """The next alarm state, and whether to tell the subscriber now."""
        below = _below(funds, threshold)
        return LowBalanceAlarm(armed=not below), self.armed and below


def _below(funds: Money, threshold: Money) -> bool:
    try:
        return funds < threshold
    except CurrencyMismatch:
        raise NotifierError(
            ErrorCode.CURRENCY_MISMATCH,
            f"low-balance threshold is in {threshold.currency}, the account in {funds.currency}",
            field="low_balance_threshold",
        ) from None
