"""Identity's revocation list, as every service keeps it.

Identity owns the list: ``POST /identity/revocations`` (or ``billing token revoke``) records a
revoked token (its ``jti``) or a revoked operator and publishes ``TokenRevoked``; every other
service's consumer takes that event into its own ``revoked_tokens`` table (plumbing, like the
inbox), and each request made with a service or operator token is checked against it. A
revocation is never undone: a revoked operator's name is retired (the person gets a new name
and key), a revoked token stays refused until it expires anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events import metrics
from billing_contracts.catalog.identity import RevokedKind, TokenRevoked
from billing_events.clock import Clock
from billing_events.db import Database, bulk_insert
from billing_events.schema import revoked_tokens

if TYPE_CHECKING:  # a consumer keeps the list without importing the HTTP door's token checks
    from billing_events.auth import Principal

EVENT_TYPE = TokenRevoked.event_type


async def keep(conn: AsyncConnection, revocations: Sequence[TokenRevoked], *, clock: Clock, service: str) -> None:
    """Add revocations to this service's list; one known already changes nothing."""
    now = clock.now()
    await bulk_insert(conn, revoked_tokens, [
        {"kind": r.kind.value, "value": r.value, "revoked_by": r.revoked_by, "revoked_at": now} for r in revocations
    ], ignore_duplicates=True)
    metrics.TOKENS_REVOKED.labels(service).inc(len(revocations))


async def is_revoked(conn: AsyncConnection, caller: Principal) -> bool:
    conditions = [and_(revoked_tokens.c.kind == RevokedKind.TOKEN.value, revoked_tokens.c.value == caller.token_id)]
    if caller.role == "operator":
        conditions.append(and_(revoked_tokens.c.kind == RevokedKind.OPERATOR.value,
                               revoked_tokens.c.value == caller.subject))
    return await conn.scalar(select(revoked_tokens.c.kind).where(or_(*conditions)).limit(1)) is not None


class StoredRevocations:
    """The :class:`billing_events.auth.RevocationList` of a service: its own table, one indexed
    read per request made with a service or operator token."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def refuses(self, caller: Principal) -> bool:
        if caller.token_id is None:
            return False
        async with self._db.connect() as conn:
            return await is_revoked(conn, caller)
