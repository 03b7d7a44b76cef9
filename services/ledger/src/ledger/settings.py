"""The ledger service's settings: the shared ones plus its own (environment prefix BILLING_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from billing_events.catalog.payments import DEFAULT_MAX_PAYMENT
from billing_events.settings import ServiceSettings

DEFAULT_CAMPAIGNS = Path(__file__).with_name("campaigns.json")
DEFAULT_REWARDS = Path(__file__).with_name("rewards.json")


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
