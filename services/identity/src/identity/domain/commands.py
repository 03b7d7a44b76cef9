"""Turning pydantic's validation report into field errors that never quote the input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from identity.domain.errors import FieldError, InvalidCommand, RuleViolation

M = TypeVar("M", bound=BaseModel)

# pydantic's own wording for these is technical ("Input should be a valid date or datetime,
# input is too short"); the rest of its messages are plain enough and never hold the input.
_PLAIN_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this form",
    "string_type": "must be text",
    "bool_type": "must be yes or no",
    "bool_parsing": "must be yes or no",
    "date_type": "must be a date (YYYY-MM-DD)",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "must be a date without a time of day",
}


def validate_command(
    model: type[M], data: Mapping[str, Any] | BaseModel, *, context: object | None = None
) -> M:
    """Validate ``data`` as ``model``; every field at fault is reported at once.

    Raises :class:`InvalidCommand` with one :class:`FieldError` per problem.
    """
    raw = data.model_dump() if isinstance(data, BaseModel) else data
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise InvalidCommand([_field_error(detail) for detail in exc.errors()]) from None


def _field_error(detail: ErrorDetails) -> FieldError:
    field = ".".join(str(part) for part in detail["loc"]) or "(form)"
    broken_rule = (detail.get("ctx") or {}).get("error")
    if isinstance(broken_rule, RuleViolation):
        return FieldError(field=field, message=broken_rule.message, rule=broken_rule.rule)
    kind = detail["type"]
    return FieldError(field=field, message=_PLAIN_MESSAGES.get(kind, detail["msg"]), rule=kind)
