"""Fixtures of the identity flow tests: the service in-process over the real broker and
PostgreSQL, a manual clock, the notifier's key pair, and a reader of the identity topic that
opens what was sealed for the notifier (as the notifier would)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair, unseal
from billing_events.testing.kafka_probe import TopicReader
from identity import commands, service
from identity.app import build
from identity.context import IdentityContext
from identity.security import new_key
from identity.settings import IdentitySettings

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def notifier_keys() -> tuple[str, str]:
    """(public, private): identity gets the public half, the tests play the notifier."""
    return generate_keypair()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def identity_secrets(notifier_keys: tuple[str, str]) -> dict[str, Any]:
    return {
        "notifier_public_key": notifier_keys[0],
        "pii_lookup_key": new_key(),
        "pii_encryption_key": new_key(),
        "hashing_profile": "fast",
    }


class Flow:
    """One running identity service and a reader of everything it publishes."""

    def __init__(self, runtime: ServiceRuntime, ctx: IdentityContext, reader: TopicReader, private_key: str) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.reader = reader
        self.private_key = private_key
        self._serial = itertools.count(1)

    def form(self, **changes: Any) -> dict[str, Any]:
        """A valid registration form; ``unique=True`` gives it its own passport and phone."""
        unique = changes.pop("unique", False)
        form: dict[str, Any] = {
            "contract_accepted": True,
            "legal_status": "person",
            "surname": "Иванов",
            "first_name": "Иван",
            "patronymic": "Сергеевич",
            "passport_series": "4508",
            "passport_number": "731942",
            "date_of_birth": "1990-05-17",
            "issuing_authority": "ОВД района Арбат г. Москвы",
            "date_of_issue": "2010-06-01",
            "mobile_phone": "+7 912 345-67-89",
            "email": None,
            "region": "moscow",
        }
        if unique:
            serial = next(self._serial)
            form["passport_number"] = f"{600000 + serial:06d}"
            form["mobile_phone"] = f"+7 916 {serial:03d}-{serial % 100:02d}-{(serial * 7) % 100:02d}"
        form.update(changes)
        return form

    async def register(self, **changes: Any) -> commands.Registered:
        return await service.register(self.ctx, self.form(**changes))

    async def issued(self, account: str, purpose: PasswordPurpose, count: int = 1) -> list[dict[str, Any]]:
        """The first ``count`` PasswordIssued of the account for that purpose, unsealed."""
        found = await self.reader.wait_for_type(
            "PasswordIssued", count, account_number=account, purpose=purpose
        )
        return [unseal(self.private_key, e.payload.sealed_secret) for e in found[:count]]

    async def secret(self, account: str, purpose: PasswordPurpose, nth: int = 1) -> str:
        """The ``nth`` password or code issued to the account for ``purpose``."""
        return str((await self.issued(account, purpose, nth))[nth - 1]["secret"])

    async def login(self, login: str, password: str) -> commands.LoggedIn:
        return await service.login(self.ctx, {"login": login, "password": password})


@pytest.fixture
def start_identity(
    make_settings: Callable[..., Any], identity_secrets: dict[str, Any], clock: ManualClock
) -> Callable[..., Any]:
    async def start(database: str = "postgresql", **overrides: Any) -> tuple[ServiceRuntime, IdentityContext]:
        settings = await make_settings(IdentitySettings, database=database, **{**identity_secrets, **overrides})
        return build(settings, clock)

    return start


@pytest.fixture
async def identity(start_identity: Callable[..., Any]) -> AsyncIterator[tuple[ServiceRuntime, IdentityContext]]:
    runtime, ctx = await start_identity()
    async with runtime:
        yield runtime, ctx


@pytest.fixture
async def flow(identity: tuple[ServiceRuntime, IdentityContext], bootstrap_servers: str,
               notifier_keys: tuple[str, str]) -> AsyncIterator[Flow]:
    runtime, ctx = identity
    async with TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader:
        yield Flow(runtime, ctx, reader, notifier_keys[1])


@pytest.fixture
def make_flow(
    bootstrap_servers: str, notifier_keys: tuple[str, str]
) -> Callable[[ServiceRuntime, IdentityContext, TopicReader], Flow]:
    return lambda runtime, ctx, reader: Flow(runtime, ctx, reader, notifier_keys[1])
