"""``bulk_insert`` and ``bulk_update`` write what row-by-row statements would, on both databases,
whichever columns are the same in every row (sent once, as scalars, on PostgreSQL, from
``SCALAR_FROM_ROWS`` rows on: the batches below use that many)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, select

from billing_events.db import SCALAR_FROM_ROWS, Database, bulk_insert, bulk_update
from billing_events.schema import UtcDateTime

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("author", String(20)),
    Column("written_at", UtcDateTime()),
    Column("tags", JSON),
)
NOON = datetime(2026, 11, 25, 12, tzinfo=UTC)
IDS = range(1, SCALAR_FROM_ROWS + 1)


@pytest.fixture(params=["postgresql", "sqlite"])
async def db(request: pytest.FixtureRequest, postgres_databases: Any, tmp_path: Any) -> Any:
    url = await postgres_databases.create() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/n.db"
    database = Database(url)
    await database.create_schema(metadata)
    yield database
    await database.dispose()


async def stored(db: Database) -> list[tuple[Any, ...]]:
    async with db.connect() as conn:
        return [tuple(row) for row in await conn.execute(select(notes).order_by(notes.c.id))]


@pytest.mark.parametrize("rows", [
    pytest.param([{"id": i, "author": "ops", "written_at": NOON, "tags": {"k": 1}} for i in IDS],
                 id="constant text, time and JSON"),
    pytest.param([{"id": i, "author": None, "written_at": NOON + timedelta(seconds=i), "tags": [i]} for i in IDS],
                 id="constant NULL, varying time and JSON"),
    pytest.param([{"id": 7, "author": "one", "written_at": NOON, "tags": None}], id="a single row"),
])
async def test_inserted_rows_read_back_as_written(db: Database, rows: list[dict[str, Any]]) -> None:
    async with db.transaction() as conn:
        returned = await bulk_insert(conn, notes, rows, returning="id")
    assert sorted(returned) == [row["id"] for row in rows]
    assert await stored(db) == [(r["id"], r["author"], r["written_at"], r["tags"]) for r in rows]


async def test_rows_that_are_all_alike_insert_once_each_or_are_skipped(db: Database) -> None:
    row = {"id": 1, "author": "ops", "written_at": NOON, "tags": {}}
    async with db.transaction() as conn:
        assert await bulk_insert(conn, notes, [row] * SCALAR_FROM_ROWS, ignore_duplicates=True, returning="id") == [1]
    assert await stored(db) == [(1, "ops", NOON, {})]


async def test_updates_with_constant_and_varying_values(db: Database) -> None:
    later = NOON + timedelta(days=1)
    odd = [i for i in range(1, 2 * SCALAR_FROM_ROWS + 1) if i % 2]
    async with db.transaction() as conn:
        await bulk_insert(conn, notes, [{"id": i, "author": "a", "written_at": NOON, "tags": None}
                                        for i in range(1, 2 * SCALAR_FROM_ROWS + 1)])
        await bulk_update(conn, notes, ["id"], [{"id": i, "author": f"b{i}", "written_at": later, "tags": {"n": 1}}
                                                for i in odd])
    assert await stored(db) == [(i, f"b{i}", later, {"n": 1}) if i % 2 else (i, "a", NOON, None)
                                for i in range(1, 2 * SCALAR_FROM_ROWS + 1)]


def test_equal_values_of_different_types_are_not_one_constant() -> None:
    from billing_events.db import _same_in_every_row

    assert _same_in_every_row(["RUB"] * SCALAR_FROM_ROWS)
    assert not _same_in_every_row([1] + [True] * (SCALAR_FROM_ROWS - 1))
    assert not _same_in_every_row(["RUB"] * (SCALAR_FROM_ROWS - 1))  # too few rows to bother
