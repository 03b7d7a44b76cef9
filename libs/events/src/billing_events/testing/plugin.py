"""pytest fixtures: a real broker, real databases, an isolated namespace per test.

Loaded by the suite's pytest configuration (``-p billing_events.testing.plugin``); a consuming
team can load it the same way to test against the suite's events.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import asyncpg
import pytest
import structlog

from billing_events.auth import SCOPES, OperatorSigner, Tokens

from billing_events.keys import TokenKeys, generate_token_keypair
from billing_events.clock import Clock
from billing_events.logging import configure_logging
from billing_events.settings import KafkaSettings, ServiceSettings
from billing_events.testing import PATIENCE, signing
from billing_events.testing.infrastructure import Infrastructure, provide

S = TypeVar("S", bound=ServiceSettings)
TEST_TOKEN_PUBLIC_KEY, TEST_TOKEN_PRIVATE_KEY = generate_token_keypair()
"""The Ed25519 key pair a test run signs tokens with (identity's settings hold the private half;
every service checks with the public one): new in each run, so no key anyone could know ships
in this package."""
TEST_OPERATOR = "test-operator"
TEST_OPERATOR_PUBLIC_KEY, TEST_OPERATOR_PRIVATE_KEY = generate_token_keypair()
"""The tests' operator signs their own tokens with this key (new in each run); every service lists
its public half."""
TEST_OPERATOR_KEY_RING_ENTRY = f"{TEST_OPERATOR}={TEST_OPERATOR_PUBLIC_KEY}"


def token_minter(clock: Clock) -> Tokens:
    """Mints tokens as identity and ``billing token`` do, with the tests' private key: the other
    services hold only the public key and cannot."""
    return Tokens(TokenKeys.from_base64(private_key=TEST_TOKEN_PRIVATE_KEY), clock)


def operations_token(clock: Clock, subject: str = "operations", scopes: tuple[str, ...] = tuple(SCOPES)) -> str:
    """A service token for every service, by default with every scope: the tests' operations."""
    audience = {scope.partition(":")[0] for scope in scopes}
    return token_minter(clock).issue("service", subject, audience=audience, scopes=scopes)[0]


def bearer_token(clock: Clock, role: str = "service", subject: str = "operations") -> str:
    """A subscriber's token for account ``subject``, or operations' token (every scope)."""
    if role == "subscriber":
        return token_minter(clock).issue("subscriber", subject)[0]
    return operations_token(clock, subject)


def operator_signer(clock: Clock) -> OperatorSigner:
    """The tests' operator, minting with their own key (listed in every service's key ring)."""
    return OperatorSigner(TEST_OPERATOR, TEST_OPERATOR_PRIVATE_KEY, clock)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reaches the broker or PostgreSQL, through the fixture that provides both, is
    marked ``infrastructure``: ``make test-fast`` runs the others alone."""
    for item in items:
        if "infrastructure" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.infrastructure)


@pytest.fixture(scope="session")
def infrastructure(request: pytest.FixtureRequest) -> Iterator[Infrastructure]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[harness] {line}")

    with ExitStack() as stack:
        yield provide(stack, say)


@pytest.fixture(scope="session")
def bootstrap_servers(infrastructure: Infrastructure) -> str:
    return infrastructure.bootstrap_servers


class PostgresDatabases:
    """Creates a fresh database per test on the session's server and drops them all at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")
        self._created: list[str] = []

    async def create(self) -> str:
        name = f"billing_test_{uuid4().hex[:12]}"
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created.append(name)
        base, _, _ = self.server_url.rpartition("/")
        return f"{base}/{name}"

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            for name in self._created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def postgres_databases(infrastructure: Infrastructure) -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases(infrastructure.postgres_url)
    yield databases
    await databases.drop_all()


@pytest.fixture
async def postgres_url(postgres_databases: PostgresDatabases) -> str:
    return await postgres_databases.create()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_databases: PostgresDatabases) -> str:
    """Store tests run on both databases the suite supports."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return await postgres_databases.create()


@pytest.fixture
def topic_prefix() -> str:
    """Every test has its own topics and consumer groups on the shared broker."""
    return f"t{uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(bootstrap_servers: str, topic_prefix: str) -> KafkaSettings:
    # A group's first join takes half the session timeout on the embedded broker: keep it short.
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix, partitions=3,
        consumer_max_records=500, session_timeout_ms=2000, heartbeat_interval_ms=300, closed_network=True,
    )


@pytest.fixture
def make_settings(kafka_settings: KafkaSettings, tmp_path: Path, postgres_databases: PostgresDatabases) -> Callable[..., Any]:
    """``await make_settings(LedgerSettings, database="postgresql", **overrides)``."""

    async def make(settings_cls: type[S], *, database: str = "postgresql", **overrides: Any) -> S:
        url = await postgres_databases.create() if database == "postgresql" else None
        values: dict[str, Any] = {
            "kafka": kafka_settings, "data_dir": tmp_path / "data", "database_url": url,
            "token_public_keys": [TEST_TOKEN_PUBLIC_KEY], "operator_keys": [TEST_OPERATOR_KEY_RING_ENTRY],
            **signing.settings_values(settings_cls.service_name),
        }
        if "token_private_key" in settings_cls.model_fields:  # identity signs
            values["token_private_key"] = TEST_TOKEN_PRIVATE_KEY
        values.update(overrides)
        return settings_cls(**values)

    return make


class RenderedLogs:
    """The log lines written since the fixture began, as production renders them (JSON)."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]


@pytest.fixture
def rendered_logs() -> Iterator[RenderedLogs]:
    """Log lines through the services' own processors (``structlog.testing.capture_logs``
    replaces them, redaction included); the previous configuration comes back after."""
    stream, saved_stderr = io.StringIO(), sys.stderr
    saved_config, saved_handlers = structlog.get_config(), list(logging.getLogger().handlers)
    sys.stderr = stream
    try:
        configure_logging("test", fmt="json")
        yield RenderedLogs(stream)
    finally:
        sys.stderr = saved_stderr
        structlog.configure(**saved_config)
        structlog.contextvars.clear_contextvars()
        logging.getLogger().handlers[:] = saved_handlers


async def eventually(check: Callable[[], Any], *, timeout: float = PATIENCE, interval: float = 0.05,
                     what: str = "condition") -> Any:
    """Poll an async (or sync) check until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
