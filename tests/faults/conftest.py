"""Fault tests: the ledger as a real process (killed, doubled, cut off from its database) over the
session's broker and a fresh PostgreSQL database, driven by events the way the other services
and the payment channels drive it; and the four services as ``make run`` runs them (``suite``).

Sizes are environment variables (defaults in brackets; the defaults are the issue's sizes and
all five tests take about two minutes on two cores):

    BILLING_TEST_CRASH_PAYMENTS [50000]  BILLING_TEST_CRASH_ACCOUNTS [1000]  BILLING_TEST_CRASH_KILLS [3]
    BILLING_TEST_SCALE_PAYMENTS [10000]  BILLING_TEST_OUTAGE_PAYMENTS [10000]
    BILLING_TEST_POISON_BAD [2000]       BILLING_TEST_POISON_VALID [5000]    BILLING_TEST_HOSTILE [3000]
    BILLING_TEST_DRILL_PAYMENTS [1000]: payments before the restore drill's dumps
    BILLING_TEST_SEED [derived from the test's name]: the random traffic is repeatable

Run them alone with ``uv run pytest tests/faults -m slow -s`` (``-s`` shows one summary line
per test). The processes' logs are in each test's ``tmp_path`` (``<name>.log``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import func, select

from billing_cli.launcher import SERVICES, dev_secrets
from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import TransactionKind
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_events.kafka import ensure_topics
from billing_contracts.money import Money
from billing_events.schema import dead_letters, inbox, outbox
from billing_events.settings import KafkaSettings
from billing_events.testing import signing
from billing_events.testing.clock import RunningClock, clock_file
from billing_events.testing.processes import ServiceProcess
from billing_events.testing.signing import signed_headers
from billing_contracts.topics import EVENT_TOPICS, TopicNames, dead_letter_spec
from ledger import store
from ledger.domain import FactKind
from ledger.context import LedgerContext
from ledger.service import verify

PARTITIONS = 6
CHANNELS = ("terminal", "card", "bank", "shop", "ewallet")


def size(name: str, default: int) -> int:
    """A test size from the environment (``BILLING_TEST_<NAME>``), else the CI default."""
    return int(os.environ.get(f"BILLING_TEST_{name}", default))


def account_number(serial: int) -> str:
    """A 12-digit personal account number with its Luhn check digit, as identity allocates."""
    body = f"1{serial:010d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return body + str((10 - total % 10) % 10)


class Traffic:
    """Envelopes as the identity service and the payment channels publish them."""

    def __init__(self, seed: int) -> None:
        self.clock = RunningClock()
        self.rng = random.Random(seed)
        self.seed = seed

    def envelope(self, payload: Any, account: str) -> Envelope[Any]:
        return Envelope.new(payload, account=account, producer=topics.spec(payload.topic).owner, clock=self.clock)

    def registration(self, number: str, sealed_contact: str = "c2VhbGVk") -> Envelope[SubscriberRegistered]:
        return self.envelope(SubscriberRegistered(
            account_number=number, contract_number=f"D-2026-{number[-7:]}", region="moscow",
            legal_status=LegalStatus.PERSON, masked_phone="+7 *** ***-00-00", sealed_contact=sealed_contact,
        ), number)

    def payment(self, number: str, minor: int, reference: str, channel: str = "terminal") -> Envelope[PaymentReceived]:
        return self.envelope(PaymentReceived(
            account_number=number, channel=channel, reference=reference, amount=Money(minor=minor),
            received_at=self.clock.now(),
        ), number)

    def payments(self, accounts: Sequence[str], count: int, prefix: str) -> list[Envelope[PaymentReceived]]:
        """``count`` distinct payments (unique channel reference) spread at random over ``accounts``."""
        return [
            self.payment(self.rng.choice(accounts), self.rng.randint(1, 500_000), f"{prefix}-{n}",
                         self.rng.choice(CHANNELS))
            for n in range(count)
        ]

    def delivered_with_duplicates(
        self, payments: Sequence[Envelope[PaymentReceived]], fraction: float
    ) -> list[Envelope[PaymentReceived]]:
        """The payments as a channel delivers them: ``fraction`` of them twice, each second copy
        later in the stream than the first; half the copies are the very same envelope (a
        redelivery), half the same channel and reference under a new event id (a channel that
        sent the payment again)."""
        placed: list[tuple[float, int, Envelope[PaymentReceived]]] = [
            (float(n), 0, payment) for n, payment in enumerate(payments)
        ]
        twice = self.rng.sample(range(len(payments)), int(len(payments) * fraction))
        for k, n in enumerate(twice):
            original = payments[n]
            copy = original if k % 2 == 0 else self.envelope(original.payload, original.account)
            placed.append((self.rng.uniform(n, len(payments)), 1, copy))
        placed.sort(key=lambda item: (item[0], item[1]))
        return [envelope for _, _, envelope in placed]


def expected_balances(payments: Iterable[Envelope[PaymentReceived]], accounts: Iterable[str]) -> dict[str, int]:
    sums = dict.fromkeys(accounts, 0)
    for payment in payments:
        sums[payment.payload.account_number] += payment.payload.amount.minor
    return sums


class LedgerFacts:
    """What the ledger's database says: read straight from its tables, as an auditor would."""

    def __init__(self, database_url: str, prefix: str) -> None:
        self.db = Database(database_url, pool_size=2, max_overflow=0)
        self.context = LedgerContext(db=self.db, clock=RunningClock(), topics=TopicNames(prefix))

    async def scalar(self, query: Any) -> Any:
        async with self.db.connect() as conn:
            return await conn.scalar(query)

    async def count(self, table: Any, *where: Any) -> int:
        return await self.scalar(select(func.count()).select_from(table).where(*where)) or 0

    async def open_accounts(self) -> int:
        return await self.count(store.accounts)

    async def payments_posted(self) -> int:
        return await self.count(store.journal, store.journal.c.kind == TransactionKind.PAYMENT.value)

    async def posted_at_least(self, count: int) -> bool:
        return await self.payments_posted() >= count

    async def distinct_payment_keys(self) -> int:
        return await self.scalar(
            select(func.count(store.journal.c.business_key.distinct()))
            .where(store.journal.c.kind == TransactionKind.PAYMENT.value)
        ) or 0

    async def journal_kinds(self) -> dict[str, int]:
        async with self.db.connect() as conn:
            rows = await conn.execute(select(store.journal.c.kind, func.count()).group_by(store.journal.c.kind))
            return {kind: n for kind, n in rows}

    async def balances(self) -> dict[str, int]:
        async with self.db.connect() as conn:
            return dict((await conn.execute(select(store.accounts.c.number, store.accounts.c.main))).all())

    async def bonus_total(self) -> int:
        return await self.scalar(select(func.coalesce(func.sum(store.accounts.c.bonus), 0))) or 0

    async def double_entry(self) -> tuple[dict[str, int], list[Any]]:
        async with self.db.connect() as conn:
            return await store.double_entry_rows(conn)

    async def dead_letters(self) -> list[Any]:
        async with self.db.connect() as conn:
            return list((await conn.execute(select(dead_letters).order_by(dead_letters.c.id))).all())

    async def dead_letter_count(self) -> int:
        return await self.count(dead_letters)

    async def inbox_count(self) -> int:
        return await self.count(inbox)

    async def unpublished(self) -> int:
        return await self.count(outbox, outbox.c.published_at.is_(None))

    async def all_published(self) -> bool:
        return await self.unpublished() == 0

    async def suspense_count(self) -> int:
        return await self.count(store.suspense)

    async def verify(self) -> Any:
        return await verify(self.context)

    async def assert_consistent(self, payments: Sequence[Envelope[PaymentReceived]], accounts: Sequence[str]) -> None:
        """Every distinct payment posted exactly once, to the right account; the books balance."""
        assert await self.payments_posted() == len(payments), "PAYMENT transactions != distinct payments"
        assert await self.distinct_payment_keys() == len(payments)
        assert await self.journal_kinds() == {FactKind.ACCOUNT_OPENED.value: len(accounts),
                                              TransactionKind.PAYMENT.value: len(payments)}
        assert await self.balances() == expected_balances(payments, accounts)
        assert await self.bonus_total() == 0
        totals, unbalanced = await self.double_entry()
        assert totals == {"RUB": 0} and unbalanced == []
        assert await self.suspense_count() == 0
        report = await self.verify()
        assert report.ok, report
        assert report.transactions == len(payments)

    async def close(self) -> None:
        await self.db.dispose()


