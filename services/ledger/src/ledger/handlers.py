"""What the ledger takes from the topics: every event it posts, decided batch by batch.

A batch is one decision (:func:`ledger.service.post`): its accounts are locked once and its
journal appended once, so one function takes every type rather than one function per type.
"""

from __future__ import annotations

from billing_events.consumer import BatchRouter

from ledger import service
from ledger.context import LedgerContext

ACCEPTS = service.POSTED_EVENTS


def router(ctx: LedgerContext) -> BatchRouter:
    return BatchRouter(ctx, service.post, ACCEPTS)
