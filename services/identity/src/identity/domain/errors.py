"""The identity service's errors: one base, a machine-readable code, and field-level detail.

No message ever quotes what the caller typed: an input may be a passport number, a phone or a
secret, and messages end up in logs and HTTP answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
