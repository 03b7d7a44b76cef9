"""The tariff service's settings: the shared ones plus its own (environment prefix BILLING_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from billing_events.settings import ServiceSettings


class TariffSettings(ServiceSettings):
    service_name: ClassVar[str] = "tariff"
    database_url: str | None = Field(default=None, validation_alias="BILLING_TARIFF_DATABASE_URL")