@dataclass
class LedgerDeployment:
    """One ledger installation under test: its topics (own prefix), its database, its processes."""

    bootstrap_servers: str
    prefix: str
    database_url: str
    workdir: Path
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.prefix)

    @property
    def group_id(self) -> str:
        return f"{self.prefix}ledger"

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, topic_prefix=self.prefix,
                             partitions=PARTITIONS)

    @staticmethod
    def partition_of(account: str) -> int:
        """Where the producers (aiokafka's default partitioner, like the suite's) put an account."""
        every = list(range(PARTITIONS))
        return int(DefaultPartitioner()(account.encode(), every, every))

    async def create_topics(self) -> None:
        await ensure_topics(self.kafka, self.topics, [*EVENT_TOPICS, dead_letter_spec("ledger")])

    def env(self, database_url: str | None = None, **extra: str) -> dict[str, str]:
        campaigns = self.workdir / "no-campaigns.json"
        campaigns.write_text("[]")
        return {
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BILLING_KAFKA__TOPIC_PREFIX": self.prefix,
            "BILLING_KAFKA__PARTITIONS": str(PARTITIONS),
            "BILLING_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
            "BILLING_LEDGER_DATABASE_URL": database_url or self.database_url,
            "BILLING_LEDGER_BONUS_CAMPAIGNS_FILE": str(campaigns),
            "BILLING_DATA_DIR": str(self.workdir / "data"),
            "BILLING_LOG_LEVEL": "INFO",
            **clock_file(self.workdir / "clock.json"),
            **signing.environment(),
            "BILLING_KAFKA__CLOSED_NETWORK": "true",
            **extra,
        }

    def process(self, name: str = "ledger", database_url: str | None = None, **extra: str) -> ServiceProcess:
        process = ServiceProcess("ledger", self.env(database_url, **extra), log_path=self.workdir / f"{name}.log",
                                 name=name)
        self.processes.append(process)
        return process

    async def committed(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The consumer group's committed offsets (read without joining the group)."""
        probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=self.group_id,
                                 enable_auto_commit=False)
        await probe.start()
        try:
            return {(topic, p): await probe.committed(TopicPartition(topic, p)) or 0 for topic, p in partitions}
        finally:
            await probe.stop()

    async def consumed(self, ends: dict[tuple[str, int], int]) -> bool:
        """Has the ledger committed every message up to ``ends`` (see :class:`AckedProducer`)?"""
        committed = await self.committed(ends)
        return all(committed[partition] >= end for partition, end in ends.items())


