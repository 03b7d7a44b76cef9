"""The notifier's own tables and queries (SQLAlchemy Core; PostgreSQL and SQLite).

- ``subscribers``: the notifier's copy of who to write to. The clear contact is never stored:
  the row keeps identity's ``sealed_contact`` (a sealed box only the notifier's private key
  opens), so the database holds ciphertext and the masked forms for display.
- ``low_balance_alarms``: per account, whether the "balance running low" message is armed.
- ``parked_events``: events about an account the notifier has no profile for yet (the topics
  are read in parallel, so a ledger event can overtake SubscriberRegistered); they are decided
  when the profile arrives.
- ``deliveries``: the delivery log, one row per message. No message body is stored: the body
  is rendered at send time from ``variables`` (which never hold a secret) plus, for passwords
  and codes, identity's ``sealed_secret`` opened at send time.
- ``delivery_attempts``: every try of a delivery with its outcome and reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from billing_contracts.catalog.identity import NoticeKind
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_events.db import insert_ignoring_duplicates, upsert
from billing_contracts.money import Money
from billing_events.schema import BigId, UtcDateTime
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    delete,
    false,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.domain import Destination, LowBalanceAlarm, SubscriberProfile, Unsealer

metadata = MetaData()


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


subscribers = Table(
    "subscribers",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("language", String(2), nullable=False),
    Column("notify_by", String(8), nullable=False),
    Column("masked_phone", String(64), nullable=False),
    Column("masked_email", String(64)),
    Column("sealed_contact", Text, nullable=False),
    Column("registered_event_id", Uuid, nullable=False),
    Column("contact_version", BigInteger, nullable=False, server_default="0",
           doc="The ContactChanged last kept (0: the contact as registered)"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# The notices each subscriber turned off, as the latest NoticePreferencesChanged said (its
# preferences_version: an older one delivered again changes nothing).
notice_preferences = Table(
    "notice_preferences",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("turned_off", JSON, nullable=False),
    Column("preferences_version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

low_balance_alarms = Table(
    "low_balance_alarms",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("balance_version", BigInteger,
           comment="account_version of the BalanceChanged last observed; NULL: none, or from before versions"),
    Column("updated_at", UtcDateTime(), nullable=False),
)

parked_events = Table(
    "parked_events",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("account_number", String(64), nullable=False, index=True),
    Column("event_type", String(64), nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("parked_at", UtcDateTime(), nullable=False),
    Column("before_closure", Boolean, nullable=False, server_default=false(),
           comment="Parked before the closure arrived: decided as for an open account"),
)

closed_accounts = Table(
    "closed_accounts",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("closed_by", String(64), nullable=False,
           comment="The event that told the notifier first: SubscriptionClosed or AccountClosed"),
    Column("closed_at", UtcDateTime(), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_number", String(12), nullable=False),
    Column("about_event_id", Uuid, nullable=False),
    Column("about_event_type", String(64), nullable=False),
    Column("correlation_id", Uuid, nullable=False),
    Column("template", String(64), nullable=False),
    Column("language", String(2), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("masked_destination", String(64), nullable=False),
    Column("variables", JSON, nullable=False),
    Column("sealed_secret", Text),
    Column("sealed_contact", Text, doc="A contact the notice goes to instead of the profile's: the one replaced"),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_error", String(500)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("about_event_id", "template", "channel", name="deliveries_once_per_event"),
    Index("deliveries_due", "status", "next_attempt_at"),
    Index("deliveries_by_account", "account_number", "id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("delivery_id", BigId, ForeignKey("deliveries.id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("outcome", String(10), nullable=False),  # sent | retry | failed
    Column("reason", String(500)),
)


# --- subscribers ------------------------------------------------------------------------------


async def save_subscriber(
    conn: AsyncConnection,
    *,
    account_number: str,
    language: str,
    notify_by: DeliveryChannel,
    masked_phone: str,
    masked_email: str | None,
    sealed_contact: str,
    event_id: UUID,
    now: datetime,
) -> None:
    values = {
        "account_number": account_number,
        "language": language,
        "notify_by": notify_by.value,
        "masked_phone": masked_phone,
        "masked_email": masked_email,
        "sealed_contact": sealed_contact,
        "registered_event_id": event_id,
        "created_at": now,
        "updated_at": now,
    }
    changing = [k for k in values if k not in ("account_number", "created_at")]
    await conn.execute(upsert(conn, subscribers, ["account_number"], changing), values)


@dataclass(frozen=True)
class SubscriberRow:
    """A subscriber as the table keeps it: the contact still sealed."""

    account_number: str
    language: str
    notify_by: DeliveryChannel
    masked_phone: str
    masked_email: str | None
    sealed_contact: str = field(repr=False)

    def profile(self, opener: Unsealer, notices_off: frozenset[NoticeKind] = frozenset()) -> SubscriberProfile:
        """The profile with the contact opened (in memory only)."""
        contact = opener.contact(self.sealed_contact)
        email = None
        if contact.email is not None:
            email = Destination(contact.email, self.masked_email or "***")
        return SubscriberProfile(
            account_number=self.account_number,
            language=self.language,
            phone=Destination(contact.phone, self.masked_phone),
            email=email,
            notify_by=self.notify_by,
            notices_off=notices_off,
        )


async def subscriber_row(conn: AsyncConnection, account_number: str) -> SubscriberRow | None:
    row = (
        await conn.execute(
            select(subscribers.c.account_number, subscribers.c.language, subscribers.c.notify_by,
                   subscribers.c.masked_phone, subscribers.c.masked_email, subscribers.c.sealed_contact)
            .where(subscribers.c.account_number == account_number)
        )
    ).first()
    if row is None:
        return None
    return SubscriberRow(row.account_number, row.language, DeliveryChannel(row.notify_by), row.masked_phone,
                         row.masked_email, row.sealed_contact)


async def load_profile(
    conn: AsyncConnection, account_number: str, opener: Unsealer
) -> SubscriberProfile | None:
    """The profile with the contact opened (in memory only)."""
    row = await subscriber_row(conn, account_number)
    if row is None:
        return None
    turned_off = await conn.scalar(
        select(notice_preferences.c.turned_off).where(notice_preferences.c.account_number == account_number))
    return row.profile(opener, frozenset(NoticeKind(kind) for kind in turned_off or ()))


async def save_notice_preferences(
    conn: AsyncConnection, account_number: str, turned_off: Sequence[NoticeKind], *, version: int, now: datetime
) -> bool:
    """Keep the subscriber's choice unless a newer one is kept already; whether it was kept."""
    held = await conn.scalar(select(notice_preferences.c.preferences_version)
                             .where(notice_preferences.c.account_number == account_number))
    if held is not None and held >= version:
        return False
    await conn.execute(
        upsert(conn, notice_preferences, ["account_number"], ["turned_off", "preferences_version", "updated_at"]),
        {"account_number": account_number, "turned_off": sorted(kind.value for kind in turned_off),
         "preferences_version": version, "updated_at": now},
    )
    return True


