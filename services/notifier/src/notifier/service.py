"""The notifier's service layer: the reads operations make (the CLI and HTTP call these)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.notifier import DeliveryChannel
from pydantic import BaseModel, Field

from notifier import store
from notifier.context import NotifierContext
from notifier.domain import ErrorCode, NotifierError
from notifier.store import DeliveryStatus


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
