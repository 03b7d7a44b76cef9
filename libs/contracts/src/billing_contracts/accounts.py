"""Personal account numbers: twelve ASCII digits, the last one the Luhn check digit of the
first eleven, so that a mistyped digit or two swapped neighbours are told from a real number.

Every event field that names an account (:data:`billing_contracts.catalog.common.AccountNumber`)
is held to :class:`AccountNumber`, check digit included. What a payer typed is not: a payment
(and the suspense events about it) carries the entry as a plain string, because a payment to a
mistyped number must still arrive so the ledger can park it in suspense;
:meth:`AccountNumber.has_shape` is what any entry of twelve digits is.
"""

from __future__ import annotations

import re

ACCOUNT_NUMBER_LENGTH = 12

# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits.
_SHAPE = re.compile(rf"[0-9]{{{ACCOUNT_NUMBER_LENGTH}}}")
# People type long numbers in groups: "1000 0000 0008", "1000-0000-0008".
_GROUP_SEPARATORS = re.compile(r"[\s-]")


class InvalidAccountNumber(ValueError):
    """Not an account number: not twelve digits, or a check digit that does not match."""


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    # Walking from the right, the digit next to the (future) check digit is doubled.
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str(-total % 10)


class AccountNumber(str):
    """A valid personal account number; it is the string of its twelve digits, so it goes
    wherever a number does (an account code, a JSON field, a database column)."""

    __slots__ = ()

    def __new__(cls, value: str) -> AccountNumber:
        if not cls.has_shape(value):
            raise InvalidAccountNumber(f"an account number has {ACCOUNT_NUMBER_LENGTH} digits")
        if luhn_check_digit(value[:-1]) != value[-1]:
            raise InvalidAccountNumber("the account number has a typo: its check digit does not match")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, typed: str) -> AccountNumber:
        """The account number a person typed, spaces and hyphens between groups allowed;
        :class:`InvalidAccountNumber` says whether the shape or the check digit is wrong."""
        return cls(cls.digits_of(typed))

    @staticmethod
    def digits_of(typed: str) -> str:
        """An entry without the spaces and hyphens people group digits with."""
        return _GROUP_SEPARATORS.sub("", typed)

    @staticmethod
    def has_shape(candidate: str) -> bool:
        """Twelve ASCII digits, whatever the check digit (what a payment may carry)."""
        return _SHAPE.fullmatch(candidate) is not None

    @staticmethod
    def is_valid(candidate: str) -> bool:
        """Twelve ASCII digits whose last one is the right Luhn check digit."""
        return AccountNumber.has_shape(candidate) and luhn_check_digit(candidate[:-1]) == candidate[-1]

    @property
    def check_digit(self) -> str:
        """The last digit, the Luhn check digit of the eleven before it."""
        return self[-1]
