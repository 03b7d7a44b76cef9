"""Payments: credited to the subscriber (with a campaign bonus), or parked in suspense until
operations place them.

``at`` is the booking moment (the service's clock); a payment's own ``received_at`` decides which
bonus campaign applies, so a payment made during a campaign earns its bonus even if it is booked
after the campaign ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.ledger import (
    BonusAccrued,
    PaymentUnmatched,
    SuspenseResolved,
    TransactionKind,
    UnmatchedReason,
)
from billing_contracts.catalog.payments import DEFAULT_MAX_PAYMENT, PaymentReceived
from billing_contracts.money import MAX_MINOR, Money

from ledger.domain.accounts import AccountState
from ledger.domain.bonus import BonusCampaign, best_bonus
from ledger.domain.chart import BONUS_EXPENSE, SUSPENSE, cash_account
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.outcome import (
    Booking,
    Outcome,
    OutgoingEvent,
    SuspenseItem,
    SuspenseStatus,
    money,
    positive_money,
    require_open,
)
from ledger.domain.transactions import OperatorNote, move

RESOLVE_SUSPENSE = "ResolveSuspense"
"""Cause type of the operators' command (not an event: the cause id is the command id)."""


def unmatched_reason(
    account: AccountState | None, amount: Money, max_payment: int = DEFAULT_MAX_PAYMENT
) -> UnmatchedReason | None:
    """Why a payment cannot be credited to this account (None: it can). A payment over the
    per-payment maximum, or one the balance could not hold, arrived all the same: it waits for a
    person in suspense rather than bouncing."""
    if account is None:
        return UnmatchedReason.UNKNOWN_ACCOUNT
    if not account.is_open:
        return UnmatchedReason.CLOSED_ACCOUNT
    if account.currency != amount.currency:
        return UnmatchedReason.CURRENCY_MISMATCH
    if amount.minor > max_payment or account.main + amount.minor > MAX_MINOR:
        return UnmatchedReason.AMOUNT_OVER_LIMIT
    return None


def receive_payment(
    payment: PaymentReceived,
    *,
    cause_id: UUID | None,
    account: AccountState | None,
    campaigns: Sequence[BonusCampaign],
    at: datetime,
    max_payment: int = DEFAULT_MAX_PAYMENT,
) -> Outcome:
    """Credit the payment to its account, or park it in suspense if it matches no open account
    or carries more than one payment may."""
    reason = unmatched_reason(account, payment.amount, max_payment)
    if reason is not None:
        return park_payment(payment, reason, cause_id=cause_id, at=at)
    return credit_payment(payment, cause_id=cause_id, account=account, campaigns=campaigns, at=at)


def credit_payment(
    payment: PaymentReceived,
    *,
    cause_id: UUID | None,
    account: AccountState | None,
    campaigns: Sequence[BonusCampaign],
    at: datetime,
) -> Outcome:
    """Payment to the subscriber's main balance, and the campaign bonus (a separate transaction
    on the bonus balance, funded by ``op:bonus_expense``) when a campaign applies."""
    amount, currency = payment.amount.minor, payment.amount.currency
    account = require_open(account, currency, number=payment.account_number)
    booking = Booking((account,))
    payment_txn = move(
        TransactionKind.PAYMENT,
        payment.payment_key,
        debit=cash_account(payment.channel),
        credit=account.main_code,
        amount=amount,
        currency=currency,
        cause_event_id=cause_id,
        cause_type=PaymentReceived.event_type,
        occurred_at=at,
    )
    booking.post(payment_txn)
    best = best_bonus(
        campaigns,
        paid=payment.amount,
        channel=payment.channel,
        received_at=payment.received_at,
    )
    if best is not None:
        campaign, bonus = best
        booking.post(
            move(
                TransactionKind.BONUS_ACCRUAL,
                payment.payment_key,
                debit=BONUS_EXPENSE,
                credit=account.bonus_code,
                amount=bonus,
                currency=currency,
                cause_event_id=cause_id,
                cause_type=PaymentReceived.event_type,
                occurred_at=at,
            )
        )
        booking.announce(
            account.number,
            BonusAccrued(
                account_number=account.number,
                transaction_id=booking.transactions[-1].id,
                payment_transaction_id=payment_txn.id,
                campaign=campaign.name,
                amount=positive_money(bonus, currency),
                bonus_balance=money(booking.states[account.number].bonus, currency),
            ),
        )
    return booking.outcome()


def park_payment(
    payment: PaymentReceived, reason: UnmatchedReason, *, cause_id: UUID | None, at: datetime
) -> Outcome:
    """Money that matched no open account is neither lost nor bounced: it waits in suspense."""
    txn = move(
        TransactionKind.PAYMENT_PARKED,
        payment.payment_key,
        debit=cash_account(payment.channel),
        credit=SUSPENSE,
        amount=payment.amount.minor,
        currency=payment.amount.currency,
        cause_event_id=cause_id,
        cause_type=PaymentReceived.event_type,
        occurred_at=at,
    )
    item = SuspenseItem(
        transaction_id=txn.id,
        typed_account=payment.account_number,
        channel=payment.channel,
        reference=payment.reference,
        amount=payment.amount.minor,
        currency=payment.amount.currency,
        received_at=payment.received_at,
        reason=reason,
    )
    unmatched = PaymentUnmatched(
        transaction_id=txn.id,
        account_number=payment.account_number,
        channel=payment.channel,
        reference=payment.reference,
        amount=payment.amount,
        received_at=payment.received_at,
        reason=reason,
    )
    return Outcome((txn,), (OutgoingEvent(payment.account_number, unmatched),), (), item)


def resolve_suspense(
    item: SuspenseItem,
    *,
    target: AccountState | None,
    target_number: str,
    operator: OperatorNote,
    command_id: UUID,
    at: datetime,
) -> Outcome:
    """Operations move a parked payment to the account it was meant for.

    No campaign bonus is accrued here: the payment was made to a wrong number, and a bonus for it
    is an operator's decision, not a rule.
    """
    if item.status is not SuspenseStatus.OPEN:
        raise CommandRefused(
            ErrorCode.SUSPENSE_NOT_OPEN,
            f"suspense item {item.transaction_id} is already {item.status.value}",
        )
    account = require_open(target, item.currency, number=target_number)
    booking = Booking((account,))
    txn = move(
        TransactionKind.SUSPENSE_RESOLUTION,
        str(command_id),
        debit=SUSPENSE,
        credit=account.main_code,
        amount=item.amount,
        currency=item.currency,
        cause_event_id=command_id,
        cause_type=RESOLVE_SUSPENSE,
        occurred_at=at,
        operator=operator,
    )
    booking.post(txn)
    booking.announce(
        account.number,
        SuspenseResolved(
            transaction_id=txn.id,
            parked_transaction_id=item.transaction_id,
            account_number=account.number,
            amount=positive_money(item.amount, item.currency),
            operator=operator.who,
            reason=operator.why,
            typed_account=item.typed_account,
        ),
        also_under=item.typed_account,  # the mistyped number's history shows where its money went
    )
    return booking.outcome(replace(item, status=SuspenseStatus.RESOLVED, settled_by=txn.id))
