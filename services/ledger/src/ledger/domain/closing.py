"""Closing an account: settle what is left on its main balance, then close it.

The tariff publishes SubscriptionClosed after the account's final charges, under the same key,
so the ledger has posted them when it decides this. Money left on the main balance is paid back
to the subscriber (a refund: to ``op:refunds``, a payout the operator makes outside the suite) or
moved to another open account, as the operator chose; then the account is closed (the journal's
``account_closed`` fact). A debt cannot be settled this way: the account stays open and the event
is refused, for operations to see. Bonuses left are forfeited and stay in the history.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.ledger import AccountClosed, AccountRefunded, FundsTransferred, TransactionKind
from billing_contracts.catalog.tariff import ClosureSettlement, SubscriptionClosed
from billing_contracts.money import format_amount

from ledger.domain.accounts import AccountState, close_account
from ledger.domain.chart import REFUNDS
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.outcome import Booking, Outcome, money, positive_money, require_open
from ledger.domain.transactions import move


def settle_and_close(
    closing: SubscriptionClosed,
    *,
    cause_id: UUID,
    account: AccountState | None,
    target: AccountState | None,
    at: datetime,
) -> Outcome:
    """Refund or transfer the main balance as ``closing.settlement`` says, then close the account.
    A closing delivered again for an account already closed changes nothing."""
    if account is not None and not account.is_open:
        return Outcome()
    account = require_open(account, account.currency if account else "", number=closing.account_number)
    if account.main < 0:
        raise CommandRefused(
            ErrorCode.ACCOUNT_NOT_SETTLED,
            f"account {account.number} owes {format_amount(-account.main, account.currency)}:"
            " the debt is paid before the account is closed",
        )
    booking = Booking((account,) if target is None else (account, target))
    key = f"closure:{account.number}"
    left = account.main
    if left and closing.settlement is ClosureSettlement.TRANSFER:
        assert closing.transfer_to is not None  # the event's own validation
        target = require_open(target, account.currency, number=closing.transfer_to)
        txn = move(TransactionKind.TRANSFER, key, debit=account.main_code, credit=target.main_code, amount=left,
                   currency=account.currency, cause_event_id=cause_id, cause_type=closing.event_type, occurred_at=at)
        booking.post(txn)
        booking.announce(account.number, FundsTransferred(
            request_id=cause_id, transaction_id=txn.id, from_account=account.number, to_account=target.number,
            amount=positive_money(left, account.currency)), also_under=target.number)
    elif left:
        txn = move(TransactionKind.REFUND, key, debit=account.main_code, credit=REFUNDS, amount=left,
                   currency=account.currency, cause_event_id=cause_id, cause_type=closing.event_type, occurred_at=at)
        booking.post(txn)
        booking.announce(account.number, AccountRefunded(
            account_number=account.number, transaction_id=txn.id, amount=positive_money(left, account.currency),
            requested_by=closing.requested_by))
    closed = close_account(booking.states[account.number])
    booking.states[account.number] = closed
    booking.touched[account.number] = None
    booking.announce(account.number, AccountClosed(
        account_number=account.number, settlement=closing.settlement, settled=money(left, account.currency),
        transfer_to=closing.transfer_to if left and closing.settlement is ClosureSettlement.TRANSFER else None,
        forfeited_bonus=money(max(closed.bonus, 0), closed.currency), requested_by=closing.requested_by,
        reason=closing.reason, account_version=closed.version))
    return booking.outcome()
