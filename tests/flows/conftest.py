"""The whole suite in one test: the four services in-process, each with its own PostgreSQL
database, talking only through the session's broker, under one manual clock."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from billing_events.clock import Clock, FileClock, ManualClock
from billing_events.embedded import EmbeddedBroker
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair
from billing_events.settings import KafkaSettings
from billing_events.testing import signing
from billing_events.testing.file_channel import sent_messages
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import TEST_OPERATOR, TEST_OPERATOR_PRIVATE_KEY, TEST_TOKEN_PRIVATE_KEY, operations_token
from identity.app import build as build_identity
from identity.context import IdentityContext
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger import store as ledger_store
from ledger.app import build as build_ledger
from ledger.context import LedgerContext
from ledger.settings import DEFAULT_CAMPAIGNS, LedgerSettings
from notifier.app import build_runtime as build_notifier
from notifier.settings import NotifierSettings
from tariff.app import build as build_tariff
from tariff.context import TariffContext
from tariff.settings import TariffSettings

REPOSITORY = Path(__file__).parents[2]
"""Where the CLI runs, as the README's commands do: paths such as docs/examples/ resolve here."""
START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, where billing days are counted

REGISTRATION = {
    "contract_accepted": True, "legal_status": "person", "surname": "Петрова", "first_name": "Анна",
    "patronymic": "Игоревна", "passport_series": "4510", "passport_number": "482913",
    "date_of_birth": "1988-11-02", "issuing_authority": "ОУФМС по г. Москве", "date_of_issue": "2012-03-15",
    "mobile_phone": "+7 915 204-33-71", "email": "anna.petrova@example.ru", "region": "moscow",
}


