"""The ledger service's settings: the shared ones plus its own (environment prefix BILLING_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from billing_contracts.catalog.payments import DEFAULT_MAX_PAYMENT
from billing_events.settings import ServiceSettings

from ledger.acquirer import DEVELOPMENT_CALLBACK_SECRET, Acquirer

DEFAULT_CAMPAIGNS = Path(__file__).with_name("campaigns.json")
DEFAULT_REWARDS = Path(__file__).with_name("rewards.json")
MIN_CALLBACK_SECRET_LENGTH = 32
"""An HMAC key shorter than the hash's 32 bytes is weaker than the hash."""


class LedgerSettings(ServiceSettings):
    service_name: ClassVar[str] = "ledger"
    database_url: str | None = Field(default=None, validation_alias="BILLING_LEDGER_DATABASE_URL")
    signing_private_key: SecretStr | None = Field(default=None, validation_alias="BILLING_LEDGER_SIGNING_PRIVATE_KEY")
    outbox_retention_hours: int = Field(
        default=0, ge=0, description="The ledger keeps every event it published: replays for consumers read them"
    )
    bonus_campaigns_file: Path | None = Field(
        default=DEFAULT_CAMPAIGNS,
        validation_alias="BILLING_LEDGER_BONUS_CAMPAIGNS_FILE",
        description="JSON list of bonus campaigns (the \"20 % back\" rule is data); unset: none",
    )
    rewards_file: Path | None = Field(
        default=DEFAULT_REWARDS,
        validation_alias="BILLING_LEDGER_REWARDS_FILE",
        description="JSON list of the gifts and discounts bonuses buy (GET /ledger/rewards); unset: none",
    )
    bonus_pays_charges: bool = Field(
        default=False,
        validation_alias="BILLING_LEDGER_BONUS_PAYS_CHARGES",
        description="Pay daily charges from the bonus balance first (a separate redemption)",
    )
    self_service_credit_limit: int = Field(
        default=100_000,
        ge=0,
        validation_alias="BILLING_LEDGER_SELF_SERVICE_CREDIT_LIMIT",
        description="Largest credit limit (minor units) a subscriber may choose; larger ones need an operator",
    )
    max_payment: int = Field(
        default=DEFAULT_MAX_PAYMENT,
        gt=0,
        validation_alias="BILLING_MAX_PAYMENT",
        description="Most one payment, transfer or redemption may move (minor units); a payment over it is"
        " parked in suspense for a person (amount_over_limit), a command over it refused",
    )
    seal_every_seconds: float = Field(
        default=60.0,
        ge=0,
        validation_alias="BILLING_LEDGER_SEAL_EVERY_SECONDS",
        description="Publish the journal's chain head (JournalSealed) at least this often while it grows; 0: never",
    )
    seal_every_transactions: int = Field(
        default=10_000,
        ge=1,
        validation_alias="BILLING_LEDGER_SEAL_EVERY_TRANSACTIONS",
        description="Also publish the chain head as soon as this many transactions were appended since the last seal",
    )
    verify_workers: int | None = Field(
        default=None,
        ge=1,
        validation_alias="BILLING_LEDGER_VERIFY_WORKERS",
        description="Processes auditing the journal at once in a verify (PostgreSQL); unset: one per core",
    )
    card_acquirer_url: str | None = Field(
        default=None,
        validation_alias="BILLING_LEDGER_CARD_ACQUIRER_URL",
        description="The card acquirer's payment page: the cabinet sends the subscriber there with the intent,"
        " amount (minor units) and currency in the query. Unset (development): the ledger's own development"
        " page, /ledger/dev-acquirer/{intent}, stands in",
    )
    card_return_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+/.*\{intent_id\}",
        validation_alias="BILLING_LEDGER_CARD_RETURN_URL",
        description="Where the development acquirer page sends the subscriber back once a button is pressed,"
        " {intent_id} in it replaced by the payment's (the cabinet's page, e.g."
        " http://127.0.0.1:8090/card-payments/{intent_id}); the operator's setting, never a request's, so the"
        " page redirects nowhere else. A real acquirer is given this address when the merchant signs up."
        " Unset: the page answers with the callbacks it sent, as JSON",
    )
    card_callback_secret: SecretStr | None = Field(
        default=None,
        validation_alias="BILLING_LEDGER_CARD_CALLBACK_SECRET",
        description="The secret shared with the card acquirer: its callbacks carry an HMAC-SHA256 of their"
        " body with it (at least 32 characters). Unset (development): a secret published in the repository",
    )
    card_callback_window_seconds: int = Field(
        default=300,
        ge=1,
        validation_alias="BILLING_LEDGER_CARD_CALLBACK_WINDOW_SECONDS",
        description="How far from now an acquirer's callback may have been sent; further is a replay, refused",
    )

    @field_validator("card_callback_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_CALLBACK_SECRET_LENGTH:
            raise ValueError(f"BILLING_LEDGER_CARD_CALLBACK_SECRET needs at least {MIN_CALLBACK_SECRET_LENGTH} characters")
        return value

    def acquirer(self) -> Acquirer:
        secret = self.card_callback_secret.get_secret_value() if self.card_callback_secret else DEVELOPMENT_CALLBACK_SECRET
        return Acquirer(secret=secret.encode(), page_url=self.card_acquirer_url, return_url=self.card_return_url)

    def development_defaults(self) -> list[str]:
        found = super().development_defaults()
        if self.process_role == "relay":
            return found  # it serves no API: no card door, no acquirer
        secret = self.card_callback_secret
        if secret is None or secret.get_secret_value() == DEVELOPMENT_CALLBACK_SECRET:
            found.append("BILLING_LEDGER_CARD_CALLBACK_SECRET is unset: card callbacks are checked with the secret"
                         " published in the repository, so anyone can approve a card payment (set the secret"
                         " shared with the acquirer)")
        if self.card_acquirer_url is None:
            found.append("BILLING_LEDGER_CARD_ACQUIRER_URL is unset: subscribers would be sent to the development"
                         " acquirer page, which is not served in production (set the acquirer's payment page)")
        return found