async def replace_contact(
    conn: AsyncConnection, account_number: str, *, masked_phone: str, masked_email: str | None,
    sealed_contact: str, version: int, now: datetime,
) -> bool:
    """Keep the subscriber's new contact unless a change as new is kept already; whether it was."""
    result = await conn.execute(
        update(subscribers)
        .where(subscribers.c.account_number == account_number, subscribers.c.contact_version < version)
        .values(masked_phone=masked_phone, masked_email=masked_email, sealed_contact=sealed_contact,
                contact_version=version, updated_at=now)
    )
    return bool(result.rowcount)


async def set_language(conn: AsyncConnection, account_number: str, language: str, now: datetime) -> None:
    await conn.execute(update(subscribers).where(subscribers.c.account_number == account_number)
                       .values(language=language, updated_at=now))


# --- the low-balance alarm --------------------------------------------------------------------


async def load_alarm(conn: AsyncConnection, account_number: str) -> LowBalanceAlarm | None:
    row = (await conn.execute(
        select(low_balance_alarms.c.armed, low_balance_alarms.c.balance_version)
        .where(low_balance_alarms.c.account_number == account_number)
    )).first()
    return None if row is None else LowBalanceAlarm(armed=bool(row.armed), balance_version=row.balance_version)


async def save_alarm(
    conn: AsyncConnection, account_number: str, alarm: LowBalanceAlarm, now: datetime
) -> None:
    await conn.execute(
        upsert(conn, low_balance_alarms, ["account_number"], ["armed", "balance_version", "updated_at"]),
        {"account_number": account_number, "armed": alarm.armed, "balance_version": alarm.balance_version,
         "updated_at": now},
    )


# --- closed accounts --------------------------------------------------------------------------


