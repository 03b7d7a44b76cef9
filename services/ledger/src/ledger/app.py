"""The ledger process: wires the store, the handler and the shared runtime together."""

from __future__ import annotations

from billing_events import topics
from billing_events.clock import Clock, SystemClock
from billing_events.runtime import ServiceRuntime, run

from ledger import store
from ledger.domain import parse_campaigns
from ledger.handlers import LedgerHandler
from ledger.http import build_router
from ledger.service import LedgerContext
from ledger.settings import LedgerSettings

CONSUMES = (topics.IDENTITY, topics.PAYMENTS, topics.TARIFF, topics.LEDGER_COMMANDS)


class LedgerRuntime(ServiceRuntime):
    ledger: LedgerContext


def build_runtime(settings: LedgerSettings | None = None, clock: Clock | None = None) -> LedgerRuntime:
    settings = settings or LedgerSettings()
    clock = clock or SystemClock()
    campaigns_file = settings.bonus_campaigns_file
    campaigns = parse_campaigns(campaigns_file.read_text()) if campaigns_file else ()
    runtime = LedgerRuntime(settings=settings, clock=clock, metadata=store.metadata, consumes=CONSUMES)
    runtime.ledger = LedgerContext(
        db=runtime.db, clock=clock, topics=runtime.topics, campaigns=campaigns,
        bonus_pays_charges=settings.bonus_pays_charges, wake_relay=runtime.relay.wake,
    )
    runtime.attach_handler(LedgerHandler(runtime.ledger))
    runtime.http_app.include_router(build_router(runtime.ledger, runtime.republish))
    return runtime


def main() -> None:
    run(build_runtime)
