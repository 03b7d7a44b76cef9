"""Operators' corrections: reversals, and the payment-type switch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.ledger import (
    PaymentType,
    PaymentTypeChanged,
    TransactionKind,
    TransactionReversed,
)
from billing_contracts.money import Money, format_amount

from ledger.domain.accounts import AccountState
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.outcome import (
    Booking,
    Outcome,
    OutgoingEvent,
    SuspenseItem,
    SuspenseStatus,
    money,
)
from ledger.domain.transactions import OperatorNote, Posting, Transaction

REVERSE_TRANSACTION = "ReverseTransaction"
"""Cause type of the operators' command (not an event: the cause id is the command id)."""


def _settle_suspense_by_reversal(
    original: Transaction, suspense: SuspenseItem | None, reversal_id: UUID
) -> SuspenseItem | None:
    """Reversing a parked payment returns it to the payer; reversing a resolution re-opens it."""
    if original.kind is TransactionKind.PAYMENT_PARKED:
        if suspense is None or suspense.transaction_id != original.id:
            raise CommandRefused(
                ErrorCode.SUSPENSE_ITEM_REQUIRED,
                "reversing a parked payment needs its suspense item",
            )
        if suspense.status is not SuspenseStatus.OPEN:
            raise CommandRefused(
                ErrorCode.SUSPENSE_NOT_OPEN,
                f"parked payment {original.id} is {suspense.status.value};"
                " reverse its resolution first",
            )
        return replace(suspense, status=SuspenseStatus.RETURNED, settled_by=reversal_id)
    if original.kind is TransactionKind.SUSPENSE_RESOLUTION:
        if suspense is None or suspense.settled_by != original.id:
            raise CommandRefused(
                ErrorCode.SUSPENSE_ITEM_REQUIRED,
                "reversing a resolution needs the suspense item it settled",
            )
        return replace(suspense, status=SuspenseStatus.OPEN, settled_by=None)
    return None


def reverse(
    original: Transaction,
    *,
    accounts: Iterable[AccountState],
    already_reversed: bool,
    operator: OperatorNote,
    command_id: UUID,
    at: datetime,
    suspense: SuspenseItem | None = None,
) -> Outcome:
    """A correction: a new transaction with the negated postings, naming the one it reverses.

    ``accounts`` are the current states of the subscriber accounts the original touched. A
    reversal is a fact about the past, so it is posted whatever balance it leaves behind (a
    reversed bonus accrual may leave a negative bonus balance if the bonus was already spent).
    A reversal itself is never reversed: post the movement anew instead. The reversal's id is
    derived from the original's, so a transaction can be reversed only once.
    """
    if original.kind is TransactionKind.REVERSAL:
        raise CommandRefused(ErrorCode.REVERSAL_OF_REVERSAL, f"{original.id} is itself a reversal")
    if already_reversed:
        raise CommandRefused(ErrorCode.ALREADY_REVERSED, f"{original.id} is already reversed")
    reversal = Transaction.build(
        TransactionKind.REVERSAL,
        str(original.id),
        tuple(
            Posting(account, -amount, currency) for account, amount, currency in original.postings
        ),
        cause_event_id=command_id,
        cause_type=REVERSE_TRANSACTION,
        occurred_at=at,
        reverses=original.id,
        operator=operator,
    )
    settled = _settle_suspense_by_reversal(original, suspense, reversal.id)
    booking = Booking(accounts)
    booking.post(reversal)
    touched = tuple(booking.touched)
    if touched:
        key = touched[0]
    else:
        # only a parked payment touches no subscriber, and it always has its suspense item
        assert settled is not None
        key = settled.typed_account
    booking.announce(
        key,
        TransactionReversed(
            transaction_id=reversal.id,
            reversed_transaction_id=original.id,
            reversed_kind=original.kind,
            accounts=touched,
            operator=operator.who,
            reason=operator.why,
        ),
    )
    return booking.outcome(settled)


def check_self_service_limit(credit_limit: Money, ceiling: int) -> None:
    """A subscriber chooses their own credit limit only up to the operator's ceiling: a limit is
    money lent, so a larger one is an operator's decision (made with a service token)."""
    if credit_limit.minor > ceiling:
        raise CommandRefused(
            ErrorCode.INVALID_CREDIT_LIMIT,
            f"a subscriber may choose a credit limit of up to {ceiling}; a larger one is set by the operator",
            field="credit_limit",
        )


def change_payment_type(
    state: AccountState, payment_type: PaymentType, credit_limit: Money, *, changed_by: str
) -> Outcome:
    """Switch between prepaid and credit, or change the credit limit.

    A credit limit must cover the current debt (a limit the account is already beyond is
    refused). Switching back to prepaid with a negative balance is refused: on prepaid a debt
    blocks the subscriber at once, so the debt is paid first, then the switch is made.
    Asking for the current settings again changes nothing and announces nothing.
    """
    if not state.is_open:
        raise CommandRefused(ErrorCode.ACCOUNT_CLOSED, f"account {state.number} is closed")
    limit = credit_limit.minor
    if limit and credit_limit.currency != state.currency:
        raise CommandRefused(
            ErrorCode.CURRENCY_MISMATCH,
            f"account {state.number} is kept in {state.currency}, not {credit_limit.currency}",
            field="credit_limit.currency",
        )
    if payment_type is PaymentType.CREDIT:
        if limit <= 0:
            raise CommandRefused(
                ErrorCode.INVALID_CREDIT_LIMIT,
                "a credit account needs a limit above zero",
                field="credit_limit",
            )
        if state.main + limit < 0:
            raise CommandRefused(
                ErrorCode.INVALID_CREDIT_LIMIT,
                f"limit {credit_limit} does not cover the current debt of {format_amount(-state.main, state.currency)}",
                field="credit_limit",
            )
    else:
        if limit != 0:
            raise CommandRefused(
                ErrorCode.INVALID_CREDIT_LIMIT,
                "a prepaid account has no credit limit",
                field="credit_limit",
            )
        if state.main < 0:
            raise CommandRefused(
                ErrorCode.DEBT_OUTSTANDING,
                f"account {state.number} owes {format_amount(-state.main, state.currency)};"
                " pay the debt before switching to prepaid",
            )
    if payment_type is state.payment_type and limit == state.credit_limit:
        return Outcome(accounts=(state,))
    changed = AccountState(
        state.number, state.currency, state.main, state.bonus, payment_type, limit, state.is_open,
        state.version + 1,
    )
    event = PaymentTypeChanged(
        account_number=state.number,
        payment_type=payment_type,
        credit_limit=money(limit, state.currency),
        previous_payment_type=state.payment_type,
        previous_credit_limit=money(state.credit_limit, state.currency),
        changed_by=changed_by,
        account_version=changed.version,
    )
    return Outcome(events=(OutgoingEvent(state.number, event),), accounts=(changed,))
