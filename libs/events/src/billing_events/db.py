"""One way to reach a service's database, PostgreSQL or SQLite, through SQLAlchemy Core.

Services write through :meth:`Database.transaction`: a connection inside one transaction,
committed when the block ends. Transient failures (a dropped connection, a locked SQLite file)
are retried by :func:`retry_transient`; anything else propagates.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from billing_events.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 5, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            _make_sqlite_transactional(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (no write transaction held open)."""
        async with self.engine.connect() as conn:
            yield conn

    async def create_schema(self, *metadatas: MetaData) -> None:
        async with self.engine.begin() as conn:
            for metadata in metadatas:
                await conn.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so two writers queue instead of deadlocking.

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
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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


def is_transient(exc: BaseException) -> bool:
    """Failures that a retry can cure: the database went away or is busy."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await action()
        except Exception as exc:
            if not is_transient(exc) or loop.time() + delay > deadline:
                raise
            log.warning("transient failure, retrying", what=what, attempt=attempt,
                        error=type(exc).__name__, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2) * random.uniform(0.5, 1.0)


def rows_as_dicts(rows: Iterable[Any]) -> list[Mapping[str, Any]]:
    return [row._mapping for row in rows]
