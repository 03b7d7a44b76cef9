"""The tariff service's tables and queries (SQLAlchemy Core; PostgreSQL and SQLite).

- ``subscriptions``: one row per registered account. The whole :class:`Subscription` state is a
  JSON document (a pydantic model that round-trips); the columns beside it are copies kept for
  queries: region, status, planned plan, debt flag, and ``next_close_day``, the billing clock's
  cursor (the first day not closed yet; NULL until a plan is activated, and once closed).
- ``closed_days``: (account, day) unique. A day is closed for an account in the transaction that
  claims this row, so it is charged once even if it is closed twice, by two instances at once,
  or again after a restart in the middle of a close. The billing clock closes a batch of
  accounts per transaction (:func:`lock_due`, :func:`claim_days`, :func:`save_many`).
- ``early_balances``: BalanceChanged events for accounts not registered here (yet), the newest
  by account_version; the balance is applied when SubscriberRegistered arrives.
- ``catalog_versions``: every catalog version this service has loaded, and when first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.db import any_of, bulk_insert, bulk_update, insert_ignoring_duplicates, upsert
from billing_events.schema import UtcDateTime
from tariff.domain import AccountBalance, Subscription

metadata = MetaData()

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("region", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("plan", String(40), index=True, comment="The planned plan (after scheduled changes)"),
    Column("debt_blocked", Boolean, nullable=False, default=False),
    Column("next_close_day", Date, comment="First billing day not closed yet; NULL: no plan"),
    Column("state", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("subscriptions_due", "next_close_day", "account_number"),
)

closed_days = Table(
    "closed_days",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("charges", Integer, nullable=False, comment="ChargeApplied events published for it"),
    Column("charged_minor", BigInteger, nullable=False, comment="Their sum, in minor units"),
    Column("closed_at", UtcDateTime(), nullable=False),
)

early_balances = Table(
    "early_balances",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("balance", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("source", String(500), nullable=False),
    Column("loaded_at", UtcDateTime(), nullable=False),
)


# Subscriptions


def _columns(state: Subscription) -> dict[str, Any]:
    return {
        "region": state.region,
        "status": state.status.value,
        "plan": state.planned_terms.plan,
        "debt_blocked": state.debt_blocked,
        "state": state.model_dump(mode="json"),
    }


async def insert_subscription(conn: AsyncConnection, state: Subscription, now: datetime) -> bool:
    """Store a newly registered account; False (and nothing written) if it already exists."""
    return state.account_number in await insert_subscriptions(conn, [state], now)


async def insert_subscriptions(
    conn: AsyncConnection, states: Sequence[Subscription], now: datetime
) -> set[str]:
    """Store newly registered accounts in one statement; the accounts not known before come back
    (an account that exists is left as it is)."""
    rows = [
        {"account_number": state.account_number, **_columns(state), "next_close_day": None,
         "created_at": now, "updated_at": now}
        for state in states
    ]
    return set(await bulk_insert(conn, subscriptions, rows, ignore_duplicates=True,
                                 returning="account_number"))


async def load(
    conn: AsyncConnection, account_number: str, *, for_update: bool = False
) -> Subscription | None:
    found = await load_with_cursor(conn, account_number, for_update=for_update)
    return found[0] if found else None


async def load_with_cursor(
    conn: AsyncConnection, account_number: str, *, for_update: bool = False
) -> tuple[Subscription, date | None] | None:
    """The state and the billing cursor; ``for_update`` locks the row until commit (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(subscriptions.c.state, subscriptions.c.next_close_day).where(
        subscriptions.c.account_number == account_number
    )
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Subscription.model_validate(row.state), row.next_close_day


async def save(
    conn: AsyncConnection,
    state: Subscription,
    now: datetime,
    *,
    next_close_day: date | None = None,
    stop_billing: bool = False,
) -> None:
    """Write the state; ``next_close_day`` (when given) moves the billing cursor, ``stop_billing``
    removes it (a closed account: the billing clock never visits it again)."""
    values = {**_columns(state), "updated_at": now}
    if next_close_day is not None:
        values["next_close_day"] = next_close_day
    if stop_billing:
        values["next_close_day"] = None
    await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.account_number == state.account_number)
        .values(**values)
    )


def _due(until: date, after: str) -> Any:
    """Accounts with at least one day up to ``until`` not closed yet, after ``after``, in account
    order (keyset paging)."""
    return (
        select(subscriptions.c.account_number)
        .where(
            subscriptions.c.next_close_day.is_not(None),
            subscriptions.c.next_close_day <= until,
            subscriptions.c.account_number > after,
        )
        .order_by(subscriptions.c.account_number)
    )


async def due_accounts(
    conn: AsyncConnection, until: date, *, after: str = "", limit: int = 500
) -> list[str]:
    """The accounts :func:`_due` names, without locking them."""
    rows = await conn.execute(_due(until, after).limit(limit))
    return list(rows.scalars().all())


