"""Events the identity service publishes. No passport data, ever; secrets only sealed."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from billing_contracts import topics
from billing_contracts.catalog.common import AccountNumber, MaskedDestination, SealedSecret
from billing_contracts.envelope import Event


class LegalStatus(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class SubscriberRegistered(Event):
    """A contract was signed and a personal account opened.

    Contact details are sealed for the notifier (the only other service allowed to hold them);
    everyone else sees the masked forms.
    """

    event_type: ClassVar[str] = "SubscriberRegistered"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    contract_number: str = Field(min_length=1, max_length=32)
    region: str = Field(min_length=1, max_length=64)
    legal_status: LegalStatus
    language: str = Field(default="ru", pattern=r"^[a-z]{2}$")
    masked_phone: MaskedDestination
    masked_email: MaskedDestination | None = None
    sealed_contact: SealedSecret = Field(
        description='Sealed JSON {"phone": "+7...", "email": "..."|null} for the notifier'
    )


class PasswordPurpose(StrEnum):
    INITIAL = "initial"
    SMS_REISSUE = "sms_reissue"
    RESET_CODE = "reset_code"
    SUPPORT_RECOVERY = "support_recovery"


class PasswordIssued(Event):
    """A password or one-time code must reach the subscriber. The secret is sealed."""

    event_type: ClassVar[str] = "PasswordIssued"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    purpose: PasswordPurpose
    channel: Literal["sms", "email"]
    masked_destination: MaskedDestination
    sealed_secret: SealedSecret = Field(
        description='Sealed JSON {"secret": "...", "destination": "..."} for the notifier'
    )
    expires_at: AwareDatetime | None = None


class LoginLocked(Event):
    """Repeated failed logins locked an account's login for a while; the subscriber is told.

    Published once per lock, by the failed attempt that started it.
    """

    event_type: ClassVar[str] = "LoginLocked"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    locked_until: AwareDatetime = Field(description="Logins are refused unchecked until then")
    failed_attempts: int = Field(ge=1, description="Failures within the window that caused it")


class AccessRestoredBySupport(Event):
    """Support restored a subscriber's access after checking the passport data the caller gave.

    Carries who did it and why (for the account's history), never the passport data itself.
    """

    event_type: ClassVar[str] = "AccessRestoredBySupport"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    operator: str = Field(min_length=1, max_length=100, description="The support operator")
    reason: str = Field(min_length=1, max_length=500, description="Why, as the operator wrote it")


class ResetCodeRedeemed(Event):
    """A one-time code was used: a new password follows by SMS (PasswordIssued, sms_reissue),
    and a login lock of the account, if any, was lifted. The current password still works until
    the new one is first used (PasswordReplaced)."""

    event_type: ClassVar[str] = "ResetCodeRedeemed"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber


class PasswordReplaced(Event):
    """A password sent on request was used for the first time and became the account's password;
    the previous one stopped working. Until then both worked (asking never takes one away)."""

    event_type: ClassVar[str] = "PasswordReplaced"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    purpose: PasswordPurpose = Field(description="Why the password that is now in use was sent")


class NoticeKind(StrEnum):
    """The notices a subscriber may turn off. Passwords, codes and security notices (a login
    locked, a contact changed) are not among them: they always go."""

    BALANCE_LOW = "balance_low"
    PAYMENT_CREDITED = "payment_credited"
    TARIFF_CHANGED = "tariff_changed"
    VOLUNTARY_BLOCK = "voluntary_block"
    DEBT_BLOCK = "debt_block"


class NoticePreferencesChanged(Event):
    """The subscriber chose which notices they get: ``turned_off`` is the whole new choice.

    ``preferences_version`` counts the account's choices (1 for the first): a copy keeps the
    highest it saw, so a choice delivered again after a newer one changes nothing.
    """

    event_type: ClassVar[str] = "NoticePreferencesChanged"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    turned_off: list[NoticeKind] = Field(max_length=len(NoticeKind), description="Every notice the subscriber does not want")
    preferences_version: int = Field(ge=1)


class LanguageChanged(Event):
    """The subscriber chose the language messages are written in."""

    event_type: ClassVar[str] = "LanguageChanged"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    language: str = Field(pattern=r"^[a-z]{2}$")


class PasswordChanged(Event):
    """The subscriber changed the password in the cabinet (the current one given); every other
    sign-in of the account was ended."""

    event_type: ClassVar[str] = "PasswordChanged"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber


class ContactCodeIssued(Event):
    """A code that confirms a new phone or e-mail must reach that new contact (sealed, as a
    password is): the change waits until the code comes back."""

    event_type: ClassVar[str] = "ContactCodeIssued"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    channel: Literal["sms", "email"]
    masked_destination: MaskedDestination
    sealed_secret: SealedSecret = Field(
        description='Sealed JSON {"secret": "...", "destination": "..."} for the notifier'
    )
    expires_at: AwareDatetime


class ContactChanged(Event):
    """The subscriber confirmed a new phone or e-mail: ``sealed_contact`` is the whole contact now.
    The notifier tells the previous one (a security notice) before it writes to the new one.

    ``contact_version`` counts the account's changes (1 for the first): a copy keeps the
    highest it saw, so a change delivered again after a newer one changes nothing.
    """

    event_type: ClassVar[str] = "ContactChanged"
    topic: ClassVar[str] = topics.IDENTITY

    account_number: AccountNumber
    changed: Literal["phone", "email"]
    masked_phone: MaskedDestination
    masked_email: MaskedDestination | None = None
    sealed_contact: SealedSecret = Field(
        description='Sealed JSON {"phone": "+7...", "email": "..."|null} for the notifier'
    )
    contact_version: int = Field(ge=1)


class RevokedKind(StrEnum):
    TOKEN = "token"
    """one service or operator token, by its ``jti``"""
    OPERATOR = "operator"
    """every token of an operator, whenever minted: the operator's name is retired"""


REVOCATIONS_KEY = "revocations"
"""The Kafka key of every TokenRevoked: one partition, so every service learns them in order."""


class TokenRevoked(Event):
    """Identity revoked a service or operator token, or an operator: every service refuses it
    from now on (each keeps the list). Subscriber tokens are not revoked this way."""

    event_type: ClassVar[str] = "TokenRevoked"
    topic: ClassVar[str] = topics.IDENTITY

    kind: RevokedKind
    value: str = Field(min_length=1, max_length=64, description="The token's jti, or the operator's name")
    revoked_by: str = Field(min_length=1, max_length=64, description="Who revoked it, as their credentials say")
    reason: str = Field(min_length=1, max_length=500)
