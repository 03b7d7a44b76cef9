"""One error for every service's rules: what went wrong (``code``), in words (``message``), which
input is at fault (``field``), what kind of refusal it is (``kind``), and the values its words name
(``params``), which a subscriber's language puts into its own sentence for the code.

The kind alone decides how a refusal leaves the service: the HTTP status of its Problem answer
(:data:`HTTP_STATUS`, applied by :mod:`billing_events.http` to any ``DomainError`` a route lets
through) and the dead letter of an event a consumer refuses (:meth:`DomainError.refusal`). A
service declares its codes as data (a table of code → kind); it never formats a refusal into a
string to parse it back, and never picks a status itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from billing_contracts.refusal import Refusal


class ErrorKind(StrEnum):
    INVALID = "invalid"
    """An input breaks a rule, whatever the state (an unknown plan, 31 days of block)."""
    NOT_FOUND = "not_found"
    """What the command names does not exist here (an account not registered)."""
    CONFLICT = "conflict"
    """Well formed, but the state forbids it now (a closed account, not enough money)."""
    REFUSED = "refused"
    """A proof that does not work (a wrong or expired code, contact details that do not match)."""
    UNAUTHENTICATED = "unauthenticated"
    """Who the caller is could not be established (a wrong login or password)."""
    FORBIDDEN = "forbidden"
    """The caller is known and may not do this."""
    THROTTLED = "throttled"
    """Too many attempts: refused unchecked for a while."""
    BROKEN_INVARIANT = "broken_invariant"
    """The code upstream asked for something that must never exist (an unbalanced transaction)."""


HTTP_STATUS: Mapping[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.REFUSED: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.THROTTLED: 429,
    ErrorKind.BROKEN_INVARIANT: 500,
}


class DomainError(Exception):
    """Base of every refusal a service's rules give.

    Subclasses either name their ``code`` and ``kind`` as class attributes (one class per refusal)
    or pass them per instance (one class, a table of codes); ``field`` names the input at fault.
    """

    code: str = "domain_error"
    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 kind: ErrorKind | None = None, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.params: Mapping[str, Any] = params or {}
        """The values the sentence of this refusal names (money, days), by name: what the
        subscriber's language puts into its own sentence (:mod:`billing_events.languages`)."""
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.kind]

    def field_errors(self) -> list[dict[str, str]]:
        """The inputs at fault, in the Problem's ``errors`` shape."""
        if self.field is None:
            return []
        return [{"field": self.field, "message": self.message, "code": self.code}]

    def details(self) -> dict[str, Any]:
        """Keys a Problem answer carries beside code and message (e.g. until when a lock ends)."""
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers a Problem answer carries (e.g. ``Retry-After`` of a throttle)."""
        return {}

    def refusal(self) -> Refusal:
        """What a consumer that refuses an event for this error records in its dead letter."""
        return Refusal(self.code, self.message)

