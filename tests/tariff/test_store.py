"""The tariff store on both databases, and the service's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing_contracts.catalog.ledger import PaymentType
from billing_events.db import Database
from billing_contracts.money import Money
from tariff import store
from tariff.catalog import DEFAULT_CATALOG_PATH, Catalog
from tariff.domain import AccountBalance, activate, register, start_voluntary_block
from tariff.context import billing_day
from tariff.settings import TariffSettings

NOW = datetime(2026, 5, 10, 9, tzinfo=UTC)
A, B, C = "100000000016", "100000000024", "100000000032"


@pytest.fixture
async def db(postgres_databases: object, database_url: str) -> AsyncIterator[Database]:
    # postgres_databases first: the plugin's database_url can only reach it once it is set up
    database = Database(database_url)
    await database.create_schema(store.metadata)
    yield database
    await database.dispose()


async def test_a_subscription_round_trips_and_registers_once(db: Database, catalog: Catalog) -> None:
    state = activate(register(A, "moscow", catalog), catalog, "internet-100", date(2026, 5, 1)).state
    state = state.model_copy(update={"balance": AccountBalance(main=Money(minor=90000), credit_limit=Money.zero())})
    state = start_voluntary_block(state, catalog, 3, date(2026, 5, 10), NOW).state
    async with db.transaction() as conn:
        assert await store.insert_subscription(conn, state, NOW)
        assert not await store.insert_subscription(conn, register(A, "spb", catalog), NOW)
    async with db.transaction() as conn:
        loaded, cursor = await store.load_with_cursor(conn, A, for_update=True)
        assert loaded == state and cursor is None
        await store.save(conn, loaded, NOW, next_close_day=date(2026, 5, 2))
        assert await store.load(conn, B) is None
    async with db.connect() as conn:
        row = (await conn.execute(store.subscriptions.select())).one()
    assert (row.region, row.status, row.plan, row.next_close_day) == (
        "moscow", "active", "internet-100", date(2026, 5, 2)
    )


async def test_due_accounts_and_days_closed_once(db: Database, catalog: Catalog) -> None:
    async with db.transaction() as conn:
        for account, cursor in ((C, date(2026, 5, 1)), (A, date(2026, 5, 3)), (B, None)):
            await store.insert_subscription(conn, register(account, "moscow", catalog), NOW)
            if cursor:
                await store.save(conn, register(account, "moscow", catalog), NOW, next_close_day=cursor)
    async with db.transaction() as conn:
        assert await store.due_accounts(conn, date(2026, 5, 2)) == [C]
        assert await store.due_accounts(conn, date(2026, 5, 3)) == [A, C]
        assert await store.due_accounts(conn, date(2026, 5, 3), after=A) == [C]
        assert await store.claim_day(conn, A, date(2026, 5, 3), charges=2, charged_minor=1900, now=NOW)
        assert not await store.claim_day(conn, A, date(2026, 5, 3), charges=2, charged_minor=1900, now=NOW)
        assert await store.claim_day(conn, C, date(2026, 5, 3), charges=0, charged_minor=0, now=NOW)
        assert await store.is_closed(conn, A, date(2026, 5, 3))
        assert not await store.is_closed(conn, A, date(2026, 5, 4))
        assert await store.closed_days_of(conn, A) == [date(2026, 5, 3)]


async def test_early_balances_and_catalog_versions(db: Database) -> None:
    first = AccountBalance(main=Money(minor=-5), credit_limit=Money.zero())
    latest = AccountBalance(main=Money(minor=-7), payment_type=PaymentType.CREDIT, credit_limit=Money(minor=100))
    async with db.transaction() as conn:
        await store.keep_early_balance(conn, A, first, NOW)
        await store.keep_early_balance(conn, A, latest, NOW + timedelta(seconds=1))
    async with db.transaction() as conn:
        assert await store.take_early_balance(conn, A) == latest
        assert await store.take_early_balance(conn, A) is None
        assert await store.record_catalog_version(conn, 2, "a.yaml", NOW) is None
        assert await store.record_catalog_version(conn, 2, "a.yaml", NOW) == 2
        assert await store.record_catalog_version(conn, 1, "old.yaml", NOW) == 2
        assert await store.catalog_versions_loaded(conn) == [1, 2]


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = TariffSettings()
    assert defaults.catalog_path == DEFAULT_CATALOG_PATH and defaults.catalog_path.exists()
    assert defaults.billing_time_zone == "Europe/Moscow" and defaults.billing_clock_enabled
    monkeypatch.setenv("BILLING_TARIFF_BILLING_TIME_ZONE", "UTC")
    monkeypatch.setenv("BILLING_TARIFF_BILLING_TICK_SECONDS", "0.5")
    monkeypatch.setenv("BILLING_TARIFF_CATALOG_PATH", "/etc/billing/catalog.yaml")
    configured = TariffSettings()
    assert configured.billing_time_zone == "UTC" and configured.billing_tick_seconds == 0.5
    assert configured.catalog_path == Path("/etc/billing/catalog.yaml")
    with pytest.raises(ValidationError, match="unknown time zone"):
        TariffSettings(billing_time_zone="Mars/Olympus")
    with pytest.raises(ValidationError):
        TariffSettings(billing_tick_seconds=0)


def test_the_billing_day_is_the_date_in_the_billing_zone() -> None:
    late_evening_utc = datetime(2026, 1, 31, 21, 30, tzinfo=UTC)  # 00:30 on Feb 1 in Moscow
    assert billing_day(late_evening_utc, TariffSettings().zone) == date(2026, 2, 1)
    assert billing_day(late_evening_utc, TariffSettings(billing_time_zone="UTC").zone) == date(2026, 1, 31)
