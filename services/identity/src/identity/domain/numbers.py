"""Personal account numbers, contract numbers, and telling which one a subscriber typed.

Account number: 12 digits = the prefix ``1`` + the allocation sequence value zero-padded to 10
digits + a Luhn check digit (the contract's rule: :mod:`billing_contracts.accounts`). The prefix
keeps the number from starting with 0 (terminals and spreadsheets drop leading zeros); the
sequence is never rewound, so a number is never reused.

Contract number: ``D-<year signed>-<sequence value, at least 7 digits>``, e.g. ``D-2026-0000042``.
It takes the same sequence value as the account number, so it is unique too, and its shape
cannot be mistaken for an account number or a phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from billing_contracts.accounts import ACCOUNT_NUMBER_LENGTH, AccountNumber, luhn_check_digit
from billing_contracts.accounts import InvalidAccountNumber as NotAnAccountNumber

from identity.domain.contacts import normalise_mobile_phone
from identity.domain.errors import InvalidAccountNumber, InvalidLoginIdentifier, RuleViolation

ACCOUNT_PREFIX = "1"
_SEQUENCE_DIGITS = ACCOUNT_NUMBER_LENGTH - len(ACCOUNT_PREFIX) - 1
MAX_SEQUENCE = 10**_SEQUENCE_DIGITS - 1

_CONTRACT_SHAPE = re.compile(r"D-([0-9]{4})-([0-9]{7,10})", re.IGNORECASE)


def account_number_from_sequence(sequence: int) -> str:
    """The account number for one value of the allocation sequence (0 .. 9 999 999 999)."""
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence value {sequence} is outside 0..{MAX_SEQUENCE}")
    body = f"{ACCOUNT_PREFIX}{sequence:0{_SEQUENCE_DIGITS}d}"
    return body + luhn_check_digit(body)


is_valid_account_number = AccountNumber.is_valid


def parse_account_number(raw: str) -> str:
    """The account number in ``raw`` (spaces and hyphens between groups allowed)."""
    try:
        return str(AccountNumber.parse(raw))
    except NotAnAccountNumber as exc:
        raise InvalidAccountNumber(str(exc)) from None


def contract_number(sequence: int, signed_on: date) -> str:
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence value {sequence} is outside 0..{MAX_SEQUENCE}")
    return f"D-{signed_on.year:04d}-{sequence:07d}"


def parse_contract_number(raw: str) -> str | None:
    """The canonical contract number in ``raw``, or None if it is not shaped like one."""
    match = _CONTRACT_SHAPE.fullmatch(raw.strip())
    if match is None:
        return None
    year, sequence = match.groups()
    return f"D-{year}-{sequence}"


class LoginKind(StrEnum):
    ACCOUNT_NUMBER = "account_number"
    CONTRACT_NUMBER = "contract_number"
    PHONE = "phone"


@dataclass(frozen=True)
class LoginIdentifier:
    """What a subscriber logs in with, in canonical form (a phone is in E.164)."""

    kind: LoginKind
    value: str

    @property
    def account_number(self) -> str | None:
        """The account number an account or contract number stands for, whether or not anyone
        holds it (both carry the sequence value); None for a phone.

        Failed logins naming nobody are counted under it, as they would be for a subscriber, so
        a prober sees the same answers for an account, its contract in any year, and nobody's.
        """
        match self.kind:
            case LoginKind.ACCOUNT_NUMBER:
                return self.value
            case LoginKind.CONTRACT_NUMBER:
                return account_number_from_sequence(int(self.value.rsplit("-", 1)[1]))
            case LoginKind.PHONE:
                return None


def parse_login_identifier(raw: str) -> LoginIdentifier:
    """Tell an account number, a contract number and a mobile number apart.

    A 12-digit entry is an account number (a Russian phone has 11 digits) and must pass its
    check digit, so a typo is refused here instead of counting as a failed login of someone
    else's account.
    """
    contract = parse_contract_number(raw)
    if contract is not None:
        return LoginIdentifier(LoginKind.CONTRACT_NUMBER, contract)
    if AccountNumber.has_shape(AccountNumber.digits_of(raw)):
        try:
            return LoginIdentifier(LoginKind.ACCOUNT_NUMBER, parse_account_number(raw))
        except InvalidAccountNumber as exc:
            raise InvalidLoginIdentifier(exc.message, field="login") from None
    try:
        return LoginIdentifier(LoginKind.PHONE, normalise_mobile_phone(raw))
    except RuleViolation:
        raise InvalidLoginIdentifier(
            "enter an account number, a contract number or a mobile number", field="login"
        ) from None
