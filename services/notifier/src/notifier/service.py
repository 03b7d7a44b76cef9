"""The notifier's service layer: its context, and the reads operations make (the CLI and HTTP
call these)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from uuid import UUID

from billing_events.catalog.common import AccountNumber
from billing_events.catalog.notifier import DeliveryChannel
from billing_events.money import Money
from billing_events.service import ServiceContext
from pydantic import BaseModel, Field

from notifier import store
from notifier.domain import Channel, ErrorCode, NotifierError, RetryPolicy, Unsealer
from notifier.rendering import LANGUAGES, Renderer
from notifier.store import DeliveryStatus

OpenChannels = Callable[[contextlib.AsyncExitStack], Awaitable[Mapping[DeliveryChannel, Channel]]]
"""Opens the gateways, one per kind of message, for as long as the stack lives."""


@dataclass(frozen=True, kw_only=True)
class NotifierContext(ServiceContext):
    """What the notifier's handlers and delivery loop need, built once in ``app.py``."""

    producer: str = "notifier"
    opener: Unsealer
    """Opens the contacts and secrets identity sealed for the notifier."""
    channels: OpenChannels
    renderer: Renderer
    retry_policy: RetryPolicy
    low_balance_thresholds: Mapping[str, int]
    """Per currency, in minor units: below this the subscriber is told once per fall."""

    def low_balance_threshold(self, currency: str) -> Money:
        """The threshold in the account's currency (zero where none is configured: never told)."""
        return Money(minor=self.low_balance_thresholds.get(currency, 0), currency=currency)

    def language(self, language: str) -> str:
        """The subscriber's language if there are templates in it, else the default one."""
        return language if language in LANGUAGES else self.renderer.default_language


class DeliveryLogQuery(BaseModel):
    account_number: AccountNumber
    status: DeliveryStatus | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, description="Page: deliveries older than this id")


class DeliveryAttempt(BaseModel):
    attempt: int
    at: datetime
    outcome: str = Field(description="sent, retry or failed")
    reason: str | None


class DeliveryRecord(BaseModel):
    """One message as the delivery log keeps it: never its body, only the masked destination."""

    id: int
    about_event_id: UUID
    about_event_type: str
    template: str
    language: str
    channel: DeliveryChannel
    masked_destination: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    tries: list[DeliveryAttempt]


class SubscriberView(BaseModel):
    language: str
    notify_by: DeliveryChannel
    masked_phone: str
    masked_email: str | None


class DeliveryLog(BaseModel):
    account_number: str
    subscriber: SubscriberView | None = Field(description="None: the notifier has no profile yet")
    deliveries: list[DeliveryRecord]


async def delivery_log(context: NotifierContext, query: DeliveryLogQuery) -> DeliveryLog:
    """An account's deliveries, newest first, with every try and its reason; refused with
    ``unknown_account`` when the notifier knows nothing of the account."""
    async with context.db.connect() as conn:
        rows = await store.delivery_log(conn, query.account_number, status=query.status,
                                        limit=query.limit, before_id=query.before_id)
        tries = await store.attempts_of(conn, [row.id for row in rows])
        subscriber = await store.subscriber_row(conn, query.account_number)
    if subscriber is None and not rows:
        raise NotifierError(ErrorCode.UNKNOWN_ACCOUNT,
                            "the notifier has no subscriber or delivery for this account")
    return DeliveryLog(
        account_number=query.account_number,
        subscriber=None if subscriber is None else SubscriberView(
            language=subscriber.language, notify_by=subscriber.notify_by,
            masked_phone=subscriber.masked_phone, masked_email=subscriber.masked_email,
        ),
        deliveries=[_record(row, tries.get(row.id, [])) for row in rows],
    )


def _record(row: store.LoggedDelivery, tries: list[store.DeliveryTry]) -> DeliveryRecord:
    data = asdict(row)
    del data["account_number"]
    if row.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
        data["next_attempt_at"] = None
    return DeliveryRecord(**data, tries=[
        DeliveryAttempt(attempt=t.attempt, at=t.at, outcome=t.outcome, reason=t.reason) for t in tries
    ])
