"""Fixtures of the HTTP tests: services started in-process (each with its own PostgreSQL
database, all under the test's topic prefix and one manual clock), reached through their ASGI
apps, and tokens minted with the suite's test token private key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair
from billing_events.testing.plugin import bearer_token
from identity.app import build_runtime as build_identity
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger.app import build_runtime as build_ledger
from ledger.settings import LedgerSettings
from notifier.app import build_runtime as build_notifier
from notifier.settings import NotifierSettings
from tariff.app import build_runtime as build_tariff
from tariff.settings import TariffSettings

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)

REGISTRATION = {
    "contract_accepted": True, "legal_status": "person", "surname": "Петрова", "first_name": "Анна",
    "patronymic": "Игоревна", "passport_series": "4510", "passport_number": "482913",
    "date_of_birth": "1988-11-02", "issuing_authority": "ОУФМС по г. Москве", "date_of_issue": "2012-03-15",
    "mobile_phone": "+7 915 204-33-71", "email": "anna.petrova@example.ru", "region": "moscow",
}


class Services:
    """Start any of the four services; ``client(name, token)`` talks to its app in-process."""

    def __init__(self, stack: AsyncExitStack, make_settings: Callable[..., Any]) -> None:
        self.stack = stack
        self.make_settings = make_settings
        self.clock = ManualClock(START)
        self.public_key, self.private_key = generate_keypair()
        self.running: dict[str, ServiceRuntime] = {}

    async def start(self, *names: str) -> list[ServiceRuntime]:
        for name in names:
            runtime = await self.build(name)
            self.running[name] = await self.stack.enter_async_context(runtime)
        return [self.running[name] for name in names]

    async def build(self, name: str, database: str = "postgresql") -> ServiceRuntime:
        """The service's runtime, not started (its HTTP app answers what needs no database)."""
        def settings(cls: type[Any], **values: Any) -> Any:
            return self.make_settings(cls, database=database, **values)

        match name:
            case "identity":
                return build_identity(await settings(
                    IdentitySettings, notifier_public_key=self.public_key, pii_lookup_key=new_key(),
                    pii_encryption_key=new_key(), hashing_profile="fast"), self.clock)
            case "ledger":
                return build_ledger(await settings(LedgerSettings, bonus_campaigns_file=None), self.clock)
            case "tariff":
                return build_tariff(await settings(TariffSettings, billing_clock_enabled=False), self.clock)
            case "notifier":
                return build_notifier(await settings(NotifierSettings, notifier_private_key=self.private_key,
                                                     retry_base_delay_seconds=0.05), self.clock)
        raise ValueError(name)

    def token(self, role: str = "service", subject: str = "operations") -> str:
        return bearer_token(self.clock, role, subject)

    def client(self, name: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.running[name].http_app),
                                 base_url=f"http://{name}", headers=headers)


@pytest.fixture
async def services(make_settings: Callable[..., Any]) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        yield Services(stack, make_settings)


@pytest.fixture
def registration() -> Callable[..., dict[str, Any]]:
    def form(**changes: Any) -> dict[str, Any]:
        return {**REGISTRATION, **changes}

    return form
