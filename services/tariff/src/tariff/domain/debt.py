"""Blocking for non-payment, from the balances the ledger announces in BalanceChanged.

A prepaid account below zero, or a credit account below minus its credit limit, is blocked
(reason debt) and no longer charged; a later balance back within the rule unblocks it. The
function is idempotent: a balance that does not change the verdict publishes nothing.
"""

from __future__ import annotations

from datetime import datetime

from billing_events.catalog.tariff import AccountBlocked, AccountUnblocked, BlockReason
from tariff.domain.subscription import AccountBalance, Outcome, Subscription


def apply_balance(state: Subscription, balance: AccountBalance, at: datetime) -> Outcome:
    in_debt = balance.in_debt()
    updated = state.model_copy(update={"balance": balance, "debt_blocked": in_debt})
    if in_debt == state.debt_blocked:
        return Outcome(updated)
    if in_debt:
        event: AccountBlocked | AccountUnblocked = AccountBlocked(
            account_number=state.account_number, reason=BlockReason.DEBT, blocked_at=at
        )
    else:
        event = AccountUnblocked(
            account_number=state.account_number, reason=BlockReason.DEBT, unblocked_at=at
        )
    return Outcome(updated, (event,))
