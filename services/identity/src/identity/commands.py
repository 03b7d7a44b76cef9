"""What the identity service's commands take and answer: validated where they enter (HTTP, the
CLI, a test) by :func:`identity.domain.validate_command`, so every field at fault is reported at
once and none is quoted. Registration's own command is :class:`identity.domain.RegistrationCommand`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from billing_contracts.catalog.identity import LegalStatus, NoticeKind, PasswordPurpose
from billing_events.service import Command
from identity.domain import RecoveryClaim
from identity.domain.registration import Email, Language, MobilePhone


class LoginCommand(Command):
    """Account number, contract number or mobile number, and the password (sent by SMS)."""

    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128, repr=False)


class ReissuePasswordCommand(Command):
    """"Get a new password by SMS": the new one goes to the registered mobile number."""

    login: str = Field(min_length=1, max_length=64)


class ResetCodeRequestCommand(Command):
    """Forgot password: the account or contract number and the registered phone OR e-mail."""

    login: str = Field(min_length=1, max_length=64)
    phone: MobilePhone | None = None
    email: Email | None = None


class RedeemResetCodeCommand(Command):
    login: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32, repr=False)


class SupportRecoveryCommand(RecoveryClaim):
    """An operator restores access after the caller proved who they are with passport data."""

    login: str = Field(min_length=1, max_length=64)
    operator: str = Field(min_length=1, max_length=100, description="Who performed the recovery")
    reason: str = Field(min_length=1, max_length=1000, description="Why, as the operator wrote it")


class Registered(BaseModel):
    account_number: str
    contract_number: str


class SelfRegistered(Registered):
    """The account opened on the site; its password is on its way by SMS."""

    password_sent_to: str


class LoggedIn(BaseModel):
    account_number: str
    contract_number: str


class SecretSent(BaseModel):
    """A password or code is on its way (through the notifier) to a masked destination."""

    account_number: str
    purpose: PasswordPurpose
    channel: Literal["sms", "email"]
    masked_destination: str
    expires_at: datetime | None = None


# --- the subscriber's sessions ----------------------------------------------------------------


class SessionStarted(BaseModel):
    """A sign-in: the session the access tokens name, and its first refresh token."""

    account_number: str
    contract_number: str
    session: str
    language: str = Field(description="The subscriber's language: the access tokens name it")
    refresh_token: str = Field(repr=False)
    refresh_expires_at: datetime


class RefreshCommand(Command):
    refresh_token: str = Field(min_length=1, max_length=128, repr=False)


# --- the cabinet: profile and settings --------------------------------------------------------


class ProfileView(BaseModel):
    """What the subscriber reads about themselves: contacts masked, never the passport."""

    account_number: str
    contract_number: str
    region: str
    legal_status: LegalStatus
    surname: str
    first_name: str
    patronymic: str | None
    masked_phone: str
    masked_email: str | None
    language: str
    notices_off: list[NoticeKind]
    notices_always_on: list[str] = Field(
        default=["passwords_and_codes", "security"],
        description="What cannot be turned off: passwords, codes and security notices",
    )


class AccountView(BaseModel):
    """One account the caller holds (the same phone or passport): one they may open."""

    account_number: str
    contract_number: str
    region: str
    current: bool


class ChangePasswordCommand(Command):
    current_password: str = Field(min_length=1, max_length=128, repr=False)
    new_password: str = Field(min_length=10, max_length=128, repr=False,
                              description="At least 10 characters, letters and digits")


class LanguageCommand(Command):
    language: Language


class NoticePreferencesCommand(Command):
    """The whole choice: every notice kind listed is turned off, every other one is on."""

    turned_off: list[NoticeKind] = Field(max_length=len(NoticeKind))


class NoticePreferences(BaseModel):
    account_number: str
    notices_off: list[NoticeKind]


class ContactChangeCommand(Command):
    """A new mobile number OR a new e-mail: a code goes to it, and the change waits for the code."""

    phone: MobilePhone | None = None
    email: Email | None = None


class ConfirmContactCommand(Command):
    code: str = Field(min_length=1, max_length=32, repr=False)


class ContactCodeSent(BaseModel):
    """The code confirming a new contact is on its way to it."""

    account_number: str
    channel: Literal["sms", "email"]
    masked_destination: str
    expires_at: datetime
