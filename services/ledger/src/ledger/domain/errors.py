"""The ledger's domain errors: each carries a machine-readable code, its kind (from
:data:`KINDS`, which decides the HTTP status and the dead letter) and, where one field is at
fault, the field's name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from billing_contracts.catalog.ledger import (
    BonusRedemptionRefusal,
    BonusRedemptionRejected,
    TransferRefusal,
    TransferRejected,
)
from billing_events.errors import DomainError, ErrorKind

if TYPE_CHECKING:
    from ledger.domain.outcome import OutgoingEvent


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
    UNKNOWN_TRANSACTION = "unknown_transaction"
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
    INVALID_REWARDS = "invalid_rewards"
    UNKNOWN_REWARD = "unknown_reward"
    REWARD_MISMATCH = "reward_mismatch"
    NOT_A_PAYMENT = "not_a_payment"
    MISSING_ENTRIES = "missing_entries"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    AMOUNT_OVER_LIMIT = "amount_over_limit"
    AMOUNT_OUT_OF_BOUNDS = "amount_out_of_bounds"
    # an acquirer's callback on a card payment intent
    UNKNOWN_INTENT = "unknown_intent"
    CALLBACK_AMOUNT_MISMATCH = "callback_amount_mismatch"
    INTENT_ALREADY_SETTLED = "intent_already_settled"
    STALE_CALLBACK = "stale_callback"
    BAD_CALLBACK_SIGNATURE = "bad_callback_signature"
    MALFORMED_CALLBACK = "malformed_callback"
    # who asked may not ask for it
    INVALID_REQUESTER = "invalid_requester"
    NOT_OWN_ACCOUNT = "not_own_account"


KINDS: Mapping[ErrorCode, ErrorKind] = {
    # an input that breaks a rule, unless named below
    **dict.fromkeys(ErrorCode, ErrorKind.INVALID),
    **dict.fromkeys((ErrorCode.TOO_FEW_POSTINGS, ErrorCode.ZERO_POSTING, ErrorCode.UNBALANCED,
                     ErrorCode.MIXED_CURRENCIES, ErrorCode.MALFORMED_ACCOUNT_CODE, ErrorCode.NAIVE_TIME,
                     ErrorCode.REVERSAL_LINK), ErrorKind.BROKEN_INVARIANT),
    **dict.fromkeys((ErrorCode.UNKNOWN_ACCOUNT, ErrorCode.UNKNOWN_TRANSACTION, ErrorCode.UNKNOWN_INTENT),
                    ErrorKind.NOT_FOUND),
    # well formed, but the account's (or the journal's) state refuses it
    **dict.fromkeys((ErrorCode.ACCOUNT_CLOSED, ErrorCode.ACCOUNT_NOT_SETTLED, ErrorCode.ALREADY_REVERSED,
                     ErrorCode.REVERSAL_OF_REVERSAL, ErrorCode.DEBT_OUTSTANDING, ErrorCode.INSUFFICIENT_BONUS,
                     ErrorCode.NOT_A_PAYMENT, ErrorCode.SUSPENSE_NOT_OPEN, ErrorCode.CONFLICTING_DUPLICATE,
                     ErrorCode.AMOUNT_OUT_OF_BOUNDS, ErrorCode.CALLBACK_AMOUNT_MISMATCH,
                     ErrorCode.INTENT_ALREADY_SETTLED),
                    ErrorKind.CONFLICT),
    # the callback is not proven to come from the acquirer now: a forged signature, or a replay
    **dict.fromkeys((ErrorCode.BAD_CALLBACK_SIGNATURE, ErrorCode.STALE_CALLBACK), ErrorKind.UNAUTHENTICATED),
    ErrorCode.NOT_OWN_ACCOUNT: ErrorKind.FORBIDDEN,
}
"""What kind of refusal each code is: it decides the HTTP status of the answer."""


class LedgerError(DomainError):
    """Base of every ledger domain error."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, code=code, field=field, kind=KINDS[code], params=params)

    def field_errors(self) -> list[dict[str, str]]:
        return input_errors(self)


