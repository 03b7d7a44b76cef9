"""The notifier process: wires the store, the handlers and the shared runtime together."""

from __future__ import annotations

from billing_events.clock import Clock, SystemClock
from billing_events.runtime import ServiceRuntime, run
from sqlalchemy import MetaData

from notifier.settings import NotifierSettings


def build_runtime(settings: NotifierSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return ServiceRuntime(settings=settings or NotifierSettings(), clock=clock or SystemClock(), metadata=MetaData())


def main() -> None:
    run(build_runtime)
