"""The identity service's refusals: the suite's :class:`DomainError`, each with its code and
kind (which alone decides the HTTP status), and field-level detail.

No message ever quotes what the caller typed: an input may be a passport number, a phone or a
secret, and messages end up in logs and HTTP answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any, ClassVar

from billing_events.errors import DomainError, ErrorKind


class IdentityError(DomainError):
    """Base of every refusal the identity domain gives."""

    code = "identity_error"


class RuleViolation(IdentityError, ValueError):
    """One value breaks one rule. A ValueError, so pydantic validators can raise it as it is."""

    code = "rule_violation"

    def __init__(self, rule: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.rule = rule


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field of a command, in words a subscriber or operator understands."""

    field: str
    message: str
    rule: str


class InvalidCommand(IdentityError):
    """A command was refused before anything changed; ``errors`` lists every field at fault."""

    code = "invalid_request"  # the suite's code for field errors, whoever found them

    def __init__(self, errors: Sequence[FieldError]) -> None:
        if not errors:
            raise ValueError("an invalid command needs at least one field error")
        self.errors = tuple(errors)
        super().__init__("the request has invalid fields: " + ", ".join(dict.fromkeys(self.fields)))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(error.field for error in self.errors)

    def field_errors(self) -> list[dict[str, str]]:
        return [{"field": error.field, "message": error.message, "code": error.rule} for error in self.errors]


class InvalidAccountNumber(IdentityError):
    code = "invalid_account_number"


class InvalidLoginIdentifier(IdentityError):
    code = "invalid_login_identifier"


class PassportAlreadyRegistered(IdentityError):
    """A second registration with a passport that already has a contract."""

    code = "passport_already_registered"
    kind = ErrorKind.CONFLICT

    def __init__(self) -> None:
        super().__init__(
            "a subscriber with this passport is already registered", field="passport_number"
        )


# --- refusals of the service's commands (none quotes the input) -------------------------------


class UnknownAccount(IdentityError):
    """No subscriber answers to the account number, contract number or phone given."""

    code = "unknown_account"
    kind = ErrorKind.NOT_FOUND

    def __init__(self, field: str = "login") -> None:
        super().__init__("no subscriber with this account number, contract number or phone",
                         field=field)


class LoginRefused(IdentityError):
    """Wrong login or password; deliberately does not say which."""

    code = "login_refused"
    kind = ErrorKind.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("wrong login or password")


class Throttled(IdentityError):
    """Too many attempts: refused unchecked until ``until``."""

    code = "throttled"
    kind = ErrorKind.THROTTLED

    def __init__(self, message: str, *, until: datetime | None) -> None:
        super().__init__(message)
        self.until = until

    def details(self) -> dict[str, Any]:
        return {} if self.until is None else {"until": self.until.isoformat()}

    def headers(self) -> dict[str, str]:
        return {} if self.until is None else {"Retry-After": format_datetime(self.until, usegmt=True)}


class HashingBusy(IdentityError):
    """As many slow hashes as the service computes and queues at once are under way: the
    request is refused before any work, to be sent again after ``retry_after`` seconds."""

    code = "hashing_busy"
    kind = ErrorKind.THROTTLED

    def __init__(self, *, retry_after: int) -> None:
        super().__init__("the service is busy checking other secrets; try again in a moment")
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class LoginIsLocked(Throttled):
    code = "login_locked"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("login is locked after repeated failures; try again later", until=until)


class TooManyRequests(Throttled):
    code = "too_many_requests"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("too many requests for this account; try again later", until=until)


class TooManyFromAddress(Throttled):
    """One client address asked for too many passwords or codes, whatever the accounts."""

    code = "too_many_requests_from_address"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("too many requests from this address; try again later", until=until)


class ContactMismatch(IdentityError):
    """The phone or e-mail given is not the one registered for the account."""

    code = "contact_mismatch"
    kind = ErrorKind.REFUSED

    def __init__(self, field: str) -> None:
        super().__init__("does not match the contact details registered for the account",
                         field=field)


class ResetCodeRefused(IdentityError):
    """A one-time code that does not work; ``reason`` is a :class:`Redemption` value, or
    ``invalid_code``: what an anonymous caller is told whatever the reason, so a prober cannot
    tell whether the account exists or a code was requested for it."""

    code = "reset_code_refused"
    kind = ErrorKind.REFUSED

    _MESSAGES: ClassVar[dict[str, str]] = {
        "wrong_code": "the code is wrong",
        "expired": "the code has expired; request a new one",
        "already_used": "the code was already used; request a new one",
        "too_many_guesses": "too many wrong codes; request a new one",
        "no_code": "no code was requested for this account",
        "invalid_code": "the code is wrong, expired or already used; request a new one if needed",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self._MESSAGES.get(reason, "the code does not work"), field="code")
        self.reason = reason

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def hidden(cls) -> ResetCodeRefused:
        """What an anonymous caller is told, whatever the reason."""
        return cls("invalid_code")


class RecoveryRefused(IdentityError):
    """The passport data a caller gave support does not match the registered data."""

    code = "recovery_refused"
    kind = ErrorKind.FORBIDDEN

    def __init__(self) -> None:
        super().__init__("the passport data do not match the registered subscriber")


# --- the subscriber's own sessions and settings -----------------------------------------------


class RefreshRefused(IdentityError):
    """A refresh token that does not work (unknown, expired, used before, its session ended);
    never says which."""

    code = "invalid_refresh_token"
    kind = ErrorKind.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("this sign-in has ended: log in again")


class SessionEnded(IdentityError):
    """An access token of a session signed out (or ended by a password change or support)."""

    code = "token_revoked"
    kind = ErrorKind.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("this sign-in has ended: log in again")


class WrongCurrentPassword(IdentityError):
    code = "wrong_current_password"
    kind = ErrorKind.REFUSED

    def __init__(self) -> None:
        super().__init__("the current password is not right", field="current_password")


class AccountIsClosed(IdentityError):
    """The right password of an account the ledger closed: said only to who proved they hold it."""

    code = "account_closed"
    kind = ErrorKind.CONFLICT

    def __init__(self) -> None:
        super().__init__("this account is closed: log in with another of your accounts")


class NotYourAccount(IdentityError):
    """A subscriber named an account that is not among the ones they hold."""

    code = "wrong_account"
    kind = ErrorKind.FORBIDDEN

    def __init__(self) -> None:
        super().__init__("this account is not among yours", field="account")