def input_errors(error: DomainError) -> list[dict[str, str]]:
    """The Problem's field errors of a ledger refusal: only an input the caller can correct is
    listed; a refusal for the state of the accounts (an unknown account, not enough money) keeps
    its field for the code that reads the error, but the caller has no input to fix."""
    return DomainError.field_errors(error) if error.kind is ErrorKind.INVALID else []


class InvalidTransaction(LedgerError):
    """A transaction that would break the journal's invariants; it is never stored."""


class CommandRefused(LedgerError):
    """A business rule refuses the command; nothing was posted."""


ANNOUNCED_REFUSALS: Mapping[type[TransferRejected | BonusRedemptionRejected],
                            Mapping[TransferRefusal | BonusRedemptionRefusal, tuple[ErrorKind, str | None]]] = {
    TransferRejected: {
        TransferRefusal.SAME_ACCOUNT: (ErrorKind.INVALID, "to_account"),
        TransferRefusal.SOURCE_UNKNOWN: (ErrorKind.NOT_FOUND, None),
        TransferRefusal.TARGET_UNKNOWN: (ErrorKind.NOT_FOUND, "to_account"),
        TransferRefusal.SOURCE_CLOSED: (ErrorKind.CONFLICT, None),
        TransferRefusal.TARGET_CLOSED: (ErrorKind.CONFLICT, "to_account"),
        TransferRefusal.CURRENCY_MISMATCH: (ErrorKind.INVALID, "amount.currency"),
        TransferRefusal.INSUFFICIENT_FUNDS: (ErrorKind.CONFLICT, "amount.minor"),
        TransferRefusal.CREDIT_NOT_TRANSFERABLE: (ErrorKind.CONFLICT, "amount.minor"),
    },
    BonusRedemptionRejected: {
        BonusRedemptionRefusal.UNKNOWN_ACCOUNT: (ErrorKind.NOT_FOUND, None),
        BonusRedemptionRefusal.ACCOUNT_CLOSED: (ErrorKind.CONFLICT, None),
        BonusRedemptionRefusal.CURRENCY_MISMATCH: (ErrorKind.INVALID, "amount.currency"),
        BonusRedemptionRefusal.INVALID_PURPOSE: (ErrorKind.INVALID, "purpose"),
        BonusRedemptionRefusal.INSUFFICIENT_BONUS: (ErrorKind.CONFLICT, "amount.minor"),
    },
}
"""The events that announce a refused request, and for each of their reasons the kind of refusal
(it decides the caller's answer) and the request's field it is about."""

ANNOUNCEMENTS = tuple(ANNOUNCED_REFUSALS)


class RequestRefused(DomainError):
    """A subscriber's request (a transfer, a bonus redemption) refused by a rule, where the refusal
    is itself news: the pipeline that decides the request publishes :attr:`announcement` (its
    ...Rejected event, which the topic keeps), records the request as refused, and then lets the
    error reach the caller like any other refusal, with the request's id."""

    def __init__(self, announcement: OutgoingEvent) -> None:
        rejected = announcement.payload
        assert isinstance(rejected, ANNOUNCEMENTS)
        kind, field = ANNOUNCED_REFUSALS[type(rejected)][rejected.reason]
        params: dict[str, Any] = ({"amount": rejected.amount} if isinstance(rejected, TransferRejected)
                                  else {"amount": rejected.requested, "available": rejected.available})
        super().__init__(rejected.detail, code=rejected.reason.value, field=field, kind=kind, params=params)
        self.announcement = announcement
        self.request_id = rejected.request_id

    def field_errors(self) -> list[dict[str, str]]:
        return input_errors(self)

    def details(self) -> dict[str, Any]:
        return {"request_id": str(self.request_id)}


def refusal_among(events: Iterable[OutgoingEvent]) -> RequestRefused | None:
    """The refusal a request's events announce, if they announce one: a repeated request gets the
    refusal its first decision gave."""
    return next((RequestRefused(event) for event in events if isinstance(event.payload, ANNOUNCEMENTS)), None)
