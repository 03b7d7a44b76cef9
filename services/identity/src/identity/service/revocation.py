"""Identity owns the revocation list of service and operator tokens (subscriber tokens are not
revoked here: their sign-out belongs to the personal account)."""

from __future__ import annotations


from billing_events.unit_of_work import UnitOfWork
from billing_events import revocations
from billing_contracts.catalog.identity import REVOCATIONS_KEY, RevokedKind, TokenRevoked
from billing_events.logging import get_logger
from identity.context import IdentityContext

log = get_logger("identity.revocation")


async def revoke(ctx: IdentityContext, kind: RevokedKind, value: str, *, revoked_by: str, reason: str) -> TokenRevoked:
    """Refuse a token (its ``jti``) or every token of an operator from now on, here at once and
    everywhere else as soon as TokenRevoked reaches them. Revoking twice changes nothing more."""
    revoked = TokenRevoked(kind=kind, value=value, revoked_by=revoked_by, reason=reason)

    async def work(uow: UnitOfWork) -> None:
        await revocations.keep(uow.conn, [revoked], clock=ctx.clock, service=ctx.producer)
        uow.stage([ctx.envelope(revoked, account=REVOCATIONS_KEY)])

    await ctx.unit_of_work(work)
    log.info("token revoked", kind=kind.value, value=value, revoked_by=revoked_by)
    return revoked
