"""The chart of accounts: every posting names one of these account codes.

    sub:<12 digits>:main     a subscriber's real money
    sub:<12 digits>:bonus    a subscriber's bonuses (never mixed with real money)
    op:cash:<channel>        cash clearing per payment channel (shop, terminal, card, ...)
    op:revenue:<fee kind>    service revenue per kind of fee
    op:bonus_expense         what the bonus campaigns cost the operator
    op:suspense              payments that matched no open account, waiting to be placed
    op:discount, op:gifts    what redeemed bonuses were exchanged for
    op:refunds               money left on closed accounts, paid back to the subscribers (payouts)

Sign convention: an account's balance is the sum of its postings. A subscriber's main balance
is therefore the sum of the postings on ``sub:<n>:main``: a payment posts ``+amount`` there and
``-amount`` on ``op:cash:<channel>``; a charge posts ``-amount`` on the subscriber and
``+amount`` on ``op:revenue:<fee kind>``. Operator accounts mirror the subscribers', so the sum
of every account in the journal is zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from billing_contracts.accounts import AccountNumber
from billing_contracts.catalog.payments import PaymentChannel
from billing_contracts.catalog.tariff import FeeKind


class Owner(StrEnum):
    """Whose money an account holds: the first part of its code."""

    SUBSCRIBER = "sub"
    OPERATOR = "op"


class Book(StrEnum):
    """A subscriber's two books: real money and bonuses, never mixed."""

    MAIN = "main"
    BONUS = "bonus"


SUBSCRIBER_PREFIX = "sub:"
OPERATOR_PREFIX = "op:"

BONUS_EXPENSE = "op:bonus_expense"
SUSPENSE = "op:suspense"
DISCOUNTS = "op:discount"
GIFTS = "op:gifts"
REFUNDS = "op:refunds"

_ACCOUNT_CODE = re.compile(r"sub:(?P<number>\d{12}):(?P<book>main|bonus)|op:(?P<purpose>[a-z_]+(?::[a-z0-9_]+)?)")


@dataclass(frozen=True, slots=True)
class AccountCode:
    """An account code by its named parts. ``str()`` gives the code as postings store it (the
    hash chain covers it: its format never changes)."""

    owner: Owner
    number: str | None = None
    """A subscriber account's personal account number."""
    book: Book | None = None
    """A subscriber account's book."""
    purpose: str | None = None
    """What an operator account is for: ``cash:terminal``, ``revenue:subscription``, ``suspense``..."""

    @classmethod
    def subscriber(cls, number: str, book: Book) -> AccountCode:
        return cls(Owner.SUBSCRIBER, number=number, book=book)

    @classmethod
    def operator(cls, purpose: str) -> AccountCode:
        return cls(Owner.OPERATOR, purpose=purpose)

    def __str__(self) -> str:
        if self.number is not None:
            return main_account(self.number) if self.book is Book.MAIN else bonus_account(self.number)
        return f"{OPERATOR_PREFIX}{self.purpose}"


@lru_cache(maxsize=65_536)
def account_code(code: str) -> AccountCode:
    """The parts of a code of the chart; :class:`ValueError` for a code outside it. Cached: the
    same few thousand codes come back with every batch."""
    match = _ACCOUNT_CODE.fullmatch(code)
    if match is None:
        raise ValueError(f"{code!r} is not an account code of the chart")
    if match["purpose"] is not None:
        return AccountCode.operator(match["purpose"])
    return AccountCode.subscriber(match["number"], Book(match["book"]))


def is_account_number(number: str) -> bool:
    """The shape of a personal account number, whatever its check digit: a payment may carry a
    mistyped one, which the ledger parks in suspense instead of refusing."""
    return AccountNumber.has_shape(number)


def main_account(number: str) -> str:
    return f"sub:{number}:main"


def bonus_account(number: str) -> str:
    return f"sub:{number}:bonus"


def cash_account(channel: PaymentChannel) -> str:
    return f"op:cash:{channel.value}"


def revenue_account(fee_kind: FeeKind) -> str:
    return f"op:revenue:{fee_kind.value}"


def is_valid_account_code(code: str) -> bool:
    return _ACCOUNT_CODE.fullmatch(code) is not None


def is_subscriber_account(code: str) -> bool:
    return code.startswith(SUBSCRIBER_PREFIX)


def is_operator_account(code: str) -> bool:
    return code.startswith(OPERATOR_PREFIX)


def subscriber_number(code: str) -> str | None:
    """The personal account number a subscriber account code belongs to, None for the operator's."""
    return account_code(code).number if is_subscriber_account(code) else None