class AckedProducer:
    """Publishes like the channels do and remembers, from the broker's acknowledgements, where
    each partition ends: what "the consumer has committed everything" is measured against (the
    embedded broker's ListOffsets answers are not exact for batched writes)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5,
                                          max_batch_size=262_144)
        self.ends: dict[tuple[str, int], int] = {}

    async def send_many(self, topic: str, envelopes: Sequence[Envelope[Any]]) -> list[tuple[str, int, int]]:
        """Each envelope signed by its producer's test key."""
        return await self.send_raw_many(topic, [(e.account.encode(), e.to_bytes()) for e in envelopes],
                                        [signed_headers(e) for e in envelopes])

    async def send_raw_many(
        self, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]],
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
    ) -> list[tuple[str, int, int]]:
        """Send in order; returns where each message landed: (topic, partition, offset)."""
        futures = [await self._producer.send(topic, value, key=key, headers=headers[n] if headers else None)
                   for n, (key, value) in enumerate(messages)]
        landed = []
        for metadata in await asyncio.gather(*futures):
            partition = (metadata.topic, metadata.partition)
            self.ends[partition] = max(self.ends.get(partition, 0), metadata.offset + 1)
            landed.append((metadata.topic, metadata.partition, metadata.offset))
        return landed

    async def send(self, topic: str, envelope: Envelope[Any]) -> None:
        await self.send_many(topic, [envelope])

    async def __aenter__(self) -> AckedProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()


