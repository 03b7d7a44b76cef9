"""What the identity service's commands take and answer: validated where they enter (HTTP, the
CLI, a test) by :func:`identity.domain.validate_command`, so every field at fault is reported at
once and none is quoted. Registration's own command is :class:`identity.domain.RegistrationCommand`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from billing_events.catalog.identity import PasswordPurpose
from billing_events.service import Command
from identity.domain import RecoveryClaim
from identity.domain.registration import Email, MobilePhone


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
