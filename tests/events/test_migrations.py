"""Each service's schema history against its models, on SQLite and PostgreSQL.

The models (``store.metadata`` beside the shared tables) are what ``create_schema`` makes and
what the code reads; the migrations are what production databases get. These tests hold the two
together: a model changed without a migration fails here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from billing_events import inbox, migrations
from billing_events.clock import ManualClock
from billing_events.db import Database
from billing_events.schema import inbox as inbox_table
from billing_events.schema import plumbing_metadata
from ledger.app import build_runtime as build_ledger
from ledger.settings import LedgerSettings
from sqlalchemy import func, inspect, select, text

SERVICES = ("identity", "ledger", "notifier", "tariff")


def _differences(sync_conn: Any, service: str) -> list[Any]:
    store = importlib.import_module(f"{service}.store")
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(context, [plumbing_metadata, store.metadata])


def _indexes(sync_conn: Any, table: str) -> set[str]:
    return {index["name"] for index in inspect(sync_conn).get_indexes(table)}


@pytest.mark.parametrize("service", SERVICES)
async def test_the_migrations_make_what_the_models_describe(service: str, database_url: str) -> None:
    db = Database(database_url)
    try:
        done = await migrations.upgrade(db, service)
        assert (done.before, done.after) == (None, migrations.head(service))
        async with db.connect() as conn:
            assert await conn.run_sync(_differences, service) == []
    finally:
        await db.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_every_step_goes_down_and_up_again(service: str, database_url: str) -> None:
    db = Database(database_url)
    try:
        await migrations.upgrade(db, service)
        steps = []
        while (after := (await migrations.downgrade(db, service, "-1")).after) != migrations.BASELINE:
            steps.append(after)
        assert steps == sorted(steps, reverse=True), "each step down goes back one revision"
        async with db.connect() as conn:
            assert "inbox_by_age" not in await conn.run_sync(_indexes, "inbox")
        assert (await migrations.downgrade(db, service, "base")).after is None
        async with db.connect() as conn:
            assert await conn.run_sync(lambda c: inspect(c).get_table_names()) == ["alembic_version"]
        await migrations.upgrade(db, service)
        async with db.connect() as conn:
            assert await conn.run_sync(_differences, service) == []
    finally:
        await db.dispose()


async def test_a_database_made_before_migrations_is_taken_from_the_baseline(database_url: str) -> None:
    """Tables made at start by the versions before migrations (the baseline's schema, no version
    recorded): recorded at the baseline, then upgraded (the inbox gains its index)."""
    db = Database(database_url)
    try:
        await migrations.upgrade(db, "ledger", migrations.BASELINE)
        async with db.transaction() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))
        assert await migrations.revision_of(db) is None
        done = await migrations.upgrade(db, "ledger")
        assert (done.before, done.after) == (migrations.BASELINE, migrations.head("ledger"))
        async with db.connect() as conn:
            assert await conn.run_sync(_differences, "ledger") == []
    finally:
        await db.dispose()


async def test_a_service_refuses_a_database_behind_its_code(make_settings: Any) -> None:
    settings = await make_settings(LedgerSettings, migrate_on_start=False)
    db = Database(settings.database_url)
    try:
        await migrations.upgrade(db, "ledger", migrations.BASELINE)
    finally:
        await db.dispose()
    runtime = build_ledger(settings, ManualClock(datetime(2026, 3, 1, tzinfo=UTC)))
    with pytest.raises(migrations.SchemaBehind, match=r"at revision 0001.*run `python -m ledger migrate`"):
        await runtime.start()
    await runtime.db.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_the_head_read_from_the_revision_files_is_alembics(service: str) -> None:
    assert migrations.head(service) == ScriptDirectory.from_config(migrations.config(service)).get_current_head()


async def test_the_revision_read_with_a_query_is_alembics(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.connect() as conn:
            assert await conn.run_sync(migrations.current) is None
        await migrations.upgrade(db, "ledger", migrations.BASELINE)
        async with db.connect() as conn:
            recorded = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
            assert recorded == migrations.BASELINE == await conn.run_sync(migrations.current)
    finally:
        await db.dispose()


def test_a_service_imports_alembic_only_to_migrate() -> None:
    """Every process of a service would otherwise keep alembic's modules (about 7 MiB)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ledger.app; print(sorted(m for m in sys.modules if m.startswith('alembic')))"],
        capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


async def test_the_inbox_forgets_claims_older_than_its_retention(database_url: str) -> None:
    db = Database(database_url)
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    try:
        await migrations.upgrade(db, "ledger")
        old, recent = uuid4(), uuid4()
        async with db.transaction() as conn:
            await inbox.claim(conn, "ledger", [old], clock=clock)
        clock.advance(timedelta(days=31))
        async with db.transaction() as conn:
            await inbox.claim(conn, "ledger", [recent], clock=clock)
        assert await inbox.prune(db, before=clock.now() - timedelta(days=30), chunk=1) == 1
        async with db.connect() as conn:
            kept = set((await conn.execute(select(inbox_table.c.event_id))).scalars())
            assert kept == {recent}
            assert await conn.scalar(select(func.count()).select_from(inbox_table)) == 1
    finally:
        await db.dispose()