@pytest.fixture
async def deployment(
    bootstrap_servers: str, topic_prefix: str, postgres_databases: Any, tmp_path: Path
) -> AsyncIterator[LedgerDeployment]:
    deployment = LedgerDeployment(bootstrap_servers, topic_prefix, await postgres_databases.create(), tmp_path)
    await deployment.create_topics()
    try:
        yield deployment
    finally:
        for process in deployment.processes:
            process.kill()


@pytest.fixture
async def facts(deployment: LedgerDeployment) -> AsyncIterator[LedgerFacts]:
    facts = LedgerFacts(deployment.database_url, deployment.prefix)
    yield facts
    await facts.close()


@pytest.fixture
def traffic(request: pytest.FixtureRequest) -> Traffic:
    """Random but repeatable: the seed is the test's name unless BILLING_TEST_SEED says otherwise."""
    seed = size("SEED", sum(map(ord, request.node.name)))
    return Traffic(seed)


@pytest.fixture
async def producer(bootstrap_servers: str) -> AsyncIterator[AckedProducer]:
    async with AckedProducer(bootstrap_servers) as producer:
        yield producer


@pytest.fixture
def http_door() -> Any:
    """``port, door = http_door()``: a free port to give a process, and its HTTP door."""

    def make() -> tuple[int, HttpDoor]:
        port = free_port()
        return port, HttpDoor(port)

    return make


@pytest.fixture
def numbers() -> Any:
    """``numbers(n, first=1)``: n account numbers with valid check digits."""
    return lambda n, first=1: [account_number(first + k) for k in range(n)]


@pytest.fixture
def register(deployment: LedgerDeployment, facts: LedgerFacts, producer: AckedProducer, traffic: Traffic) -> Any:
    """``await register(numbers)``: SubscriberRegistered for each, until the ledger opened them all."""
    from billing_events.testing.plugin import eventually

    async def register(accounts: Sequence[str], timeout: float = 60) -> None:
        await producer.send_many(deployment.topics(topics.IDENTITY), [traffic.registration(n) for n in accounts])
        await eventually(lambda: _at_least(facts.open_accounts(), len(accounts)), timeout=timeout,
                         what=f"{len(accounts)} accounts opened")

    return register


