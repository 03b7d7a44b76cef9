"""Sign-ins: a session per login, kept by identity, with refresh tokens rotated on every use.

A login starts a session and hands out its first refresh token (random, 256 bits, kept as a
SHA-256 hash: nothing to guess slowly). Refreshing uses the token up and gives the next one; a
token used a second time means it leaked (or a client retried a refresh it had already got),
so the whole session is revoked: the thief and the owner both log in again, which the owner
can. Access tokens name their session (``sid``); identity refuses those of a revoked session.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.logging import get_logger
from billing_events.unit_of_work import UnitOfWork
from identity import store
from identity.commands import RefreshCommand, SessionStarted
from identity.context import IdentityContext
from identity.domain import RefreshRefused, SessionEnded, validate_command

if TYPE_CHECKING:  # the token checks are the HTTP door's: a consumer process does not import them
    from billing_events.auth import Principal

log = get_logger(__name__)

SIGNED_OUT = "signed_out"
REFRESH_REUSED = "refresh_reused"
PASSWORD_CHANGED = "password_changed"
SUPPORT_RECOVERY = "support_recovery"
ACCOUNT_CLOSED = "account_closed"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _next_refresh_token(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, session_id: str
) -> SessionStarted:
    now = ctx.clock.now()
    token = secrets.token_urlsafe(32)
    expires_at = now + ctx.settings.refresh_token_lifetime
    await store.add_refresh_token(conn, _token_hash(token), session_id, at=now, expires_at=expires_at)
    return SessionStarted(account_number=subscriber.account_number, contract_number=subscriber.contract_number,
                          session=session_id, language=subscriber.language, refresh_token=token, refresh_expires_at=expires_at)


async def start_session(ctx: IdentityContext, account_number: str) -> SessionStarted:
    """A new sign-in of the account (after a login, or an exchange for another of one's accounts)."""

    async def work(uow: UnitOfWork) -> SessionStarted:
        subscriber = await store.subscriber_by_account(uow.conn, account_number)
        assert subscriber is not None, "a session starts for an account that logged in"
        session_id = secrets.token_hex(16)
        await store.start_session(uow.conn, session_id, account_number, at=ctx.clock.now())
        return await _next_refresh_token(uow.conn, ctx, subscriber, session_id)

    return await ctx.unit_of_work(work)


async def refresh(ctx: IdentityContext, command: RefreshCommand | Mapping[str, Any]) -> SessionStarted:
    """Use a refresh token up: the next one, in the same session. Raises RefreshRefused for a
    token unknown, expired or of an ended session, and for one used before (which revokes its
    session, after the commit)."""
    cmd = validate_command(RefreshCommand, command)
    token_hash = _token_hash(cmd.refresh_token)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> SessionStarted | None:
        token = await store.refresh_token(uow.conn, token_hash)
        if token is None:
            return None
        session = await store.session(uow.conn, token.session_id, for_update=True)
        if session is None or session.revoked_at is not None or token.expires_at <= now:
            return None
        if token.used_at is not None or not await store.use_refresh_token(uow.conn, token_hash, at=now):
            await store.revoke_sessions(uow.conn, session.account_number, why=REFRESH_REUSED, at=now, only=session.id)
            log.warning("refresh token used twice; its session revoked", account_number=session.account_number)
            return None
        subscriber = await store.subscriber_by_account(uow.conn, session.account_number)
        assert subscriber is not None
        return await _next_refresh_token(uow.conn, ctx, subscriber, session.id)

    started = await ctx.unit_of_work(work)
    if started is None:
        raise RefreshRefused()
    return started


async def require_live_session(ctx: IdentityContext, caller: Principal) -> store.Session:
    """The caller's session, still open: raises SessionEnded for a token of a session signed
    out, or one that names none (identity's cabinet routes need a sign-in)."""
    if caller.session is None:
        raise SessionEnded()
    async with ctx.db.connect() as conn:
        session = await store.session(conn, caller.session)
    if session is None or session.revoked_at is not None or session.account_number != caller.subject:
        raise SessionEnded()
    return session


async def sign_out(ctx: IdentityContext, session: store.Session, *, everywhere: bool) -> int:
    """End this sign-in, or every sign-in of the account; how many ended."""
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> int:
        return await store.revoke_sessions(uow.conn, session.account_number, why=SIGNED_OUT, at=now,
                                           only=None if everywhere else session.id)

    ended = await ctx.unit_of_work(work)
    log.info("signed out", account_number=session.account_number, sessions=ended)
    return ended
