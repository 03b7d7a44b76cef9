"""The ledger process: wires the store, the handlers and the shared runtime together."""

from __future__ import annotations

from billing_events.clock import Clock, SystemClock
from billing_events.runtime import ServiceRuntime, run
from sqlalchemy import MetaData

from ledger.settings import LedgerSettings


def build_runtime(settings: LedgerSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return ServiceRuntime(settings=settings or LedgerSettings(), clock=clock or SystemClock(), metadata=MetaData())


def main() -> None:
    run(build_runtime)
