"""Field types shared by the catalog modules."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from billing_contracts.accounts import AccountNumber as CheckedNumber


def require_check_digit(number: str) -> str:
    # The pattern below is the shape alone (a JSON Schema cannot say Luhn); a wrong check digit is
    # a typo that must not name an account, whoever sent it.
    return str(CheckedNumber(number))


# A field that names an account: twelve digits whose last is the Luhn check digit. What a payer
# typed (a payment's account, which the ledger parks in suspense when it names no account) is a
# plain string in the events that carry it, never this type.
AccountNumber = Annotated[
    str,
    Field(
        pattern=r"^\d{12}$",
        description="12-digit personal account number; the last digit is a Luhn check digit",
        examples=["100000000008"],
    ),
    AfterValidator(require_check_digit),
]

SealedSecret = Annotated[
    str,
    Field(
        min_length=1,
        description=(
            "Base64 of a libsodium sealed box for the notifier's public key. Only the notifier"
            " can open it; no other consumer ever sees the clear text."
        ),
    ),
]

MaskedDestination = Annotated[
    str,
    Field(max_length=64, description="Where a message goes, masked: +7 *** *** 45 67, i***@mail.ru"),
]