@dataclass
class Suite:
    clock: ManualClock | FileClock
    identity: ServiceRuntime
    identity_context: IdentityContext
    ledger: ServiceRuntime
    ledger_context: LedgerContext
    tariff: ServiceRuntime
    tariff_context: TariffContext
    notifier: Any
    producer: RawProducer
    bootstrap: str

    @property
    def runtimes(self) -> tuple[ServiceRuntime, ...]:
        return self.identity, self.ledger, self.tariff, self.notifier

    async def stop(self) -> None:
        """Stop the services, the last started first (stopping one that is stopped does nothing)."""
        for runtime in reversed(self.runtimes):
            await runtime.stop()

    @property
    def outbox_file(self) -> Path:
        return Path(self.notifier.settings.resolved_file_channel_path())

    def messages(self, account_to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in sent_messages(self.outbox_file) if account_to is None or m.get("to") == account_to]

    def urls(self) -> dict[str, str]:
        """Each service's HTTP API (name -> base URL)."""
        return {runtime.name: f"http://127.0.0.1:{runtime.http_port}"
                for runtime in (self.identity, self.ledger, self.tariff, self.notifier)}

    def service_token(self) -> str:
        return operations_token(self.identity.clock)

    async def ledger_balance(self, number: str) -> int | None:
        async with self.ledger.db.connect() as conn:
            state = await ledger_store.account(conn, number)
        return None if state is None else state.main

    async def ledger_account_open(self, number: str) -> bool:
        return await self.ledger_balance(number) is not None

    async def tariff_balance(self, number: str) -> int | None:
        """The balance the tariff service last heard of; None before it knows the account."""
        from tariff import service
        from tariff.errors import UnknownAccount

        try:
            subscription = await service.get_subscription(self.tariff_context, number)
        except UnknownAccount:
            return None
        return subscription.balance.main.minor

    async def billing(self, *args: str, stdin: bytes | None = None,
                      env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Run the `billing` command line as an operator would, against this suite's services
        (``env``: more of its environment): exit code, stdout, stderr."""
        operator_key = Path(self.ledger.settings.data_dir) / "operator.key"
        operator_key.parent.mkdir(parents=True, exist_ok=True)
        operator_key.write_text(TEST_OPERATOR_PRIVATE_KEY)
        env = {
            "BILLING_OPERATOR": TEST_OPERATOR,
            "BILLING_OPERATOR_KEY_FILE": str(operator_key),
            **(env or {}),
            "PATH": os.environ.get("PATH", ""),
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BILLING_KAFKA__TOPIC_PREFIX": self.ledger.settings.kafka.topic_prefix,
            "BILLING_TOKEN_PRIVATE_KEY": TEST_TOKEN_PRIVATE_KEY,
            **signing.environment(),  # `billing do pay` signs as the channel `cli`
            "BILLING_LEDGER_DATABASE_URL": self.ledger.settings.resolved_database_url(),
            **{f"BILLING_{name.upper()}_URL": f"http://127.0.0.1:{runtime.http_port}"
               for name, runtime in (("ledger", self.ledger), ("identity", self.identity),
                                     ("tariff", self.tariff), ("notifier", self.notifier))},
        }
        if isinstance(self.clock, FileClock):
            env["BILLING_CLOCK_FILE"] = str(self.clock.path)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "billing_cli", *args, env=env, cwd=REPOSITORY, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        assert b"Traceback" not in err, err.decode()
        return process.returncode or 0, out.decode(), err.decode()


async def _started(make_settings: Callable[..., Any], bootstrap_servers: str, clock: Clock,
                   campaigns: Path | None = None, database: str = "postgresql",
                   kafka: KafkaSettings | None = None, card_return_url: str | None = None) -> AsyncIterator[Suite]:
    public, private = generate_keypair()

    async def settings(settings_cls: type[Any], **overrides: Any) -> Any:
        if kafka is not None:
            overrides["kafka"] = kafka
        return await make_settings(settings_cls, database=database, http_port=0, **overrides)

    async with _running(clock, bootstrap_servers, (
        await settings(IdentitySettings, notifier_public_key=public, pii_lookup_key=new_key(),
                       pii_encryption_key=new_key(), hashing_profile="fast", client_address_header="X-Forwarded-For"),
        await settings(LedgerSettings, bonus_campaigns_file=campaigns, card_return_url=card_return_url),
        await settings(TariffSettings, billing_clock_enabled=False),
        await settings(NotifierSettings, notifier_private_key=private, default_language="ru",
                       retry_base_delay_seconds=0.05),
    )) as started:
        yield started


@asynccontextmanager
async def _running(clock: Clock, bootstrap_servers: str, settings: tuple[Any, Any, Any, Any],
                   before_start: Callable[[Suite], Awaitable[None]] | None = None) -> AsyncIterator[Suite]:
    identity_settings, ledger_settings, tariff_settings, notifier_settings = settings
    async with AsyncExitStack() as stack:
        identity, identity_context = build_identity(identity_settings, clock)
        ledger, ledger_context = build_ledger(ledger_settings, clock)
        tariff, tariff_context = build_tariff(tariff_settings, clock)
        notifier = build_notifier(notifier_settings, clock)
        producer = await stack.enter_async_context(RawProducer(bootstrap_servers))
        suite = Suite(clock, identity, identity_context, ledger, ledger_context, tariff, tariff_context, notifier,
                      producer, bootstrap_servers)
        if before_start is not None:
            await before_start(suite)
        for runtime in suite.runtimes:
            await stack.enter_async_context(runtime)
        yield suite


@asynccontextmanager
async def restarted(suite: Suite, kafka: KafkaSettings,
                    before_start: Callable[[Suite], Awaitable[None]] | None = None) -> AsyncIterator[Suite]:
    """The suite's four services started again on their databases (the ones running are stopped
    first), over ``kafka``; ``before_start`` runs on the new suite before any of it starts."""
    await suite.stop()
    settings = tuple(runtime.settings.model_copy(update={"kafka": kafka}) for runtime in suite.runtimes)
    async with _running(suite.clock, kafka.bootstrap_servers, settings, before_start) as started:  # type: ignore[arg-type]
        yield started


@pytest.fixture
def start() -> datetime:
    """When the suite's clock starts; a date-sensitive test runs from several
    (``billing_events.testing.clock.at_dates_that_matter``)."""
    return START


@pytest.fixture
async def suite(make_settings: Callable[..., Any], bootstrap_servers: str, start: datetime) -> AsyncIterator[Suite]:
    async for started in _started(make_settings, bootstrap_servers, ManualClock(start)):
        yield started


@pytest.fixture(params=["postgresql", "sqlite"])
async def suite_on_either_database(request: pytest.FixtureRequest, make_settings: Callable[..., Any],
                                   bootstrap_servers: str) -> AsyncIterator[Suite]:
    """The suite with every service's database on PostgreSQL, or on SQLite files (the embedded default)."""
    async for started in _started(make_settings, bootstrap_servers, ManualClock(START), database=request.param):
        yield started


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """An embedded broker of the test's own, which the test may stop (and lose) as `make run` does."""
    broker = EmbeddedBroker(log_file=tmp_path / "broker.log").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(params=["postgresql", "sqlite"])
async def suite_on_own_broker(request: pytest.FixtureRequest, make_settings: Callable[..., Any],
                              kafka_settings: KafkaSettings, own_broker: EmbeddedBroker) -> AsyncIterator[Suite]:
    """The suite on PostgreSQL or on SQLite files, over the test's own embedded broker."""
    kafka = kafka_settings.model_copy(update={"bootstrap_servers": own_broker.bootstrap_servers})
    async for started in _started(make_settings, own_broker.bootstrap_servers, ManualClock(START),
                                  database=request.param, kafka=kafka):
        yield started


@pytest.fixture
async def shared_clock_suite(make_settings: Callable[..., Any], bootstrap_servers: str,
                             tmp_path: Path) -> AsyncIterator[Suite]:
    """The suite as `billing up` runs it: every service reads one clock file, which `billing
    clock` moves (the CLI finds it through BILLING_CLOCK_FILE), and the packaged bonus campaigns."""
    clock = FileClock(tmp_path / "clock.json")
    clock.move_to(START)
    async for started in _started(make_settings, bootstrap_servers, clock, DEFAULT_CAMPAIGNS):
        yield started


def registration_form() -> dict[str, Any]:
    return dict(REGISTRATION)


@pytest.fixture
def form() -> dict[str, Any]:
    return registration_form()
