"""One way to reach a service's database, PostgreSQL or SQLite, through SQLAlchemy Core.

Services write through :meth:`Database.transaction`: a connection inside one transaction,
committed when the block ends. Transient failures (a dropped connection, a locked SQLite file)
are retried by :func:`retry_transient`; anything else propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    MetaData,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_before_delay

from billing_events.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)


SCHEMA_LOCK_KEY = 0x62696C6C  # "bill": one key for every service, each has a database of its own


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 5, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: an error's text (and so every logged traceback) names the statement,
        # never the values it carried (a phone, a sealed secret, a passport hash).
        options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            _make_sqlite_transactional(self.engine)
        self.waiting = 0
        """Tasks waiting for a connection now (the pool's own count does not say)."""
        self._in_memory_turn = asyncio.Lock() if self.is_sqlite and _in_memory(url) else None
        """A database in memory lives in its one connection, which tasks share: they take turns
        with it, as they would queue for SQLite's one writer, instead of meeting inside each
        other's transactions."""

    def in_use(self) -> int:
        """Connections checked out of the pool now."""
        checked_out = getattr(self.engine.sync_engine.pool, "checkedout", None)
        return int(checked_out()) if checked_out is not None else 0

    @asynccontextmanager
    async def _acquired(self, acquire: AbstractAsyncContextManager[AsyncConnection]) -> AsyncIterator[AsyncConnection]:
        """``acquire`` entered, counted in :attr:`waiting` until the pool hands a connection."""
        async with AsyncExitStack() as stack:
            self.waiting += 1
            try:
                if self._in_memory_turn is not None:
                    await stack.enter_async_context(self._in_memory_turn)
                conn = await stack.enter_async_context(acquire)
            finally:
                self.waiting -= 1
            yield conn

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._acquired(self.engine.begin()) as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (no write transaction held open). On SQLite its transaction
        begins deferred: under WAL it reads the last commit and takes no lock a writer waits for."""
        async with self._acquired(self.engine.connect()) as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(**{_READS_ONLY: True})
            yield conn

    async def create_schema(self, *metadatas: MetaData) -> None:
        """Create missing tables, and missing indexes of existing tables (a database made by an
        older version gains them). Instances starting together on a new database take turns
        (an advisory lock): two concurrent ``CREATE TABLE`` of one name fail the second."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            for metadata in metadatas:
                await conn.run_sync(metadata.create_all)
                for table in metadata.sorted_tables:
                    for index in table.indexes:
                        await conn.run_sync(index.create, checkfirst=True)

    @asynccontextmanager
    async def leading(self, key: int, *, poll_seconds: float) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Be the one process of the service that holds ``key``: a PostgreSQL session advisory
        lock, on a connection of its own kept for the block; while another process holds it,
        wait (trying every ``poll_seconds``). Yields ``still_leading()``, which raises when that
        connection is gone (and the lock with it), so the leader's loop ends instead of running
        beside a new leader. The lock ends with the block, or with the process: a SIGKILLed
        leader's connection closes and a standby takes over. SQLite: one process, always leading."""
        if self.dialect != "postgresql":
            async def alone() -> None:
                return None

            yield alone
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # never idle in a transaction
            while not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                await asyncio.sleep(poll_seconds)

            async def still_leading() -> None:
                await conn.execute(text("SELECT 1"))

            try:
                yield still_leading
            finally:
                with contextlib.suppress(Exception):  # a broken connection released it already
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    async def dispose(self) -> None:
        await self.engine.dispose()


_READS_ONLY = "billing_reads_only"
"""The execution option :meth:`Database.connect` sets: SQLite begins its transaction deferred."""


def _in_memory(url: str) -> bool:
    """``sqlite+aiosqlite://`` or ``...:///:memory:``: a database with no file."""
    return url.split("://", 1)[1] in ("", "/:memory:")


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so two writers queue instead of deadlocking (a
    connection for reads begins deferred: it never upgrades, so it cannot deadlock a writer).

    The sqlite3 driver's own transaction handling defers BEGIN and breaks SAVEPOINT; the
    SQLAlchemy documentation's recipe hands transaction control back to SQLAlchemy.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READS_ONLY) else "BEGIN IMMEDIATE")


def insert_ignoring_duplicates(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that skips rows whose unique key already exists, in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def upsert(conn: AsyncConnection, table: Table, keys: Sequence[str], update: Iterable[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET each of ``update`` to the new value."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update}
    )


# --- bulk statements -----------------------------------------------------------------------
# A batch of a thousand events writes thousands of rows. On PostgreSQL these go as ONE statement
# over arrays (``unnest``), so the cost is one round trip and one plan instead of a row-by-row
# executemany; SQLite takes the ordinary executemany, which is what it is fast at anyway. A
# column with the same value in every row (the batch's timestamp, the consumer's name, a
# currency) is sent once, as a scalar: encoding array elements is most of the client's cost.


def _sql_type(conn: AsyncConnection, table: Table, name: str) -> str:
    column = table.c[name]
    if isinstance(column.type, JSON):
        return "TEXT"  # sent as JSON text, cast below
    return column.type.compile(dialect=conn.dialect)


SCALAR_FROM_ROWS = 32
"""Below this many rows every column stays an array: the statement keeps one shape (and one
prepared plan per connection) for the small batches of quiet hours and single commands."""


def _same_in_every_row(values: list[Any]) -> bool:
    first = values[0]
    kind = type(first)
    # first and last compared before the whole column: a column of ids fails at once. The type
    # too, so that 1 and True, or Decimal("1.0") and Decimal("1.00"), stay apart.
    return (len(values) >= SCALAR_FROM_ROWS and first == values[-1]
            and all(type(value) is kind and value == first for value in values))


def _unnest(
    conn: AsyncConnection, table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(``unnest(CAST(:c0 AS type[]), ...) AS u(c0, ...)``, each column's SQL expression over
    it, the parameters). A column that is the same in every row is a scalar parameter instead."""
    params = _columns(conn, table, names, rows)
    constant = {f"c{i}" for i in range(len(names)) if _same_in_every_row(params[f"c{i}"])}
    if len(constant) == len(names):  # unnest needs one array: it makes the rows
        constant.discard("c0")
    arrays, array_names, expressions = [], [], {}
    for i, name in enumerate(names):
        param, sql_type = f"c{i}", _sql_type(conn, table, name)
        if param in constant:
            params[param] = params[param][0]
            value = f"CAST(:{param} AS {sql_type})"
        else:
            arrays.append(f"CAST(:{param} AS {sql_type}[])")
            array_names.append(param)
            value = f"u.{param}"
        expressions[name] = f"CAST({value} AS JSON)" if isinstance(table.c[name].type, JSON) else value
    return f"unnest({', '.join(arrays)}) AS u({', '.join(array_names)})", expressions, params


def _columns(
    conn: AsyncConnection, table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for i, name in enumerate(names):
        values = [row[name] for row in rows]
        column_type = table.c[name].type
        if isinstance(column_type, TypeDecorator):  # its checks and conversions still apply
            values = [column_type.process_bind_param(v, conn.dialect) for v in values]
        if isinstance(column_type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        params[f"c{i}"] = values
    return params


async def bulk_insert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_duplicates: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """INSERT ``rows`` (all with the same keys) in one statement; with ``ignore_duplicates`` rows
    whose unique key exists are skipped. Returns the ``returning`` column of the inserted rows."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        statement: Any = insert_ignoring_duplicates(conn, table) if ignore_duplicates else insert(table)
        if returning is None:
            await conn.execute(statement, list(rows))
            return []
        return list((await conn.execute(statement.returning(table.c[returning]), list(rows))).scalars())
    names = list(rows[0])
    source, expressions, params = _unnest(conn, table, names, rows)
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = f"INSERT INTO {table.name} ({quoted}) SELECT {', '.join(expressions.values())} FROM {source}"
    if ignore_duplicates:
        sql += " ON CONFLICT DO NOTHING"
    if returning is not None:
        sql += f' RETURNING "{returning}"'
    result = await conn.execute(text(sql), params)
    return list(result.scalars()) if returning is not None else []


async def bulk_update(
    conn: AsyncConnection, table: Table, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE one row per entry of ``rows`` (found by its ``keys`` columns) to the entry's other values."""
    if not rows:
        return
    names = list(rows[0])
    values = [n for n in names if n not in keys]
    if conn.dialect.name != "postgresql":
        statement = update(table).where(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
        statement = statement.values({n: bindparam(f"value_{n}") for n in values})
        await conn.execute(
            statement, [{**{f"key_{k}": row[k] for k in keys}, **{f"value_{n}": row[n] for n in values}} for row in rows]
        )
        return
    source, expressions, params = _unnest(conn, table, names, rows)
    assignments = ", ".join(f'"{n}" = {expressions[n]}' for n in values)
    match = " AND ".join(f'{table.name}."{k}" = {expressions[k]}' for k in keys)
    await conn.execute(text(f"UPDATE {table.name} SET {assignments} FROM {source} WHERE {match}"), params)


def any_of(conn: AsyncConnection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL one array parameter (``= ANY(:values)``), so the
    statement text (and its prepared plan) does not change with the number of values."""
    if conn.dialect.name != "postgresql":
        return column.in_(list(values))
    return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""Deadlock detected, serialization failure: PostgreSQL undid the whole transaction to break a
conflict between two of them, and running it again is the cure."""


def is_transient(exc: BaseException) -> bool:
    """Failures that a retry can cure: the database went away, is busy, or undid the transaction
    to break a conflict."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    ):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError)):
        return True
    text = str(exc).lower()
    return "database is locked" in text or "connection" in text and "closed" in text


async def retry_transient(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_wait: float = 60.0,
    first_delay: float = 0.05,
    max_delay: float = 5.0,
) -> T:
    """Run ``action`` until it succeeds, retrying transient failures with jittered backoff.

    After ``max_wait`` seconds of failures the last error propagates: the caller's consumer
    then rewinds its offsets and the broker redelivers, so nothing is lost either way.
    """

    def note(attempt: RetryCallState) -> None:
        failure = attempt.outcome.exception() if attempt.outcome else None
        log.warning("transient failure, retrying", what=what, attempt=attempt.attempt_number,
                    error=type(failure).__name__, delay_s=round(attempt.upcoming_sleep, 3))

    retrying = AsyncRetrying(retry=retry_if_exception(is_transient), stop=stop_before_delay(max_wait),
                             wait=doubling_backoff(first_delay, max_delay), before_sleep=note, reraise=True)
    return await retrying(awaiting(action))


def awaiting(action: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """``action`` as a coroutine function: tenacity awaits only what it sees is one (a lambda
    returning a coroutine is not; it would hand the coroutine back unawaited)."""

    async def awaited() -> T:
        return await action()

    return awaited


def doubling_backoff(first: float, ceiling: float) -> Callable[[RetryCallState], float]:
    """Wait ``first``, then twice as long each time (at most ``ceiling``), jittered down to half
    so that instances failing together do not retry together."""

    def wait(attempt: RetryCallState) -> float:
        if attempt.attempt_number == 1:
            return first
        return min(ceiling, first * 2 ** (attempt.attempt_number - 1)) * random.uniform(0.5, 1.0)

    return wait