"""The ledger's consumer side: one batch handler for every event it posts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.consumer import Outcome
from billing_contracts.envelope import Envelope

from ledger import service
from ledger.context import LedgerContext


class LedgerHandler:
    """A whole batch in one transaction: the accounts are locked once, the journal appended once."""

    def __init__(self, ctx: LedgerContext) -> None:
        self._ctx = ctx
        self.accepts = frozenset(event.event_type for event in service.POSTED_EVENTS)

    async def __call__(self, conn: AsyncConnection, envelopes: Sequence[Envelope[Any]]) -> Outcome:
        return await service.post(self._ctx, conn, envelopes)
