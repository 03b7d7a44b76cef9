"""Journal transactions: the only way money moves, and the invariants every one of them keeps.

A transaction is immutable once built and is never updated or deleted; a correction is a new
transaction that ``reverses`` an earlier one. Its id is derived from what caused it (kind +
business key: the payment's channel and reference, the charge id, the request id...), so a
redelivered cause builds the very same transaction and the journal's primary key refuses the
copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from datetime import datetime
from hashlib import sha1
from typing import NamedTuple
from uuid import UUID

from billing_contracts.catalog.ledger import TransactionKind
from billing_contracts.money import format_amount

from ledger.domain.chart import is_valid_account_code
from ledger.domain.errors import CommandRefused, ErrorCode, InvalidTransaction

TRANSACTION_NAMESPACE = UUID("6f1d3c52-8a3e-4e59-9b0e-2f4c1a7d5e10")


class Posting(NamedTuple):
    """One line of a transaction: a signed amount in minor units on one account."""

    account: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class OperatorNote:
    """Who made a manual correction and why: required wherever a person moves money."""

    who: str
    why: str

    def __post_init__(self) -> None:
        for field in ("who", "why"):
            if not getattr(self, field).strip():
                raise CommandRefused(
                    ErrorCode.MISSING_OPERATOR_NOTE, f"operator note needs a {field!r}", field=field
                )


_NAMESPACE_BYTES = TRANSACTION_NAMESPACE.bytes


def transaction_id_for(kind: StrEnum, business_key: str) -> UUID:
    """``uuid5(TRANSACTION_NAMESPACE, "<kind>:<business key>")``, written out: the standard
    function re-encodes the namespace on every call, half of its cost. Not cached: each id is
    asked for once per transaction since the idempotency records find repeats, and a cache of
    ids never asked again held 20 MiB of a consumer's memory."""
    digest = sha1(_NAMESPACE_BYTES + f"{kind.value}:{business_key}".encode(), usedforsecurity=False).digest()
    return UUID(bytes=digest[:16], version=5)


@dataclass(frozen=True, slots=True)
class Transaction:
    """Postings that sum to zero in one currency, with the event that caused them."""

    id: UUID
    kind: TransactionKind
    postings: tuple[Posting, ...]
    cause_event_id: UUID | None
    cause_type: str
    occurred_at: datetime
    business_key: str
    reverses: UUID | None = None
    operator: OperatorNote | None = None

    def __post_init__(self) -> None:
        postings = self.postings
        if len(postings) < 2:
            raise InvalidTransaction(
                ErrorCode.TOO_FEW_POSTINGS,
                "a transaction needs at least two postings",
                field="postings",
            )
        currency = postings[0].currency
        total = 0
        for account, amount, posting_currency in postings:
            if amount == 0:
                raise InvalidTransaction(
                    ErrorCode.ZERO_POSTING, f"zero posting on {account}", field="postings"
                )
            if posting_currency != currency:
                found = sorted({p.currency for p in postings})
                raise InvalidTransaction(
                    ErrorCode.MIXED_CURRENCIES,
                    f"one currency per transaction; found {', '.join(found)}",
                    field="postings",
                )
            if not is_valid_account_code(account):
                raise InvalidTransaction(
                    ErrorCode.MALFORMED_ACCOUNT_CODE,
                    f"no such account code {account!r}",
                    field="postings",
                )
            total += amount
        if total != 0:
            raise InvalidTransaction(
                ErrorCode.UNBALANCED, f"postings sum to {format_amount(total, currency)}, not zero", field="postings"
            )
        if self.occurred_at.tzinfo is None:
            raise InvalidTransaction(
                ErrorCode.NAIVE_TIME, "occurred_at must be timezone-aware", field="occurred_at"
            )
        if (self.kind is TransactionKind.REVERSAL) != (self.reverses is not None):
            raise InvalidTransaction(
                ErrorCode.REVERSAL_LINK,
                "a reversal names the transaction it reverses, and only a reversal does",
                field="reverses",
            )

    @classmethod
    def build(
        cls,
        kind: TransactionKind,
        business_key: str,
        postings: tuple[Posting, ...],
        *,
        cause_event_id: UUID | None,
        cause_type: str,
        occurred_at: datetime,
        reverses: UUID | None = None,
        operator: OperatorNote | None = None,
    ) -> Transaction:
        """A transaction whose id is derived from its kind and business key."""
        return cls(
            transaction_id_for(kind, business_key),
            kind,
            postings,
            cause_event_id,
            cause_type,
            occurred_at,
            business_key,
            reverses,
            operator,
        )

    @property
    def currency(self) -> str:
        return self.postings[0].currency

    def amount_on(self, account: str) -> int:
        """The net amount this transaction posts on one account (0 if it does not touch it)."""
        return sum(p.amount for p in self.postings if p.account == account)


def move(
    kind: TransactionKind,
    business_key: str,
    *,
    debit: str,
    credit: str,
    amount: int,
    currency: str,
    cause_event_id: UUID | None,
    cause_type: str,
    occurred_at: datetime,
    operator: OperatorNote | None = None,
) -> Transaction:
    """The common two-posting shape: ``amount`` leaves ``debit`` and arrives on ``credit``."""
    return Transaction.build(
        kind,
        business_key,
        (Posting(debit, -amount, currency), Posting(credit, amount, currency)),
        cause_event_id=cause_event_id,
        cause_type=cause_type,
        occurred_at=occurred_at,
        operator=operator,
    )
