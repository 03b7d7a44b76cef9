"""Structured logs: JSON in production, readable in a terminal; never a secret.

The correlation id (and event id/type) is bound with :func:`structlog.contextvars` while an
event is handled, so every line a handler writes carries it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Literal

import structlog

# Keys whose values must never reach a log line, whatever a caller passes.
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|code$|^code|otp|token|passport|series|birth|private|sealed|phone|email|contact",
    re.IGNORECASE,
)
_HARMLESS = frozenset({"event_type", "correlation_id", "event_id", "status_code", "reason_code",
                       "contract_number", "masked_destination", "masked_phone", "masked_email"})


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if key not in _HARMLESS and _SECRET_KEY.search(key):
            event_dict[key] = "[redacted]"
    return event_dict


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
