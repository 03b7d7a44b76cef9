"""What identity takes from other services' topics: the ledger's AccountClosed.

A closed account logs in no more (its right password is refused in words), its sign-ins end,
and the phone or passport holding it no longer offers it (:func:`identity.store.accounts_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from billing_events.unit_of_work import UnitOfWork
from billing_contracts.catalog.ledger import AccountClosed
from billing_events.consumer import EventRouter, Handler, route
from billing_contracts.envelope import Envelope, Event
from billing_events.logging import get_logger
from identity import store
from identity.context import IdentityContext
from identity.service.sessions import ACCOUNT_CLOSED

log = get_logger(__name__)


async def on_account_closed(ctx: IdentityContext, uow: UnitOfWork,
                            envelope: Envelope[AccountClosed]) -> list[Envelope[Any]]:
    account = envelope.payload.account_number
    if await store.close_subscriber(uow.conn, account, at=envelope.occurred_at):
        ended = await store.revoke_sessions(uow.conn, account, why=ACCOUNT_CLOSED, at=ctx.clock.now())
        log.info("account closed: logs in no more", account_number=account, sessions_ended=ended)
    return []


HANDLERS: Mapping[type[Event], Handler] = {AccountClosed: on_account_closed}


def router(ctx: IdentityContext) -> EventRouter:
    return route(ctx, HANDLERS)
