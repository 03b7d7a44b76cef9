"""The ledger's domain errors: each carries a machine-readable code and, where one field is at
fault, the field's name."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # a transaction that would break the journal's invariants (a programming error upstream)
    TOO_FEW_POSTINGS = "too_few_postings"
    ZERO_POSTING = "zero_posting"
    UNBALANCED = "unbalanced"
    MIXED_CURRENCIES = "mixed_currencies"
    MALFORMED_ACCOUNT_CODE = "malformed_account_code"
    NAIVE_TIME = "naive_time"
    REVERSAL_LINK = "reversal_link"
    # a command refused by a business rule
    INVALID_ACCOUNT_NUMBER = "invalid_account_number"
    UNKNOWN_ACCOUNT = "unknown_account"
    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_NOT_SETTLED = "account_not_settled"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_AMOUNT = "invalid_amount"
    INSUFFICIENT_BONUS = "insufficient_bonus"
    INVALID_PURPOSE = "invalid_purpose"
    ALREADY_REVERSED = "already_reversed"
    REVERSAL_OF_REVERSAL = "reversal_of_reversal"
    SUSPENSE_NOT_OPEN = "suspense_not_open"
    SUSPENSE_ITEM_REQUIRED = "suspense_item_required"
    INVALID_CREDIT_LIMIT = "invalid_credit_limit"
    DEBT_OUTSTANDING = "debt_outstanding"
    MISSING_OPERATOR_NOTE = "missing_operator_note"
    INVALID_CAMPAIGN = "invalid_campaign"
    NOT_A_PAYMENT = "not_a_payment"
    MISSING_ENTRIES = "missing_entries"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    AMOUNT_OVER_LIMIT = "amount_over_limit"


class LedgerError(Exception):
    """Base of every ledger domain error."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


class InvalidTransaction(LedgerError):
    """A transaction that would break the journal's invariants; it is never stored."""


class CommandRefused(LedgerError):
    """A business rule refuses the command; nothing was posted."""
