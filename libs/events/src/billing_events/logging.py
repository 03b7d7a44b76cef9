"""Structured logs: JSON in production, readable in a terminal; never a secret.

The correlation id (and event id/type) is bound with :func:`structlog.contextvars` while an
event is handled, so every line a handler writes carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

# The secrets, named: a key is redacted when it holds one of these words (its parts between
# underscores: ``new_password``, ``passport_series``, ``api_token``) or is one of the names below.
# Never a bare ``code``: it is the reason code of a refusal or a dead letter, what operators read;
# a one-time code is logged, if ever, as ``reset_code``.
_SECRET_WORDS = frozenset({
    "password", "passwd", "secret", "token", "otp", "passport", "birth", "phone", "email", "contact",
    "sealed", "private", "authorization", "cookie",
})
_SECRET_KEYS = frozenset({
    "reset_code", "one_time_code", "sms_code", "code_hash",  # a reset's one-time code
    "date_of_issue", "issuing_authority", "series",  # the passport's other fields
    "surname", "first_name", "patronymic", "destination",  # personal data, an unmasked address
    "api_key", "signing_key", "encryption_key",
})
_HARMLESS = frozenset({"masked_destination", "masked_phone", "masked_email"})
_REDACTED = "[redacted]"


def _is_secret(key: str) -> bool:
    name = key.lower()
    words = {word.removesuffix("s") for word in name.split("_")}  # passwords, tokens too
    return name not in _HARMLESS and (name in _SECRET_KEYS or not _SECRET_WORDS.isdisjoint(words))


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _REDACTED if _is_secret(str(key)) else _redacted(item) for key, item in value.items()}
    return value


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _redacted(event_dict)  # type: ignore[no-any-return]


def configure_logging(
    service: str, *, fmt: Literal["console", "json"] = "console", level: str = "INFO"
) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # The libraries (aiokafka, faststream) log through stdlib logging: keep them terse.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format=f"{service} %(name)s %(levelname)s %(message)s")


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