async def mark_closed(conn: AsyncConnection, account_number: str, *, closed_by: str, at: datetime) -> None:
    """Kept once: the first of the tariff's and the ledger's word on it. The events parked until
    then arrived while the account was open: they stay tellable."""
    kept = await conn.execute(insert_ignoring_duplicates(conn, closed_accounts),
                              {"account_number": account_number, "closed_by": closed_by, "closed_at": at})
    if kept.rowcount:
        await conn.execute(update(parked_events).where(parked_events.c.account_number == account_number)
                           .values(before_closure=True))


async def is_closed(conn: AsyncConnection, account_number: str) -> bool:
    found = await conn.execute(select(closed_accounts.c.account_number)
                               .where(closed_accounts.c.account_number == account_number))
    return found.first() is not None


# --- parked events ----------------------------------------------------------------------------


async def park(
    conn: AsyncConnection, *, event_id: UUID, account_number: str, event_type: str, envelope: bytes, now: datetime
) -> None:
    await conn.execute(
        insert_ignoring_duplicates(conn, parked_events),
        {"event_id": event_id, "account_number": account_number, "event_type": event_type,
         "envelope": envelope, "parked_at": now},
    )


@dataclass(frozen=True)
class ParkedEvent:
    envelope: bytes
    before_closure: bool


async def take_parked(conn: AsyncConnection, account_number: str) -> list[ParkedEvent]:
    """The account's parked events in the order they were parked, removed from the table."""
    rows = (
        await conn.execute(
            select(parked_events.c.event_id, parked_events.c.envelope, parked_events.c.before_closure)
            .where(parked_events.c.account_number == account_number)
            .order_by(parked_events.c.parked_at, parked_events.c.event_id)
        )
    ).all()
    if rows:
        await conn.execute(delete(parked_events).where(parked_events.c.account_number == account_number))
    return [ParkedEvent(envelope=row.envelope, before_closure=bool(row.before_closure)) for row in rows]


# --- deliveries -------------------------------------------------------------------------------


def encode_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables as JSON that decodes back to the same types (Money, date, datetime)."""
    encoded: dict[str, Any] = {}
    for name, value in variables.items():
        if isinstance(value, Money):
            encoded[name] = {"money": value.model_dump()}
        elif isinstance(value, datetime):
            encoded[name] = {"datetime": value.isoformat()}
        elif isinstance(value, date):
            encoded[name] = {"date": value.isoformat()}
        elif value is None or isinstance(value, (str, int, float, bool)):
            encoded[name] = {"plain": value}
        else:
            raise TypeError(f"template variable {name!r} of type {type(value).__name__} cannot be stored")
    return encoded


def decode_variables(encoded: Mapping[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, wrapped in encoded.items():
        [(kind, value)] = wrapped.items()
        if kind == "money":
            decoded[name] = Money.model_validate(value)
        elif kind == "datetime":
            decoded[name] = datetime.fromisoformat(value)
        elif kind == "date":
            decoded[name] = date.fromisoformat(value)
        else:
            decoded[name] = value
    return decoded


@dataclass(frozen=True, kw_only=True)
class DeliveryAbout:
    """What every delivery row says: which event of whose account it tells of, with which
    template, in which language, by which channel and to where (masked)."""

    account_number: str
    about_event_id: UUID
    about_event_type: str
    template: str
    language: str
    channel: DeliveryChannel
    masked_destination: str


@dataclass(frozen=True, kw_only=True)
class NewDelivery(DeliveryAbout):
    correlation_id: UUID
    variables: Mapping[str, Any]
    sealed_secret: str | None = None
    sealed_contact: str | None = None
    """Where a notice goes when not to the subscriber's contact of the moment it is sent (a
    change of contact is told to the contact replaced): as identity sealed it."""


async def add_deliveries(conn: AsyncConnection, new: Sequence[NewDelivery], now: datetime) -> int:
    """Insert pending deliveries, due now; one already recorded for (event, template, channel)
    is left as it is. Returns how many were added."""
    if not new:
        return 0
    rows = [
        {
            "account_number": item.account_number,
            "about_event_id": item.about_event_id,
            "about_event_type": item.about_event_type,
            "correlation_id": item.correlation_id,
            "template": item.template,
            "language": item.language,
            "channel": item.channel.value,
            "masked_destination": item.masked_destination,
            "variables": encode_variables(item.variables),
            "sealed_secret": item.sealed_secret,
            "sealed_contact": item.sealed_contact,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for item in new
    ]
    result = await conn.execute(insert_ignoring_duplicates(conn, deliveries).returning(deliveries.c.id), rows)
    return len(result.scalars().all())


@dataclass(frozen=True, kw_only=True)
class ClaimedDelivery(DeliveryAbout):
    """A delivery taken for one try: ``attempts`` counts this try."""

    id: int
    correlation_id: UUID
    variables: Mapping[str, Any] = field(repr=False)
    """As stored (:func:`encode_variables`): decoded at send time, so one bad row fails alone."""
    sealed_secret: str | None = field(repr=False)
    sealed_contact: str | None = field(repr=False)
    attempts: int
    status: DeliveryStatus
    status_before: DeliveryStatus
    """``sending``: an earlier sender's lease ran out (it may have sent)."""


