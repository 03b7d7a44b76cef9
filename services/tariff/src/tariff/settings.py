"""The tariff service's settings: the shared ones plus its own (environment prefix BILLING_).

``BILLING_TARIFF_CATALOG_PATH``: the catalog file operations publish (default: the packaged
``catalog.yaml``). ``BILLING_TARIFF_BILLING_TICK_SECONDS``: how often the billing clock looks at
the time. ``BILLING_TARIFF_BILLING_TIME_ZONE``: where a billing day begins and ends (an IANA zone;
``UTC`` is accepted). ``BILLING_TARIFF_BILLING_CLOCK_ENABLED=false`` runs the service without its
billing clock (another instance runs it, or an operator closes days by hand).
``BILLING_TARIFF_CHARGE_APPLIED_VERSION``: the ChargeApplied version published (2, with v1
beside it; 1 alone while a consumer that reads only v1 is still running: docs/events.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from billing_events.settings import ServiceSettings
from tariff.catalog import DEFAULT_CATALOG_PATH


class TariffSettings(ServiceSettings):
    service_name: ClassVar[str] = "tariff"
    database_url: str | None = Field(default=None, validation_alias="BILLING_TARIFF_DATABASE_URL")
    signing_private_key: SecretStr | None = Field(default=None, validation_alias="BILLING_TARIFF_SIGNING_PRIVATE_KEY")
    catalog_path: Path = Field(
        default=DEFAULT_CATALOG_PATH,
        validation_alias="BILLING_TARIFF_CATALOG_PATH",
        description="The tariff catalog (YAML) to load at start-up",
    )
    billing_tick_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="BILLING_TARIFF_BILLING_TICK_SECONDS",
        description="How often the billing clock closes the days that are due",
    )
    billing_time_zone: str = Field(
        default="Europe/Moscow",
        validation_alias="BILLING_TARIFF_BILLING_TIME_ZONE",
        description="IANA zone whose midnight ends a billing day (UTC allowed)",
    )
    billing_clock_enabled: bool = Field(
        default=True,
        validation_alias="BILLING_TARIFF_BILLING_CLOCK_ENABLED",
        description="Run the billing clock loop in this process",
    )

    charge_applied_version: Literal[1, 2] = Field(
        default=2,
        validation_alias="BILLING_TARIFF_CHARGE_APPLIED_VERSION",
        description="ChargeApplied version to publish: 2 (v1 beside it), or 1 alone during an upgrade",
    )

    @field_validator("billing_time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r} (an IANA name such as Europe/Moscow, or UTC)"
            ) from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.billing_time_zone)
