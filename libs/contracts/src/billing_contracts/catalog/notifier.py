"""Events the notifier publishes: what was told to whom (masked), and what failed.

Never the message body: a body can hold a password or a one-time code.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from billing_contracts import topics
from billing_contracts.catalog.common import AccountNumber, MaskedDestination
from billing_contracts.envelope import Event


class DeliveryChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class _NotificationOutcome(Event):
    """Fields common to both outcomes; has no event_type, so it is not registered itself."""

    account_number: AccountNumber
    about_event_id: UUID = Field(description="The event the subscriber was told about")
    about_event_type: str = Field(min_length=1, max_length=64, examples=["BalanceChanged"])
    channel: DeliveryChannel
    masked_destination: MaskedDestination
    template: str = Field(
        min_length=1, max_length=64, description="Template key", examples=["payment_credited"]
    )
    language: str = Field(pattern=r"^[a-z]{2}$", description="Language the message was written in")
    attempts: int = Field(
        ge=1, description="How many times the gateway was asked, this one included"
    )


class NotificationSent(_NotificationOutcome):
    """A gateway accepted the message."""

    event_type: ClassVar[str] = "NotificationSent"
    topic: ClassVar[str] = topics.NOTIFIER


class NotificationFailed(_NotificationOutcome):
    """The message could not be delivered: the last try failed or the failure was permanent."""

    event_type: ClassVar[str] = "NotificationFailed"
    topic: ClassVar[str] = topics.NOTIFIER

    reason: str = Field(
        min_length=1, max_length=500, description="Why the last try failed (no message content)"
    )


__all__ = ["DeliveryChannel", "NotificationFailed", "NotificationSent"]
