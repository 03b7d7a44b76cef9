"""Tables every service's database has beside its own: outbox, inbox and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

class UtcDateTime(TypeDecorator[datetime]):
    """A moment stored in UTC and read back timezone-aware, on PostgreSQL and on SQLite (whose
    driver otherwise returns naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass a timezone-aware moment")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


plumbing_metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for a long life.
BigId = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    plumbing_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("key", String(64), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime()),
    Column("error", Text, comment="Why the broker refused it for good (then published_at marks it set aside)"),
    Index("outbox_unpublished", "id", postgresql_where=text("published_at IS NULL"),
          sqlite_where=text("published_at IS NULL")),
    Index("outbox_by_key", "key", "id"),  # one account's events, in order: `billing history`
)

inbox = Table(
    "inbox",
    plumbing_metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", Uuid, primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
    Column("fingerprint", String(64),
           comment="sha256 of the event's type, version and payload when first taken: a reused id with another "
                   "payload is a conflict, not a redelivery (NULL: claimed without one, compared with nothing)"),
    Index("inbox_by_age", "processed_at"),  # the retention deletes the oldest claims
)

revoked_tokens = Table(
    "revoked_tokens",
    plumbing_metadata,
    Column("kind", String(16), primary_key=True, comment="token (a jti) or operator (every token of that operator)"),
    Column("value", String(64), primary_key=True),
    Column("revoked_by", String(64), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=False),
)
"""Identity's revocation list (TokenRevoked), kept by every service: checked on each request
made with a service or operator token."""

dead_letters = Table(
    "dead_letters",
    plumbing_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("consumer", String(100), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", Text),
    Column("value", LargeBinary, nullable=False),
    Column("event_id", Uuid),
    Column("event_type", String(100)),
    Column("code", String(64), nullable=False, comment="Machine code of the refusal: wrong_topic, unknown_account..."),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retried_at", UtcDateTime()),
)
