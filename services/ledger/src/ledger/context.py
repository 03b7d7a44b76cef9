"""What the ledger's commands need from their process, built once in :mod:`ledger.app`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from billing_contracts.catalog.payments import DEFAULT_MAX_PAYMENT
from billing_events.service import ServiceContext

from ledger.domain import BonusCampaign, Reward


@dataclass(frozen=True, kw_only=True)
class LedgerContext(ServiceContext):
    """What the ledger's commands need from their process."""

    producer: str = "ledger"
    campaigns: tuple[BonusCampaign, ...] = ()
    rewards: tuple[Reward, ...] = ()
    """The gifts and discounts bonuses buy: a redemption naming one is held to its price."""
    bonus_pays_charges: bool = False
    self_service_credit_limit: int = 100_000
    """The largest credit limit (minor units) subscribers may choose for themselves."""
    max_payment: int = DEFAULT_MAX_PAYMENT
    """The most one payment, transfer or redemption may move (minor units); a payment over it is
    parked for a person, a command over it refused."""
    verify_workers: int | None = None
    """Processes auditing the journal at once in a verify; None: one per core."""
    card_callback_window: timedelta = timedelta(minutes=5)
    """How far from now an acquirer's callback may have been sent: one sent earlier is a replay."""
