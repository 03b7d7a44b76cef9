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

# What is never logged, named: a key is redacted when it holds one of these words (its parts
# between underscores or dashes: ``new_password``, ``passport_series``, ``X-Forwarded-For``) or is one of
# the names below, at any depth (a dict or list inside an event is searched too).
# Never a bare ``code``: it is the reason code of a refusal or a dead letter, what operators read;
# a one-time code is named for what it is (``reset_code``), and that name is redacted.
_SECRET_WORDS = frozenset({
    # credentials
    "password", "passwd", "secret", "token", "otp", "sealed", "private", "authorization", "cookie",
    "credential", "username",
    # personal data: the passport, names, contacts, the client's address
    "passport", "birth", "surname", "patronymic", "phone", "msisdn", "email", "contact", "destination",
    "recipient", "address", "ip", "forwarded",
})
_SECRET_KEYS = frozenset({
    "reset_code", "one_time_code", "sms_code", "confirmation_code", "verification_code", "code_hash",
    "date_of_issue", "issuing_authority", "series",  # the passport's other fields
    "name", "full_name", "first_name", "last_name", "middle_name",  # a person's names
    "login", "user", "identifier",  # a login is an account number, a phone or an e-mail
    "host_address", "peer", "remote", "client", "remote_addr",
    "body", "text",  # a message to a subscriber: it greets them by name
    "api_key", "signing_key", "encryption_key", "lookup_key", "dsn",
})
_HARMLESS = frozenset({"masked_destination", "masked_phone", "masked_email", "ip_version"})
_REDACTED = "[redacted]"

# In any text (an exception's message and traceback, an ``error=repr(exc)``), what is personal or
# secret whatever key it is under: the password of a URL, the values pydantic quotes back, the
# statement parameters SQLAlchemy quotes (every engine hides them, this holds for any other),
# e-mail addresses and international phone numbers.
_TEXT_SCRUBS = (
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE), r"\g<keep>***@"),
    (re.compile(r"(?P<keep>input_value=).*?(?=, input_type=|\]$|$)", re.MULTILINE), r"\g<keep>[redacted]"),
    (re.compile(r"(?P<keep>\[parameters: ).*?(?=\]$|$)", re.MULTILINE | re.DOTALL), r"\g<keep>[redacted]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), _REDACTED),
    (re.compile(r"(?<![\w+])\+\d[\d ()-]{8,17}\d"), _REDACTED),
)


def scrub_text(text: str) -> str:
    """``text`` without the personal data and secrets a key name cannot catch."""
    for pattern, replacement in _TEXT_SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret(key: str) -> bool:
    name = key.lower()
    # A header's name is a key too: X-Forwarded-For, X-Real-IP
    words = {form for word in re.split(r"[_\-.\s]", name) for form in (word, word.removesuffix("s"))}
    return name not in _HARMLESS and (name in _SECRET_KEYS or not _SECRET_WORDS.isdisjoint(words))


def _redacted(value: Any) -> Any:
    """``value`` with every secret key's value replaced and every text scrubbed, at any depth."""
    if isinstance(value, dict):
        return {key: _REDACTED if _is_secret(str(key)) else _redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redacted(item) for item in value]
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return value


def _redact(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _redacted(event_dict)  # type: ignore[no-any-return]


class _ScrubbingFormatter(logging.Formatter):
    """The libraries' own lines (aiokafka, SQLAlchemy, uvicorn), tracebacks included, scrubbed
    like the service's."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


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
    ]
    structlog.configure(
        # The redaction runs after the exception is rendered as text, so the traceback is scrubbed too.
        processors=[*shared, structlog.processors.format_exc_info, _redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # The libraries (aiokafka, faststream) log through stdlib logging: keep them terse.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter(f"{service} %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
