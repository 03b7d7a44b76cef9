"""The tariff service's runtime: the shared :class:`ServiceRuntime` plus the loaded catalog and
the billing day of the configured time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from billing_events.runtime import ServiceRuntime
from tariff.catalog import Catalog, load_catalog
from tariff.settings import TariffSettings


@dataclass
class TariffRuntime(ServiceRuntime):
    catalog: Catalog = None  # type: ignore[assignment]  # loaded from settings when not given

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.catalog is None:
            self.catalog = load_catalog(self.tariff_settings.catalog_path)

    @property
    def tariff_settings(self) -> TariffSettings:
        return cast(TariffSettings, self.settings)

    def billing_day(self, moment: datetime | None = None) -> date:
        """The billing day a moment belongs to: its date in the billing time zone."""
        return billing_day(moment or self.clock.now(), self.tariff_settings)


def billing_day(moment: datetime, settings: TariffSettings) -> date:
    return moment.astimezone(settings.zone).date()