async def claim_due(
    conn: AsyncConnection, *, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for sending: each becomes ``sending`` with one more
    attempt counted and a lease until ``now + lease``. A ``sending`` row whose lease ran out
    (its sender crashed) is due again. Other instances skip the rows locked here."""
    status = deliveries.c.status
    due = (
        select(deliveries)
        .where(status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]),
               deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (await conn.execute(due)).all()
    if not rows:
        return []
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_([row.id for row in rows]))
        .values(status=DeliveryStatus.SENDING.value, attempts=deliveries.c.attempts + 1,
                next_attempt_at=now + lease, updated_at=now)
    )
    return [
        ClaimedDelivery(
            id=row.id, account_number=row.account_number, about_event_id=row.about_event_id,
            about_event_type=row.about_event_type, correlation_id=row.correlation_id, template=row.template,
            language=row.language, channel=DeliveryChannel(row.channel), masked_destination=row.masked_destination,
            variables=row.variables, sealed_secret=row.sealed_secret, sealed_contact=row.sealed_contact,
            attempts=row.attempts + 1,
            status=DeliveryStatus.SENDING, status_before=DeliveryStatus(row.status),
        )
        for row in rows
    ]


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    return await conn.scalar(
        select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value])
        )
    )


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: int,
    attempt: int,
    *,
    outcome: str,
    reason: str | None,
    now: datetime,
    status: DeliveryStatus,
    next_attempt_at: datetime | None = None,
    language: str | None = None,
) -> bool:
    """Close a try of a claimed delivery. False when the row is no longer ours (its lease ran
    out and another round took it): then nothing is written."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if reason is not None:
        values["last_error"] = reason[:500]
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if language is not None:
        values["language"] = language
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.attempts == attempt,
               deliveries.c.status == DeliveryStatus.SENDING.value)
        .values(**values)
    )
    if not result.rowcount:
        return False
    await conn.execute(
        insert_ignoring_duplicates(conn, delivery_attempts),
        {"delivery_id": delivery_id, "attempt": attempt, "at": now, "outcome": outcome,
         "reason": None if reason is None else reason[:500]},
    )
    return True


@dataclass(frozen=True, kw_only=True)
class LoggedDelivery(DeliveryAbout):
    """A delivery as the log shows it: no variables, no sealed text."""

    id: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeliveryTry:
    delivery_id: int
    attempt: int
    at: datetime
    outcome: str
    reason: str | None


async def delivery_log(
    conn: AsyncConnection,
    account_number: str,
    *,
    status: DeliveryStatus | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[LoggedDelivery]:
    """An account's deliveries, newest first."""
    query = select(*(deliveries.c[item.name] for item in fields(LoggedDelivery))).where(
        deliveries.c.account_number == account_number
    )
    if status is not None:
        query = query.where(deliveries.c.status == status.value)
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    rows = (await conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit))).all()
    return [
        LoggedDelivery(**{**row._asdict(), "channel": DeliveryChannel(row.channel),
                          "status": DeliveryStatus(row.status)})
        for row in rows
    ]


async def attempts_of(conn: AsyncConnection, delivery_ids: Sequence[int]) -> dict[int, list[DeliveryTry]]:
    if not delivery_ids:
        return {}
    rows = (
        await conn.execute(
            select(delivery_attempts)
            .where(delivery_attempts.c.delivery_id.in_(list(delivery_ids)))
            .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.attempt)
        )
    ).all()
    found: dict[int, list[DeliveryTry]] = {}
    for row in rows:
        found.setdefault(row.delivery_id, []).append(DeliveryTry(**row._asdict()))
    return found
