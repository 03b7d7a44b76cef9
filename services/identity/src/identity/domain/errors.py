"""The identity service's errors: one base, a machine-readable code, and field-level detail.

No message ever quotes what the caller typed: an input may be a passport number, a phone or a
secret, and messages end up in logs and HTTP answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


class IdentityError(Exception):
    """Base of every refusal the identity domain gives; ``code`` is for machines."""

    code: ClassVar[str] = "identity_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class RuleViolation(IdentityError, ValueError):
    """One value breaks one rule. A ValueError, so pydantic validators can raise it as it is."""

    code: ClassVar[str] = "rule_violation"

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

    code: ClassVar[str] = "invalid_command"

    def __init__(self, errors: Sequence[FieldError]) -> None:
        if not errors:
            raise ValueError("an invalid command needs at least one field error")
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in self.errors))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(error.field for error in self.errors)


class InvalidAccountNumber(IdentityError):
    code: ClassVar[str] = "invalid_account_number"


class InvalidLoginIdentifier(IdentityError):
    code: ClassVar[str] = "invalid_login_identifier"


class PassportAlreadyRegistered(IdentityError):
    """A second registration with a passport that already has a contract."""

    code: ClassVar[str] = "passport_already_registered"

    def __init__(self) -> None:
        super().__init__(
            "a subscriber with this passport is already registered", field="passport_number"
        )


# --- refusals of the service's commands (none quotes the input) -------------------------------


class UnknownAccount(IdentityError):
    """No subscriber answers to the account number, contract number or phone given."""

    code: ClassVar[str] = "unknown_account"

    def __init__(self, field: str = "login") -> None:
        super().__init__("no subscriber with this account number, contract number or phone",
                         field=field)


class LoginRefused(IdentityError):
    """Wrong login or password; deliberately does not say which."""

    code: ClassVar[str] = "login_refused"

    def __init__(self) -> None:
        super().__init__("wrong login or password")


class Throttled(IdentityError):
    """Too many attempts: refused unchecked until ``until``."""

    code: ClassVar[str] = "throttled"

    def __init__(self, message: str, *, until: datetime | None) -> None:
        super().__init__(message)
        self.until = until


class LoginIsLocked(Throttled):
    code: ClassVar[str] = "login_locked"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("login is locked after repeated failures; try again later", until=until)


class TooManyRequests(Throttled):
    code: ClassVar[str] = "too_many_requests"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("too many requests for this account; try again later", until=until)


class TooManyFromAddress(Throttled):
    """One client address asked for too many passwords or codes, whatever the accounts."""

    code: ClassVar[str] = "too_many_requests_from_address"

    def __init__(self, *, until: datetime | None) -> None:
        super().__init__("too many requests from this address; try again later", until=until)


class ContactMismatch(IdentityError):
    """The phone or e-mail given is not the one registered for the account."""

    code: ClassVar[str] = "contact_mismatch"

    def __init__(self, field: str) -> None:
        super().__init__("does not match the contact details registered for the account",
                         field=field)


class ResetCodeRefused(IdentityError):
    """A one-time code that does not work; ``reason`` is a :class:`Redemption` value, or
    ``invalid_code``: what an anonymous caller is told whatever the reason, so a prober cannot
    tell whether the account exists or a code was requested for it."""

    code: ClassVar[str] = "reset_code_refused"

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

    @classmethod
    def hidden(cls) -> ResetCodeRefused:
        """What an anonymous caller is told, whatever the reason."""
        return cls("invalid_code")


class RecoveryRefused(IdentityError):
    """The passport data a caller gave support does not match the registered data."""

    code: ClassVar[str] = "recovery_refused"

    def __init__(self) -> None:
        super().__init__("the passport data do not match the registered subscriber")
