"""Turning a template key, a language and variables into the words a subscriber reads.

Templates are data files, ``templates/<language>/<key>.j2``, each with three blocks:
``subject``, ``sms`` and ``email``. Amounts read like ``1 234,50 ₽`` in every language, with a
plain space between thousands and before the sign (it keeps English EUR texts in GSM-7).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.money import money_for_people as format_money
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    Undefined,
    UndefinedError,
)

from notifier.domain import ErrorCode, Message, NotifierError, TemplateKey

LANGUAGES = ("sk", "ru", "en")
DEFAULT_LANGUAGE = "ru"

MAX_SMS_SEGMENTS = 3


# --- formatting for people --------------------------------------------------------------------


def format_day(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def format_moment(moment: datetime) -> str:
    """Subscribers' time zones are not known to the suite, so moments are written in UTC."""
    return moment.strftime("%d.%m.%Y %H:%M UTC")


def _strict(format_value: Callable[[Any], str]) -> Callable[[Any], str]:
    """Filters receive an undefined variable like any value; make it fail like a bare one."""

    @functools.wraps(format_value)
    def strict(value: Any) -> str:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()  # documented hook of jinja2.Undefined
        return format_value(value)

    return strict


# --- SMS length -------------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each takes an escape septet too


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def sms_size(text: str) -> SmsSize:
    """How many SMS segments ``text`` takes: one holds 160 GSM-7 septets or 70 UCS-2 units;
    a concatenated message loses room to its header (153 / 67 per segment)."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return SmsSize(encoding, units, segments)


# --- rendering --------------------------------------------------------------------------------


class Renderer:
    """Renders the packaged templates, falling back to a default language."""

    def __init__(self, default_language: str = DEFAULT_LANGUAGE) -> None:
        self.default_language = default_language
        self._env = Environment(
            loader=PackageLoader("notifier", "templates"),
            undefined=StrictUndefined,  # a missing variable is a bug, not an empty string
            autoescape=False,  # plain text: SMS and text/plain e-mail
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters.update(
            money=_strict(format_money), day=_strict(format_day), moment=_strict(format_moment)
        )
        self._require_every_template(default_language)

    def _require_every_template(self, language: str) -> None:
        """The fallback language must be complete, or a message could have nothing to fall to."""
        present = set(self._env.list_templates())
        missing = [key.value for key in TemplateKey if f"{language}/{key.value}.j2" not in present]
        if missing:
            raise NotifierError(
                ErrorCode.INCOMPLETE_LANGUAGE,
                f"default language {language!r} lacks templates: {', '.join(missing)}",
                field="default_language",
            )

    def render(
        self,
        template: TemplateKey,
        language: str,
        variables: Mapping[str, Any],
        channel: DeliveryChannel,
    ) -> Message:
        chosen, jinja_template = self._template(template, language)
        subject = self._block(jinja_template, "subject", variables, template)
        body = self._block(jinja_template, channel.value, variables, template)
        if channel is DeliveryChannel.SMS:
            size = sms_size(body)
            if size.segments > MAX_SMS_SEGMENTS:
                raise NotifierError(
                    ErrorCode.SMS_TOO_LONG,
                    f"{template}/{chosen} renders to {size.segments} {size.encoding} segments;"
                    f" at most {MAX_SMS_SEGMENTS} are sent",
                )
        return Message(
            template=template.value,
            language=chosen,
            subject=subject,
            body=body,
            contains_secret=template.carries_secret,
        )

    def _template(self, template: TemplateKey, language: str) -> tuple[str, Template]:
        for candidate in dict.fromkeys((language, self.default_language)):
            try:
                return candidate, self._env.get_template(f"{candidate}/{template.value}.j2")
            except TemplateNotFound:
                continue
        raise NotifierError(
            ErrorCode.TEMPLATE_MISSING,
            f"no template {template} in {language!r} or {self.default_language!r}",
        )

    @staticmethod
    def _block(
        jinja_template: Template, block: str, variables: Mapping[str, Any], key: TemplateKey
    ) -> str:
        render_block = jinja_template.blocks.get(block)
        if render_block is None:
            raise NotifierError(ErrorCode.TEMPLATE_INCOMPLETE, f"template {key} has no {block!r} block")
        try:
            text = "".join(render_block(jinja_template.new_context(dict(variables))))
        except UndefinedError as exc:
            raise NotifierError(ErrorCode.TEMPLATE_VARIABLE_MISSING, f"{key}: {exc.message}") from None
        return text.strip()
