"""What a command decides: the transactions to journal, the events to publish, the new states.

Builders collect their transactions through a :class:`Booking`, which folds each one into the
accounts it touches and records a ``BalanceChanged`` per touched account, so the events always
agree with the states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

from billing_contracts.catalog.ledger import BalanceChanged, TransactionKind, UnmatchedReason
from billing_contracts.catalog.payments import PaymentChannel
from billing_contracts.envelope import Event
from billing_contracts.money import MAX_MINOR, MINOR_UNIT_DIGITS, Money, PositiveMoney, format_amount

from ledger.domain.accounts import AccountState, apply
from ledger.domain.chart import is_operator_account, subscriber_number
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.transactions import Transaction


class OutgoingEvent(NamedTuple):
    key: str
    """The Kafka key: the account number the event is about."""
    payload: Event
    also_under: str | None = None
    """Another number whose history shows the event too (published once, under ``key``)."""


class SuspenseStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class SuspenseItem:
    """A payment parked in suspense, and what became of it."""

    transaction_id: UUID
    typed_account: str
    channel: PaymentChannel
    reference: str
    amount: int
    currency: str
    received_at: datetime
    reason: UnmatchedReason
    status: SuspenseStatus = SuspenseStatus.OPEN
    settled_by: UUID | None = None
    """The transaction that resolved it (moved to an account) or returned it (a reversal)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    transactions: tuple[Transaction, ...] = ()
    events: tuple[OutgoingEvent, ...] = ()
    accounts: tuple[AccountState, ...] = ()
    """New states of the subscriber accounts the command touched."""
    suspense: SuspenseItem | None = None
    """The new or changed suspense item, if the command parked or settled one."""


_ZEROS = {currency: Money.zero(currency) for currency in MINOR_UNIT_DIGITS}
"""Most balances an event reports are zero (the bonus and its change, a prepaid account's credit
limit): one frozen instance per currency instead of a validated model each time."""


def money(minor: int, currency: str) -> Money:
    if minor == 0 and type(minor) is int and (zero := _ZEROS.get(currency)) is not None:
        return zero
    return Money(minor=minor, currency=currency)


def positive_money(minor: int, currency: str) -> PositiveMoney:
    return PositiveMoney(minor=minor, currency=currency)


def subscribers_touched(txn: Transaction) -> list[str]:
    numbers: list[str] = []
    for posting in txn.postings:
        number = subscriber_number(posting.account)
        if number is not None and number not in numbers:
            numbers.append(number)
    return numbers


def balance_changed(before: AccountState, after: AccountState, txn: Transaction) -> BalanceChanged:
    currency = after.currency
    return BalanceChanged(
        account_number=after.number,
        transaction_id=txn.id,
        main=money(after.main, currency),
        bonus=money(after.bonus, currency),
        delta_main=money(after.main - before.main, currency),
        delta_bonus=money(after.bonus - before.bonus, currency),
        cause_event_id=txn.cause_event_id,
        cause_type=txn.cause_type,
        payment_type=after.payment_type,
        credit_limit=money(after.credit_limit, currency),
        credited_payment=txn.kind is TransactionKind.PAYMENT,
        account_version=after.version,
    )


class Booking:
    """Collects the transactions of one command, folding each into the accounts it touches."""

    __slots__ = ("events", "states", "touched", "transactions")

    def __init__(self, states: Iterable[AccountState]) -> None:
        self.states = {state.number: state for state in states}
        self.touched: dict[str, None] = {}
        self.transactions: list[Transaction] = []
        self.events: list[OutgoingEvent] = []

    def post(self, txn: Transaction) -> None:
        self.transactions.append(txn)
        for number in subscribers_touched(txn):
            before = self.states.get(number)
            if before is None:
                raise CommandRefused(
                    ErrorCode.UNKNOWN_ACCOUNT,
                    f"transaction {txn.id} touches unknown account {number}",
                )
            after = apply(before, txn)
            check_within_range(after)
            self.states[number] = after
            self.touched[number] = None
            self.events.append(OutgoingEvent(number, balance_changed(before, after, txn)))

    def announce(self, key: str, payload: Event, *, also_under: str | None = None) -> None:
        self.events.append(OutgoingEvent(key, payload, also_under if also_under != key else None))

    def outcome(self, suspense: SuspenseItem | None = None) -> Outcome:
        return Outcome(
            tuple(self.transactions),
            tuple(self.events),
            tuple(self.states[number] for number in self.touched),
            suspense,
        )


def check_within_range(state: AccountState) -> None:
    """A balance stays within what money may hold: beyond it is an attack or a typo, refused in words."""
    for balance in (state.main, state.bonus):
        if not -MAX_MINOR <= balance <= MAX_MINOR:
            raise CommandRefused(
                ErrorCode.AMOUNT_OVER_LIMIT,
                f"account {state.number} would hold {format_amount(balance, state.currency)},"
                f" beyond the {format_amount(MAX_MINOR, state.currency)} a balance may hold",
                # Beyond what a Money may hold: the amounts as words.
                params={"amount": format_amount(balance, state.currency),
                        "limit": format_amount(MAX_MINOR, state.currency)},
            )


OperatorBalances = dict[tuple[str, str], int]
"""The operator accounts' balances by (account code, currency)."""


def operator_balances_after(balances: OperatorBalances, transactions: Iterable[Transaction]) -> OperatorBalances:
    """The operator accounts ``transactions`` move, with their balances after them. Cash, revenue
    and suspense hold money as a subscriber's balance does, within what money may hold: a movement
    that would take one beyond it is refused whole, since nowhere else could take it either (a
    payment that cannot be parked in suspense goes to a dead letter, and nothing moves)."""
    after: OperatorBalances = {}
    for txn in transactions:
        for account, amount, currency in txn.postings:
            if is_operator_account(account):
                key = (account, currency)
                after[key] = after.get(key, balances.get(key, 0)) + amount
    beyond = [f"{code} would hold {format_amount(balance, currency)}"
              for (code, currency), balance in after.items() if not -MAX_MINOR <= balance <= MAX_MINOR]
    if beyond:
        raise CommandRefused(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"{', '.join(beyond)}, beyond the ±{MAX_MINOR:,} minor units a balance may hold: nothing was moved",
        )
    return after


def check_movement_limit(amount: Money, limit: int) -> None:
    """One request moves at most ``limit`` (the per-payment maximum, a setting)."""
    if amount.minor > limit:
        raise CommandRefused(
            ErrorCode.AMOUNT_OVER_LIMIT,
            f"{amount} is over the limit of {format_amount(limit, amount.currency)} for one movement",
            field="amount.minor", params={"amount": amount, "limit": money(limit, amount.currency)},
        )


def require_open(account: AccountState | None, currency: str, *, number: str) -> AccountState:
    if account is None:
        raise CommandRefused(
            ErrorCode.UNKNOWN_ACCOUNT, f"no account {number}", field="account_number"
        )
    if not account.is_open:
        raise CommandRefused(
            ErrorCode.ACCOUNT_CLOSED, f"account {number} is closed", field="account_number"
        )
    if account.currency != currency:
        raise CommandRefused(
            ErrorCode.CURRENCY_MISMATCH,
            f"account {number} is kept in {account.currency}, not {currency}",
            field="currency",
        )
    return account
