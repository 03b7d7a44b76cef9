"""Operations on the ledger's journal, run with the ledger's own service layer and settings.

These are reads and projection rebuilds of the ledger's own database (where a progress bar and
a drift report belong on the operator's terminal); commands that change money go through the
ledger's API like every other command.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from billing_cli.config import CliSettings
from billing_cli.output import Exit, fail
from billing_events.db import Database
from billing_events.topics import TopicNames
from ledger import store
from ledger.context import LedgerContext
from ledger.settings import LedgerSettings


@asynccontextmanager
async def ledger_context() -> AsyncIterator[LedgerContext]:
    settings = LedgerSettings()
    url = settings.resolved_database_url()
    db = Database(url)
    try:
        try:
            async with db.connect() as conn:
                await conn.execute(select(func.count()).select_from(store.journal))
        except (OperationalError, DBAPIError, OSError) as exc:
            fail(f"cannot reach the ledger database ({_safe(url)}): {type(exc).__name__}", Exit.UNREACHABLE)
        yield LedgerContext(db=db, clock=CliSettings().clock(), topics=TopicNames(settings.kafka.topic_prefix))
    finally:
        await db.dispose()


def _safe(url: str) -> str:
    """The URL without a password."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}@{host}" if at else url
