"""Slovak, Russian and English: the gettext catalogs (``locales/<lang>/LC_MESSAGES/messages.po``,
English is the source language) compiled in memory at start, so a fresh clone needs no build
step; money and dates in the locale's form (Babel)."""

from __future__ import annotations

import gettext
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, get_currency_precision

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = {"sk": "Slovenčina", "ru": "Русский", "en": "English"}
"""The languages offered, each named in itself (as the switcher shows them)."""
DEFAULT_LANGUAGE = "en"
BABEL_LOCALES = {"sk": "sk_SK", "ru": "ru_RU", "en": "en_GB"}


def compiled_catalogs() -> dict[str, gettext.NullTranslations]:
    """Each language's translations, compiled from its .po file (English: the messages as written)."""
    catalogs: dict[str, gettext.NullTranslations] = {DEFAULT_LANGUAGE: gettext.NullTranslations()}
    for language in LANGUAGES:
        po = LOCALES / language / "LC_MESSAGES" / "messages.po"
        if language == DEFAULT_LANGUAGE or not po.exists():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=language)
        mo = BytesIO()
        write_mo(mo, catalog)
        mo.seek(0)
        catalogs[language] = gettext.GNUTranslations(mo)
    return catalogs


CATALOGS = compiled_catalogs()
current_language: ContextVar[str] = ContextVar("current_language", default=DEFAULT_LANGUAGE)


def chosen(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _(message: str) -> str:
    return CATALOGS[current_language.get()].gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return CATALOGS[current_language.get()].ngettext(singular, plural, n)


def _locale() -> str:
    return BABEL_LOCALES[current_language.get()]


def money(value: dict[str, Any] | int, currency: str | None = None) -> str:
    """A ``{"minor", "currency"}`` amount (or minor units and a currency) as the locale writes it."""
    if isinstance(value, dict):
        minor, currency = int(value["minor"]), str(value["currency"])
    else:
        minor = value
    assert currency is not None
    units = Decimal(minor).scaleb(-get_currency_precision(currency))
    return format_currency(units, currency, locale=_locale())


def day(value: date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return format_date(value, format="long", locale=_locale())


def moment(value: datetime | str, tz: str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(value, format="medium", tzinfo=_zone(tz), locale=_locale())


def _zone(tz: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz)
