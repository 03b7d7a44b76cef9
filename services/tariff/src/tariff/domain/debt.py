"""Blocking for non-payment, judged on the balance the account will have once the ledger has
settled every charge this service published.

A prepaid account below zero, or a credit account below minus its credit limit, is blocked
(reason debt) and no longer charged; a balance back within the rule unblocks it. The verdict is
taken on the *expected* balance: the ledger's last BalanceChanged, less the charges published
since that the ledger has not settled yet. A charge counts the moment it is published, so when
several days are closed at once (a catch-up after a restart or a pause), day N+1 is decided
knowing day N's charges, and the account is blocked on the day closing the days one by one, each
after the ledger's answer, would have blocked it. A verdict that does not change publishes
nothing. Nor does a BalanceChanged no newer than the balance held (its ``account_version``): an
old one delivered again would move the balance back and block or unblock on a past verdict.

Which charges a BalanceChanged settles: the ledger takes an account's charges in the order they
were published (one partition per account) and announces one BalanceChanged per transaction, in
its own order, naming the event that caused it. So a BalanceChanged caused by charge C settles C
(by what it took from the main and the bonus balances: a charge the ledger pays partly from
bonuses is settled by two of them) and every charge published before C (the ledger is past
those, posted or refused). One with another cause (a payment, a transfer, a correction) settles
none: the charges still on their way are not in its balance yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.ledger import BalanceChanged, PaymentTypeChanged
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    ChargeApplied,
)
from billing_contracts.money import PositiveMoney
from tariff.domain.subscription import AccountBalance, Outcome, Subscription, UnsettledCharge


def apply_balance(state: Subscription, balance: AccountBalance, at: datetime) -> Outcome:
    """The ledger's balance, settling no charge (a balance kept from before the registration)."""
    return _judged(state, state.model_copy(update={"balance": balance}), at)


def balance_changed(state: Subscription, event: BalanceChanged, at: datetime) -> Outcome | None:
    """The ledger's BalanceChanged: the new balance, and the charges it settles. None for an
    event no newer than the balance held (a redelivery, a refill): it changes and decides nothing."""
    if not state.balance.is_older_than(event):
        return None
    taken = -(event.delta_main.minor + event.delta_bonus.minor)
    unsettled = _settle(state.unsettled, event.cause_event_id, taken)
    balance = AccountBalance.from_event(event, held=state.balance.version)
    updated = state.model_copy(update={"balance": balance, "unsettled": unsettled})
    return _judged(state, updated, at)


def payment_type_changed(state: Subscription, event: PaymentTypeChanged, at: datetime) -> Outcome | None:
    """The ledger's PaymentTypeChanged: a switch between prepaid and credit, or a new limit, told
    without a BalanceChanged when no money moved; the line of debt moves with it at once (a debt
    within a new credit limit unblocks). None for an event no newer than the balance held."""
    if not state.balance.is_older_than(event):
        return None
    return _judged(state, state.model_copy(update={"balance": state.balance.with_payment_type(event)}), at)


def charges_published(
    state: Subscription, published: Iterable[tuple[UUID, ChargeApplied]], at: datetime
) -> Outcome:
    """Charges just published (with their event ids) count against the balance at once."""
    issued = tuple(
        UnsettledCharge(event_id=event_id, charge_id=charge.charge_id, amount=charge.amount)
        for event_id, charge in published
    )
    return _judged(state, state.model_copy(update={"unsettled": (*state.unsettled, *issued)}), at)


def _settle(
    unsettled: tuple[UnsettledCharge, ...], cause: UUID | None, taken: int
) -> tuple[UnsettledCharge, ...]:
    index = next((n for n, charge in enumerate(unsettled) if charge.event_id == cause), None)
    if index is None:
        return unsettled
    charge, later = unsettled[index], unsettled[index + 1 :]
    left = charge.amount.minor - max(taken, 0)
    if left <= 0:
        return later
    amount = PositiveMoney(minor=left, currency=charge.amount.currency)
    return (charge.model_copy(update={"amount": amount}), *later)


def _judged(before: Subscription, updated: Subscription, at: datetime) -> Outcome:
    in_debt = updated.expected_balance.in_debt()
    if in_debt != updated.debt_blocked:
        updated = updated.model_copy(update={"debt_blocked": in_debt})
    if in_debt == before.debt_blocked:
        return Outcome(updated)
    if in_debt:
        event: AccountBlocked | AccountUnblocked = AccountBlocked(
            account_number=before.account_number, reason=BlockReason.DEBT, blocked_at=at
        )
    else:
        event = AccountUnblocked(
            account_number=before.account_number, reason=BlockReason.DEBT, unblocked_at=at
        )
    return Outcome(updated, (event,))
