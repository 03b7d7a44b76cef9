"""A subscriber's account as the ledger's decisions see it, and how a transaction changes it.

``AccountState`` is the projection of the journal for one personal account: the main and bonus
balances are exactly the sums of the postings on ``sub:<n>:main`` and ``sub:<n>:bonus``
(:func:`apply` is that fold), plus the settings that decide what the subscriber may spend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.money import DEFAULT_CURRENCY, MINOR_UNIT_DIGITS, format_amount

from ledger.domain.chart import bonus_account, is_account_number, main_account
from ledger.domain.errors import CommandRefused, ErrorCode, InvalidTransaction
from ledger.domain.transactions import Transaction


@dataclass(frozen=True, slots=True)
class AccountState:
    number: str
    currency: str = DEFAULT_CURRENCY
    main: int = 0
    bonus: int = 0
    payment_type: PaymentType = PaymentType.PREPAID
    credit_limit: int = 0
    is_open: bool = True
    version: int = field(default=0, compare=False)
    """How many changes the account has had since it was opened (or since the ledger began
    counting them, migration 0004): the ``account_version`` of the events announcing them. Not
    part of equality: two states with the same money and settings are the same state."""

    @property
    def main_code(self) -> str:
        return main_account(self.number)

    @property
    def bonus_code(self) -> str:
        return bonus_account(self.number)


def spendable(state: AccountState) -> int:
    """What the account may still spend: its main balance, plus the credit limit on credit."""
    if state.payment_type is PaymentType.CREDIT:
        return state.main + state.credit_limit
    return state.main


def transferable(state: AccountState) -> int:
    """What the account may give away: money it has. Credit lets charges run the balance below
    zero; it is not a loan of cash, so transfers and bonus-funded spends never reach into it."""
    return max(state.main, 0)


def apply(state: AccountState, txn: Transaction) -> AccountState:
    """The account after one transaction (unchanged if the transaction does not touch it)."""
    main_code, bonus_code = state.main_code, state.bonus_code
    delta_main = delta_bonus = 0
    for account, amount, _ in txn.postings:
        if account == main_code:
            delta_main += amount
        elif account == bonus_code:
            delta_bonus += amount
    if not delta_main and not delta_bonus:
        return state
    if txn.currency != state.currency:
        raise InvalidTransaction(
            ErrorCode.CURRENCY_MISMATCH,
            f"transaction {txn.id} in {txn.currency} touches {state.number}"
            f" kept in {state.currency}",
        )
    return AccountState(
        state.number,
        state.currency,
        state.main + delta_main,
        state.bonus + delta_bonus,
        state.payment_type,
        state.credit_limit,
        state.is_open,
        state.version + 1,
    )


def open_account(number: str, currency: str = DEFAULT_CURRENCY) -> AccountState:
    """A new prepaid account with nothing on it (opened when a subscriber registers)."""
    if not is_account_number(number):
        raise CommandRefused(
            ErrorCode.INVALID_ACCOUNT_NUMBER,
            f"{number!r} is not a 12-digit account number",
            field="number",
        )
    if currency not in MINOR_UNIT_DIGITS:
        raise CommandRefused(
            ErrorCode.CURRENCY_MISMATCH, f"unknown currency {currency!r}", field="currency"
        )
    return AccountState(number, currency)


def close_account(state: AccountState) -> AccountState:
    """Close a settled account: payments for it go to suspense from now on.

    Only a zero main balance may be closed, so no real money (nor debt) is stranded on a closed
    account; remaining bonuses are forfeited by the programme's rules and stay visible in history.
    """
    if not state.is_open:
        raise CommandRefused(ErrorCode.ACCOUNT_CLOSED, f"account {state.number} is already closed")
    if state.main != 0:
        raise CommandRefused(
            ErrorCode.ACCOUNT_NOT_SETTLED,
            f"account {state.number} has a main balance of {format_amount(state.main, state.currency)}; settle it before closing",
        )
    return AccountState(
        state.number,
        state.currency,
        state.main,
        state.bonus,
        state.payment_type,
        state.credit_limit,
        False,
        state.version + 1,
    )
