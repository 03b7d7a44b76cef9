"""The notifier's refusals: one error class, its codes and their kinds as data."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from billing_events.errors import DomainError, ErrorKind


class ErrorCode(StrEnum):
    # what an event or a stored row carries does not hold up
    UNSEAL_FAILED = "unseal_failed"
    UNMASKED_EMAIL = "unmasked_email"
    NO_EMAIL = "no_email"
    CURRENCY_MISMATCH = "currency_mismatch"
    # what the notifier knows of an account
    NO_PROFILE = "no_profile"
    UNKNOWN_ACCOUNT = "unknown_account"
    # configuration refused at start
    INVALID_RETRY_POLICY = "invalid_retry_policy"
    INCOMPLETE_LANGUAGE = "incomplete_language"
    # a message that cannot be written
    SMS_TOO_LONG = "sms_too_long"
    TEMPLATE_MISSING = "template_missing"
    TEMPLATE_INCOMPLETE = "template_incomplete"
    TEMPLATE_VARIABLE_MISSING = "template_variable_missing"
    # the code upstream broke a promise
    SECRET_WITHOUT_SEAL = "secret_without_seal"
    NO_LOW_BALANCE_THRESHOLD = "no_low_balance_threshold"


KINDS: Mapping[ErrorCode, ErrorKind] = {
    ErrorCode.UNSEAL_FAILED: ErrorKind.INVALID,
    ErrorCode.UNMASKED_EMAIL: ErrorKind.INVALID,
    ErrorCode.NO_EMAIL: ErrorKind.INVALID,
    ErrorCode.CURRENCY_MISMATCH: ErrorKind.INVALID,
    ErrorCode.NO_PROFILE: ErrorKind.NOT_FOUND,
    ErrorCode.UNKNOWN_ACCOUNT: ErrorKind.NOT_FOUND,
    ErrorCode.INVALID_RETRY_POLICY: ErrorKind.INVALID,
    ErrorCode.INCOMPLETE_LANGUAGE: ErrorKind.INVALID,
    ErrorCode.SMS_TOO_LONG: ErrorKind.INVALID,
    ErrorCode.TEMPLATE_MISSING: ErrorKind.BROKEN_INVARIANT,
    ErrorCode.TEMPLATE_INCOMPLETE: ErrorKind.BROKEN_INVARIANT,
    ErrorCode.TEMPLATE_VARIABLE_MISSING: ErrorKind.BROKEN_INVARIANT,
    ErrorCode.SECRET_WITHOUT_SEAL: ErrorKind.BROKEN_INVARIANT,
    ErrorCode.NO_LOW_BALANCE_THRESHOLD: ErrorKind.BROKEN_INVARIANT,
}


class NotifierError(DomainError):
    """A notifier rule refused something; ``code`` is for machines, the message for people."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field, kind=KINDS[code])
