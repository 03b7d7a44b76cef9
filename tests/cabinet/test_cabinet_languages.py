"""Every message of the cabinet (its templates and its code) reads in Slovak and Russian: the
catalogs hold a translation of each, with the same {placeholders}; English is the source."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from billing_cabinet import i18n

PACKAGE = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def _messages() -> set[str]:
    methods = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    return {message for _file, _line, message, _comments, _context in extract_from_dir(PACKAGE, methods)
            if isinstance(message, str)}


def test_every_message_is_translated_into_slovak_and_russian() -> None:
    messages = _messages()
    assert len(messages) > 100  # the extraction read the templates, not nothing
    for language in ("sk", "ru"):
        with (i18n.LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
            catalog = {entry.id: entry.string for entry in read_po(source) if entry.id}
        untranslated = sorted(m for m in messages if not catalog.get(m))
        assert untranslated == [], language
        mismatched = sorted(m for m in messages if set(PLACEHOLDER.findall(m)) != set(PLACEHOLDER.findall(catalog[m])))
        assert mismatched == [], language


def test_the_catalogs_compile_at_start_without_a_build_step() -> None:
    assert set(i18n.CATALOGS) == set(i18n.LANGUAGES)
    assert i18n.CATALOGS["ru"].gettext("Overview") == "Обзор"
    assert i18n.CATALOGS["sk"].gettext("Overview") == "Prehľad"
