"""The notifier service's settings: the shared ones plus its own (environment prefix BILLING_).

Channels: every message is either an SMS or an e-mail (the domain decides which). Each kind
goes through its own gateway: ``sms_channel`` is ``file`` or ``http_sms``, ``email_channel`` is
``file`` or ``smtp``. ``channel`` is a shorthand that sets one of them: ``file`` sends both
kinds to the local file (the embedded default), ``smtp`` sends e-mail through SMTP and
``http_sms`` sends SMS through the HTTP gateway.

    BILLING_NOTIFIER_CHANNEL=smtp BILLING_SMTP__HOST=relay.example BILLING_SMTP__SENDER=...
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Literal

from billing_contracts.money import MINOR_UNIT_DIGITS
from billing_events.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr, model_validator

from notifier.domain import RetryPolicy
from notifier.rendering import DEFAULT_LANGUAGE, LANGUAGES


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(default="billing@localhost", description="The From address")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="Secret: BILLING_SMTP__PASSWORD")
    tls: Literal["none", "starttls", "tls"] = "starttls"
    timeout_seconds: float = Field(default=30.0, gt=0)


class SmsGatewaySettings(BaseModel):
    url: str = "http://127.0.0.1:8025/v1/sms"
    api_token: SecretStr = Field(default=SecretStr(""), description="Secret: BILLING_SMS_GATEWAY__API_TOKEN")
    sender: str | None = Field(default=None, description="Sender name shown on the phone")
    timeout_seconds: float = Field(default=10.0, gt=0)


class NotifierSettings(ServiceSettings):
    service_name: ClassVar[str] = "notifier"
    database_url: str | None = Field(default=None, validation_alias="BILLING_NOTIFIER_DATABASE_URL")
    signing_private_key: SecretStr | None = Field(default=None, validation_alias="BILLING_NOTIFIER_SIGNING_PRIVATE_KEY")

    notifier_private_key: SecretStr = Field(
        validation_alias="BILLING_NOTIFIER_PRIVATE_KEY",
        description="Base64 X25519 private key: opens the contacts and secrets identity sealed; comma-separated "
                    "during a rotation (the new key and the previous ones: each sealed text names its key)",
    )
    production: bool = Field(
        default=False,
        validation_alias="BILLING_NOTIFIER_PRODUCTION",
        description="The file channel masks addresses and redacts secrets (a staging run on the file channel; "
                    "BILLING_ENVIRONMENT=production refuses the file channel altogether)",
    )

    channel: Literal["file", "smtp", "http_sms"] | None = Field(
        default=None,
        validation_alias="BILLING_NOTIFIER_CHANNEL",
        description="Shorthand: file = both kinds to the file; smtp / http_sms set that kind's gateway",
    )
    sms_channel: Literal["file", "http_sms"] = Field(
        default="file", validation_alias="BILLING_NOTIFIER_SMS_CHANNEL"
    )
    email_channel: Literal["file", "smtp"] = Field(
        default="file", validation_alias="BILLING_NOTIFIER_EMAIL_CHANNEL"
    )
    file_channel_path: Path | None = Field(
        default=None,
        validation_alias="BILLING_NOTIFIER_FILE_CHANNEL_PATH",
        description="Default: <data_dir>/notifier/outbox.jsonl",
    )
    smtp: SmtpSettings = SmtpSettings()
    sms_gateway: SmsGatewaySettings = SmsGatewaySettings()

    default_language: str = Field(default=DEFAULT_LANGUAGE, pattern=r"^[a-z]{2}$")
    low_balance_thresholds: dict[str, int] = Field(
        default_factory=lambda: {"RUB": 100_00, "EUR": 5_00, "USD": 5_00},
        description="Per currency, in minor units: below this the subscriber is told once per fall",
    )

    retry_max_attempts: int = Field(default=5, ge=1)
    retry_base_delay_seconds: float = Field(default=2.0, gt=0)
    retry_max_delay_seconds: float = Field(default=300.0, gt=0)

    delivery_batch_size: int = Field(default=50, ge=1, description="Deliveries claimed per round")
    delivery_concurrency: int = Field(default=8, ge=1, description="Sends in flight at once")
    delivery_poll_seconds: float = Field(
        default=1.0, gt=0, description="Upper bound of the wait between rounds (a commit wakes it)"
    )
    delivery_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A delivery marked 'sending' longer than this (a crash) is sent again",
    )

    @model_validator(mode="after")
    def _apply_channel_shorthand(self) -> NotifierSettings:
        if self.channel == "file":
            self.sms_channel, self.email_channel = "file", "file"
        elif self.channel == "smtp":
            self.email_channel = "smtp"
        elif self.channel == "http_sms":
            self.sms_channel = "http_sms"
        if self.default_language not in LANGUAGES:
            raise ValueError(f"default_language must be one of {', '.join(LANGUAGES)}")
        unknown = set(self.low_balance_thresholds) - set(MINOR_UNIT_DIGITS)
        if unknown:
            raise ValueError(f"low_balance_thresholds: unknown currencies {sorted(unknown)}")
        if self.retry_max_delay_seconds < self.retry_base_delay_seconds:
            raise ValueError("retry_max_delay_seconds must not be below retry_base_delay_seconds")
        return self

    def development_defaults(self) -> list[str]:
        found = super().development_defaults()
        for kind, channel, real in (("SMS", self.sms_channel, "http_sms"), ("EMAIL", self.email_channel, "smtp")):
            if channel == "file":
                found.append(f"BILLING_NOTIFIER_{kind}_CHANNEL is file: passwords and codes would be written in "
                             f"clear to a local file instead of sent (use {real})")
        return found

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base_delay=timedelta(seconds=self.retry_base_delay_seconds),
            max_delay=timedelta(seconds=self.retry_max_delay_seconds),
        )

    def resolved_file_channel_path(self) -> Path:
        if self.file_channel_path is not None:
            return self.file_channel_path
        return self.data_dir / self.service_name / "outbox.jsonl"