async def _at_least(value: Any, expected: int) -> bool:
    return (await value) >= expected


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpDoor:
    """A ledger process's health and metrics endpoints (``BILLING_HTTP_PORT``)."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def get(self, path: str) -> tuple[int, str]:
        def fetch() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        return await asyncio.to_thread(fetch)

    async def ready(self) -> dict[str, Any]:
        status, body = await self.get("/health/ready")
        return {"status": status, **json.loads(body)}

    async def samples(self, metric: str) -> list[float]:
        """Every sample of one metric (all label sets) the process exposes."""
        _, body = await self.get("/metrics")
        return [float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                if line.startswith((f"{metric}{{", f"{metric} "))]

    async def handled(self, event_type: str) -> int:
        """``billing_events_handled_total`` of the process for one event type."""
        _, body = await self.get("/metrics")
        for line in body.splitlines():
            if line.startswith("billing_events_handled_total{") and f'event_type="{event_type}"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        return 0


Snapshot = dict[str, dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]]
"""service -> table -> primary key -> row."""


class Suite:
    """The four services as `make run` runs them (``billing up``: one process each, SQLite files in
    one data folder, the dev secrets of that folder), on the session's broker; or, given
    ``databases`` (service -> URL), each on its own PostgreSQL database as in production."""

    def __init__(self, data_dir: Path, bootstrap_servers: str, prefix: str,
                 databases: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.prefix = prefix
        self.databases = databases or {}
        data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = dev_secrets(data_dir)  # made once per data folder, as `billing up` does
        env = {
            **self.secrets,
            **signing.trusting_tests_too(self.secrets),
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "BILLING_KAFKA__CLOSED_NETWORK": "true",
            "BILLING_KAFKA__TOPIC_PREFIX": prefix,
            "BILLING_KAFKA__PARTITIONS": "3",
            "BILLING_KAFKA__SESSION_TIMEOUT_MS": "2000",
            "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
            "BILLING_DATA_DIR": str(data_dir.resolve()),
            **clock_file(data_dir / "clock.json"),
            **{f"BILLING_{service.upper()}_DATABASE_URL": url for service, url in self.databases.items()},
        }
        self.processes = {
            name: ServiceProcess(name, env, log_path=data_dir / f"{name}.log") for name in SERVICES
        }

    async def start(self) -> None:
        for process in self.processes.values():
            process.spawn()  # all at once, as the launcher does
        for process in self.processes.values():
            await process.wait_ready(90)

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM to every service at once, as the launcher does on Ctrl-C."""
        codes = await asyncio.gather(*(process.stop(30) for process in self.processes.values()))
        return dict(zip(self.processes, codes, strict=True))

    def database(self, service: str) -> Path:
        return self.data_dir / service / f"{service}.db"

    def snapshot(self) -> Snapshot:
        """Every row of every table of every service's SQLite file, by primary key."""
        found: Snapshot = {}
        for service in SERVICES:
            path = self.database(service)
            if not path.exists():
                continue
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                   "AND name NOT LIKE 'sqlite_%'")]
                found[service] = {}
                for table in tables:
                    columns = list(db.execute(f'PRAGMA table_info("{table}")'))
                    keys = [c[0] for c in sorted((c for c in columns if c[5]), key=lambda c: c[5])] or [
                        c[0] for c in columns
                    ]
                    found[service][table] = {
                        tuple(row[k] for k in keys): tuple(row) for row in db.execute(f'SELECT * FROM "{table}"')
                    }
        return found

    def query(self, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.database(service)}?mode=ro", uri=True)) as db:
            return list(db.execute(sql, params))

    def balance(self, number: str) -> int | None:
        rows = self.query("ledger", "SELECT main FROM accounts WHERE number = ?", number)
        return rows[0][0] if rows else None

    def tail(self) -> str:
        return "\n".join(f"--- {name}\n{process.tail(15)}" for name, process in self.processes.items())

    async def quiet(self, seconds: float = 2.0, timeout: float = 30.0) -> Snapshot:
        """Wait until no service's database changes for ``seconds``; returns that state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last, since = self.snapshot(), loop.time()
        while loop.time() < deadline:
            await asyncio.sleep(0.25)
            now = self.snapshot()
            if now != last:
                last, since = now, loop.time()
            elif loop.time() - since >= seconds:
                return now
        raise AssertionError(f"the services' databases kept changing for {timeout}s")


@pytest.fixture
async def suite(tmp_path: Path, bootstrap_servers: str, topic_prefix: str) -> AsyncIterator[Suite]:
    suite = Suite(tmp_path / "var", bootstrap_servers, topic_prefix)
    try:
        yield suite
    finally:
        for process in suite.processes.values():
            process.kill()
