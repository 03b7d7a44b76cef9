"""The chart of accounts: every posting names one of these account codes.

    sub:<12 digits>:main     a subscriber's real money
    sub:<12 digits>:bonus    a subscriber's bonuses (never mixed with real money)
    op:cash:<channel>        cash clearing per payment channel (shop, terminal, card, ...)
    op:revenue:<fee kind>    service revenue per kind of fee
    op:bonus_expense         what the bonus campaigns cost the operator
    op:suspense              payments that matched no open account, waiting to be placed
    op:discount, op:gifts    what redeemed bonuses were exchanged for

Sign convention: an account's balance is the sum of its postings. A subscriber's main balance
is therefore the sum of the postings on ``sub:<n>:main``: a payment posts ``+amount`` there and
``-amount`` on ``op:cash:<channel>``; a charge posts ``-amount`` on the subscriber and
``+amount`` on ``op:revenue:<fee kind>``. Operator accounts mirror the subscribers', so the sum
of every account in the journal is zero.
"""

from __future__ import annotations

import re

from billing_contracts.accounts import AccountNumber
from billing_events.catalog.payments import PaymentChannel
from billing_events.catalog.tariff import FeeKind

SUBSCRIBER_PREFIX = "sub:"
OPERATOR_PREFIX = "op:"

BONUS_EXPENSE = "op:bonus_expense"
SUSPENSE = "op:suspense"
DISCOUNTS = "op:discount"
GIFTS = "op:gifts"

_ACCOUNT_CODE = re.compile(r"sub:\d{12}:(?:main|bonus)|op:[a-z_]+(?::[a-z0-9_]+)?")


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
    return code[4:16] if code.startswith(SUBSCRIBER_PREFIX) else None