async def lock_due(
    conn: AsyncConnection, until: date, *, after: str = "", upto: str | None = None,
    excluding: Sequence[str] = (), limit: int = 1000,
) -> list[tuple[Subscription, date]]:
    """Up to ``limit`` due accounts after ``after`` (up to ``upto`` when given; none of
    ``excluding``), with their states and cursors, locked until commit like
    :func:`load_with_cursor` locks one.

    The rows are locked in account order, so two closers wait for each other rather than
    deadlock; a command locks a single row and waits for the batch (or the batch for it), and
    the batch reads the row as the command left it. A row a closer moved past ``until``
    meanwhile drops out (PostgreSQL checks the condition again on the row it waited for)."""
    query = _due(until, after).add_columns(subscriptions.c.state, subscriptions.c.next_close_day)
    if upto is not None:
        query = query.where(subscriptions.c.account_number <= upto)
    if excluding:
        query = query.where(~any_of(conn, subscriptions.c.account_number, excluding))
    rows = await conn.execute(query.limit(limit).with_for_update())
    return [(Subscription.model_validate(row.state), row.next_close_day) for row in rows]


async def save_many(
    conn: AsyncConnection, saved: Sequence[tuple[Subscription, date]], now: datetime
) -> None:
    """Write each state with its billing cursor, in one statement: :func:`save` for many accounts."""
    await bulk_update(conn, subscriptions, ["account_number"], [
        {"account_number": state.account_number, **_columns(state), "next_close_day": cursor,
         "updated_at": now}
        for state, cursor in saved
    ])


# Closed days


async def claim_day(
    conn: AsyncConnection, account_number: str, day: date, *, charges: int, charged_minor: int,
    now: datetime,
) -> bool:
    """Record the day as closed for the account; False if it was closed before."""
    claimed = await claim_days(conn, [(account_number, day, charges, charged_minor)], now=now)
    return account_number in claimed


async def claim_days(
    conn: AsyncConnection, days: Sequence[tuple[str, date, int, int]], *, now: datetime
) -> set[str]:
    """Record each (account, day, charges, charged_minor) as closed, in one statement; the
    accounts whose day was not closed before come back (one day per account)."""
    rows = [
        {"account_number": account, "day": day, "charges": charges, "charged_minor": minor,
         "closed_at": now}
        for account, day, charges, minor in days
    ]
    return set(await bulk_insert(conn, closed_days, rows, ignore_duplicates=True,
                                 returning="account_number"))


async def is_closed(conn: AsyncConnection, account_number: str, day: date) -> bool:
    found = await conn.scalar(
        select(closed_days.c.day).where(
            closed_days.c.account_number == account_number, closed_days.c.day == day
        )
    )
    return found is not None


async def closed_days_of(conn: AsyncConnection, account_number: str) -> list[date]:
    rows = await conn.execute(
        select(closed_days.c.day)
        .where(closed_days.c.account_number == account_number)
        .order_by(closed_days.c.day)
    )
    return list(rows.scalars().all())


# Balances of accounts not registered here yet


async def keep_early_balance(
    conn: AsyncConnection, account_number: str, balance: AccountBalance, now: datetime
) -> None:
    await conn.execute(
        upsert(conn, early_balances, ["account_number"], ["balance", "updated_at"]),
        [{"account_number": account_number, "balance": balance.model_dump(mode="json"),
          "updated_at": now}],
    )


async def early_balance(conn: AsyncConnection, account_number: str) -> AccountBalance | None:
    """The balance kept for the account, if any."""
    found = await conn.scalar(
        select(early_balances.c.balance).where(early_balances.c.account_number == account_number)
    )
    return None if found is None else AccountBalance.model_validate(found)


async def take_early_balance(conn: AsyncConnection, account_number: str) -> AccountBalance | None:
    """The balance kept for the account, removed from the waiting table."""
    found = await early_balance(conn, account_number)
    if found is None:
        return None
    await conn.execute(
        delete(early_balances).where(early_balances.c.account_number == account_number)
    )
    return found


# Catalog versions


async def record_catalog_version(
    conn: AsyncConnection, version: int, source: str, now: datetime
) -> int | None:
    """Remember the loaded version; return the highest version loaded before it (if any)."""
    previous = await conn.scalar(select(func.max(catalog_versions.c.version)))
    await conn.execute(
        insert_ignoring_duplicates(conn, catalog_versions),
        [{"version": version, "source": source[:500], "loaded_at": now}],
    )
    return previous


async def catalog_versions_loaded(conn: AsyncConnection) -> Sequence[int]:
    rows = await conn.execute(
        select(catalog_versions.c.version).order_by(catalog_versions.c.version)
    )
    return list(rows.scalars().all())
