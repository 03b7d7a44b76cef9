"""Events the tariff service publishes: fees to charge and the account's access state."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from billing_events import topics
from billing_events.catalog.common import AccountNumber
from billing_events.envelope import Event
from billing_events.money import PositiveMoney


class FeeKind(StrEnum):
    SUBSCRIPTION = "subscription"
    OPTION = "option"
    VOLUNTARY_BLOCK = "voluntary_block"
    EQUIPMENT = "equipment"


class ChargeApplied(Event):
    """Debit the subscriber for a fee. ``charge_id`` is unique: the ledger posts it once."""

    event_type: ClassVar[str] = "ChargeApplied"
    topic: ClassVar[str] = topics.TARIFF

    charge_id: str = Field(min_length=1, max_length=128, examples=["100000000008:2026-11-25:subscription"])
    account_number: AccountNumber
    amount: PositiveMoney
    fee_kind: FeeKind
    billing_day: date
    description: str = Field(default="", max_length=200)


class BlockReason(StrEnum):
    DEBT = "debt"
    VOLUNTARY = "voluntary"


class AccountBlocked(Event):
    event_type: ClassVar[str] = "AccountBlocked"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    reason: BlockReason
    blocked_at: AwareDatetime
    until: date | None = Field(default=None, description="Last day of a voluntary block")


class AccountUnblocked(Event):
    event_type: ClassVar[str] = "AccountUnblocked"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    reason: BlockReason = Field(description="The reason of the block that ended")
    unblocked_at: AwareDatetime
