"""A refusal in the words of the person who reads it: Slovak, Russian or English.

Every refusal has a code; the sentence a subscriber reads is looked up by that code in the
catalogue of their language (``refusal_messages/<language>.json``, data beside this module), with
the refusal's values (``DomainError.params``, an ``ApiError``'s extra keys) put in: money as
money (``1 234,50 ₽``), days as days (``19.01.2027``). English is the language the suite's refusals
are written in, so an English reader, a code no catalogue knows, or a sentence whose values the
refusal did not bring get the refusal's own message.

Which language: the one the subscriber chose (their token's ``lang`` claim, from identity's
profile), else the first of the request's ``Accept-Language`` the suite speaks, else English.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from billing_contracts.money import Money, money_for_people
from billing_events.logging import get_logger

log = get_logger(__name__)

LANGUAGES = ("sk", "ru", "en")
DEFAULT_LANGUAGE = "en"
SOURCE_LANGUAGE = "en"
"""The language refusals are raised in: its sentences are the refusals' own messages."""
TRANSLATED = tuple(language for language in LANGUAGES if language != SOURCE_LANGUAGE)


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """The sentences of one language by refusal code (empty for the source language)."""
    if language not in TRANSLATED:
        return {}
    text = (resources.files("billing_events") / "refusal_messages" / f"{language}.json").read_text("utf-8")
    return json.loads(text)


def placeholders(sentence: str) -> set[str]:
    """The values a catalogue sentence puts in, by name."""
    return {name for _, name, _, _ in string.Formatter().parse(sentence) if name}


def for_people(value: Any) -> str:
    if isinstance(value, Money):
        return money_for_people(value)
    if isinstance(value, datetime):
        return value.strftime("%d.%m.%Y %H:%M UTC")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, (list, tuple)):
        return ", ".join(for_people(item) for item in value)
    return str(value)


def sentence(code: str, language: str, *, fallback: str, params: Mapping[str, Any] | None = None) -> str:
    """The refusal ``code`` in ``language``, with ``params`` put in; ``fallback`` (the refusal's
    own, English, message) where the catalogue has no sentence for it or lacks a value it needs."""
    template = catalogue(language).get(code)
    if template is None:
        return fallback
    values = {name: for_people(value) for name, value in (params or {}).items()}
    missing = placeholders(template) - values.keys()
    if missing:
        log.warning("refusal sentence lacks values", code=code, language=language, missing=sorted(missing))
        return fallback
    return template.format_map(values)


def chosen_language(claimed: str | None, accept_language: str | None) -> str:
    """The subscriber's chosen language if the suite speaks it, else the first language of an
    ``Accept-Language`` header it speaks (by the header's weights), else the default."""
    if claimed in LANGUAGES:
        return claimed
    for language in _by_preference(accept_language or ""):
        if language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE


def _by_preference(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, weight = part.strip().partition(";")
        weight = weight.strip()
        try:
            quality = float(weight.removeprefix("q=")) if weight.startswith("q=") else 1.0
        except ValueError:
            quality = 0.0
        if quality > 0 and tag:
            ranked.append((-quality, position, tag.split("-")[0].strip().lower()))
    return [language for _, _, language in sorted(ranked)]
