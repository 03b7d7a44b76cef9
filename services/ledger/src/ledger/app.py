"""The ledger process: wires the store, the handler and the shared runtime together.

The operations on the ledger's journal (verify, rebuild, replay, statement, receipt) are
:mod:`ledger.ops`, a library the `billing` command line calls."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from billing_contracts import topics
from billing_events import metrics
from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run

from ledger import handlers, integrity, store
from ledger.context import LedgerContext
from ledger.domain import BonusCampaign, InvalidCampaign, InvalidRewards, Reward, parse_campaigns, parse_rewards
from ledger.settings import LedgerSettings

if TYPE_CHECKING:
    from fastapi import APIRouter

CONSUMES = (topics.IDENTITY, topics.PAYMENTS, topics.TARIFF, topics.LEDGER_COMMANDS)


async def _watch_journal(ctx: LedgerContext) -> None:
    """Journal size for the metrics page: read from the chain head and the postings' id."""
    while True:
        async with ctx.db.connect() as conn:
            length = await conn.scalar(select(store.chain_head.c.length).where(store.chain_head.c.id == 1))
            postings = await conn.scalar(select(func.max(store.postings.c.id)))
        metrics.LEDGER_JOURNAL_TRANSACTIONS.set(length or 0)
        metrics.LEDGER_POSTINGS.set(postings or 0)
        await asyncio.sleep(5)


def load_campaigns(path: Path) -> tuple[BonusCampaign, ...]:
    """The campaigns file operations publish; a file that does not load stops the start with
    :class:`ledger.domain.InvalidCampaign` naming the file, the campaign and every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidCampaign(f"bonus campaigns {path}: cannot be read: {exc.strerror}", "campaigns") from None
    return parse_campaigns(text, source=str(path))


def load_rewards(path: Path) -> tuple[Reward, ...]:
    """The rewards catalogue operations publish; a file that does not load stops the start."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRewards(f"rewards catalogue {path}: cannot be read: {exc.strerror}") from None
    return parse_rewards(text, source=str(path))


def _api(ctx: LedgerContext, runtime: ServiceRuntime, settings: LedgerSettings) -> APIRouter:
    from ledger.http import build_router  # the framework, the token checks, the receipts' PDF: where served

    return build_router(ctx, runtime.republish, settings.acquirer(), development=not settings.in_production)


def build(settings: LedgerSettings | None = None, clock: Clock | None = None) -> tuple[ServiceRuntime, LedgerContext]:
    """The ledger process, and the one context its consumer, HTTP door and background tasks share."""
    settings = settings or LedgerSettings()
    clock = clock or settings.clock()
    campaigns = load_campaigns(settings.bonus_campaigns_file) if settings.bonus_campaigns_file else ()
    rewards = load_rewards(settings.rewards_file) if settings.rewards_file else ()
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=store.metadata, migrated=True,
                             consumes=CONSUMES)
    ctx = LedgerContext(
        db=runtime.db, clock=clock, topics=runtime.topics, wake_relay=runtime.relay.wake, campaigns=campaigns, rewards=rewards,
        bonus_pays_charges=settings.bonus_pays_charges, self_service_credit_limit=settings.self_service_credit_limit,
        max_payment=settings.max_payment, verify_workers=settings.verify_workers, card_callback_window=timedelta(seconds=settings.card_callback_window_seconds),
    )
    runtime.attach_handler(handlers.router(ctx))
    runtime.background.append(partial(_watch_journal, ctx))
    if settings.seal_every_seconds > 0:
        runtime.background.append(partial(integrity.keep_sealing, ctx,
                                          every_seconds=settings.seal_every_seconds,
                                          every_transactions=settings.seal_every_transactions))
    runtime.include_api(partial(_api, ctx, runtime, settings))
    return runtime, ctx


def build_runtime(settings: LedgerSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return build(settings, clock)[0]


def main() -> None:
    run(build_runtime)
