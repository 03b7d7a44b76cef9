"""The tariff process: wires the store, the handlers and the shared runtime together."""

from __future__ import annotations

from billing_events.clock import Clock, SystemClock
from billing_events.runtime import ServiceRuntime, run
from sqlalchemy import MetaData

from tariff.settings import TariffSettings


def build_runtime(settings: TariffSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return ServiceRuntime(settings=settings or TariffSettings(), clock=clock or SystemClock(), metadata=MetaData())


def main() -> None:
    run(build_runtime)
