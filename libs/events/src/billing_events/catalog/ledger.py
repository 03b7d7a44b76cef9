"""Events the ledger publishes, so nobody ever needs to ask the ledger."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from billing_events import topics
from billing_events.catalog.common import AccountNumber
from billing_events.envelope import Event
from billing_events.money import Money


class PaymentType(StrEnum):
    PREPAID = "prepaid"
    CREDIT = "credit"


class BalanceChanged(Event):
    """An account's balances after one ledger transaction, and what moved them."""

    event_type: ClassVar[str] = "BalanceChanged"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    transaction_id: UUID
    main: Money = Field(description="Main (real money) balance after the transaction")
    bonus: Money = Field(description="Bonus balance after the transaction")
    delta_main: Money
    delta_bonus: Money
    cause_event_id: UUID | None = Field(description="The event that caused the transaction")
    cause_type: str = Field(description="PaymentReceived, ChargeApplied, TransferRequested, ...")
    payment_type: PaymentType
    credit_limit: Money
