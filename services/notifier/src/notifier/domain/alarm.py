"""The "balance running low" alarm: told once per fall below the threshold."""

from __future__ import annotations

from dataclasses import dataclass

from billing_contracts.versions import is_newer
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType
from billing_contracts.money import CurrencyMismatch, Money

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
    balance_version: int | None = None
    """The account_version of the BalanceChanged it last observed (None: none, or unversioned)."""

    @classmethod
    def before(cls, change: BalanceChanged, threshold: Money) -> LowBalanceAlarm:
        """The alarm of an account never seen before, judged by its funds before ``change``."""
        funds_before = spendable(change) - change.delta_main
        return cls(armed=not _below(funds_before, threshold))

    def is_older_than(self, change: BalanceChanged) -> bool:
        """Whether ``change`` is newer than what the alarm observed: only then is it decided on."""
        return is_newer(change.account_version, self.balance_version)

    def observe(self, funds: Money, threshold: Money, *, version: int | None = None) -> tuple[LowBalanceAlarm, bool]:
        """The next alarm state, and whether to tell the subscriber now; ``version``: the
        account_version of the change that left ``funds`` (None: the version held stays)."""
        below = _below(funds, threshold)
        kept = self.balance_version if version is None else version
        return LowBalanceAlarm(armed=not below, balance_version=kept), self.armed and below


def _below(funds: Money, threshold: Money) -> bool:
    try:
        return funds < threshold
    except CurrencyMismatch:
        raise NotifierError(
            ErrorCode.CURRENCY_MISMATCH,
            f"low-balance threshold is in {threshold.currency}, the account in {funds.currency}",
            field="low_balance_threshold",
        ) from None
