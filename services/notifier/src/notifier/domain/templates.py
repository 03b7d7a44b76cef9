"""The messages the notifier knows how to write: their template keys, which of them carry a
secret, and a message as the subscriber reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from billing_contracts.catalog.identity import NoticeKind, PasswordPurpose


class TemplateKey(StrEnum):
    PAYMENT_CREDITED = "payment_credited"
    BALANCE_LOW = "balance_low"
    ACCOUNT_BLOCKED_FOR_DEBT = "account_blocked_debt"
    ACCOUNT_UNBLOCKED = "account_unblocked"
    VOLUNTARY_BLOCK_STARTED = "voluntary_block_started"
    VOLUNTARY_BLOCK_ENDED = "voluntary_block_ended"
    TARIFF_CHANGED = "tariff_changed"
    LOGIN_LOCKED = "login_locked"
    PASSWORD_INITIAL = "password_initial"
    PASSWORD_SMS_REISSUE = "password_sms_reissue"
    PASSWORD_RESET_CODE = "password_reset_code"
    PASSWORD_SUPPORT_RECOVERY = "password_support_recovery"
    CONTACT_CODE = "contact_code"
    CONTACT_CHANGED = "contact_changed"

    @property
    def carries_secret(self) -> bool:
        return self in PASSWORD_TEMPLATES.values() or self is TemplateKey.CONTACT_CODE

    @property
    def notice_kind(self) -> NoticeKind | None:
        """The kind a subscriber may turn off this message as; None: it always goes (passwords,
        codes, security notices)."""
        return NOTICE_KINDS.get(self)


PASSWORD_TEMPLATES: Mapping[PasswordPurpose, TemplateKey] = {
    PasswordPurpose.INITIAL: TemplateKey.PASSWORD_INITIAL,
    PasswordPurpose.SMS_REISSUE: TemplateKey.PASSWORD_SMS_REISSUE,
    PasswordPurpose.RESET_CODE: TemplateKey.PASSWORD_RESET_CODE,
    PasswordPurpose.SUPPORT_RECOVERY: TemplateKey.PASSWORD_SUPPORT_RECOVERY,
}


NOTICE_KINDS: Mapping[TemplateKey, NoticeKind] = {
    TemplateKey.PAYMENT_CREDITED: NoticeKind.PAYMENT_CREDITED,
    TemplateKey.BALANCE_LOW: NoticeKind.BALANCE_LOW,
    TemplateKey.ACCOUNT_BLOCKED_FOR_DEBT: NoticeKind.DEBT_BLOCK,
    TemplateKey.ACCOUNT_UNBLOCKED: NoticeKind.DEBT_BLOCK,
    TemplateKey.VOLUNTARY_BLOCK_STARTED: NoticeKind.VOLUNTARY_BLOCK,
    TemplateKey.VOLUNTARY_BLOCK_ENDED: NoticeKind.VOLUNTARY_BLOCK,
    TemplateKey.TARIFF_CHANGED: NoticeKind.TARIFF_CHANGED,
}


@dataclass(frozen=True)
class Message:
    """A message as the subscriber reads it, ready for a channel."""

    template: str
    language: str
    subject: str
    body: str = field(repr=False)  # may hold a password or a code
    contains_secret: bool
