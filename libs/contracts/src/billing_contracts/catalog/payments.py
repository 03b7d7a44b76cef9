"""Events the payment channels publish (ingress): money arriving for a subscriber."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from billing_contracts import topics
from billing_contracts.envelope import Event
from billing_contracts.money import PositiveMoney


DEFAULT_MAX_PAYMENT = 100_000_000
"""The largest single payment (minor units: 1,000,000.00 RUB) the ledger credits without a person
looking at it; every door checks it (``BILLING_MAX_PAYMENT`` overrides it)."""


class PaymentChannel(StrEnum):
    SHOP = "shop"
    TERMINAL = "terminal"
    CARD = "card"
    BANK = "bank"
    EWALLET = "ewallet"
    THIRD_PARTY = "third_party"


class PaymentReceived(Event):
    """A payment channel received money for an account number.

    ``account_number`` is what the payer typed: it may be unknown or closed, in which case the
    ledger parks the money in suspense. The pair (channel, reference) identifies the payment:
    it is credited once however often it is delivered.
    """

    event_type: ClassVar[str] = "PaymentReceived"
    topic: ClassVar[str] = topics.PAYMENTS

    account_number: str = Field(min_length=1, max_length=32)
    channel: PaymentChannel
    reference: str = Field(min_length=1, max_length=64, description="The channel's own reference")
    amount: PositiveMoney
    received_at: AwareDatetime

    @property
    def payment_key(self) -> str:
        return f"{self.channel.value}:{self.reference}"


__all__ = ["DEFAULT_MAX_PAYMENT", "PaymentChannel", "PaymentReceived"]
