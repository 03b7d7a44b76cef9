"""Field types shared by the catalog modules."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Any twelve digits, whatever the check digit: a payer may mistype a number and the payment must
# still arrive (the ledger parks it in suspense). billing_contracts.accounts.AccountNumber is what
# a number must be to name an account.
AccountNumber = Annotated[
    str,
    Field(
        pattern=r"^\d{12}$",
        description="12-digit personal account number; the last digit is a Luhn check digit",
        examples=["100000000008"],
    ),
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
