"""The tariff process: wires the store, the handlers and the shared runtime together."""

from __future__ import annotations

from billing_events import topics
from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run
from tariff import service, store
from tariff.catalog import load_catalog
from tariff.handlers import build_router
from tariff.http import build_http_router
from tariff.runtime import TariffRuntime
from tariff.settings import TariffSettings


def build_runtime(
    settings: TariffSettings | None = None, clock: Clock | None = None
) -> ServiceRuntime:
    """The tariff runtime (a :class:`TariffRuntime`): consumes identity and ledger events and
    runs the billing clock (unless ``billing_clock_enabled`` is off). A catalog that does not
    load stops the start with :class:`tariff.errors.CatalogInvalid` naming every problem."""
    settings = settings or TariffSettings()
    clock = clock or settings.clock()
    catalog = load_catalog(settings.catalog_path)
    runtime: TariffRuntime
    runtime = TariffRuntime(
        settings=settings,
        clock=clock,
        metadata=store.metadata, migrated=True,
        handler=build_router(catalog, clock),
        consumes=[topics.IDENTITY, topics.LEDGER],
        routers=[build_http_router(lambda: runtime)],
        catalog=catalog,
    )
    runtime.background.append(service.catalog_recorder(runtime))
    if settings.billing_clock_enabled:
        runtime.background.append(service.billing_clock(runtime))
    return runtime


def main() -> None:
    run(build_runtime)
