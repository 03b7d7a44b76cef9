"""The tariff process: wires the store, the handlers and the shared runtime together."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from billing_contracts import topics
from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run
from tariff import handlers, service, store
from tariff.catalog import load_catalog
from tariff.context import TariffContext
from tariff.settings import TariffSettings

if TYPE_CHECKING:
    from fastapi import APIRouter

CONSUMES = (topics.IDENTITY, topics.LEDGER)


def _api(ctx: TariffContext) -> APIRouter:
    from tariff.http import build_router  # the framework and the token checks: where the API is served

    return build_router(ctx)


def build(settings: TariffSettings | None = None, clock: Clock | None = None) -> tuple[ServiceRuntime, TariffContext]:
    """The tariff process, and the one context its consumer, HTTP door and billing clock share:
    it consumes identity and ledger events and runs the billing clock (unless
    ``billing_clock_enabled`` is off). A catalog that does not load stops the start with
    :class:`tariff.errors.CatalogInvalid` naming every problem."""
    settings = settings or TariffSettings()
    clock = clock or settings.clock()
    catalog = load_catalog(settings.catalog_path)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=store.metadata, migrated=True,
                            consumes=CONSUMES)
    ctx = TariffContext(
        db=runtime.db, clock=clock, topics=runtime.topics, wake_relay=runtime.relay.wake,
        catalog=catalog, zone=settings.zone, charge_applied_version=settings.charge_applied_version,
    )
    runtime.attach_handler(handlers.router(ctx))
    runtime.include_api(partial(_api, ctx))
    runtime.background.append(service.catalog_recorder(ctx, str(settings.catalog_path)))
    if settings.billing_clock_enabled:
        runtime.background.append(service.billing_clock(ctx, settings.billing_tick_seconds))
    return runtime, ctx


def build_runtime(settings: TariffSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return build(settings, clock)[0]


def main() -> None:
    run(build_runtime)
