"""The whole suite in one process under the driver's hand: the four services, each built with
its own ``build(settings, clock)`` as the flow tests build them, over an embedded broker the
driver may restart, on SQLite files or PostgreSQL databases, under one :class:`ManualClock`.

Everything a fault does is here: a crash (a service's tasks cancelled with nothing flushed), a
graceful restart, a restart of the broker (which loses every topic: each service refills what it
kept), a cut database connection, a consumer-group rewind, pruned inboxes, raw redeliveries.
:meth:`Suite.quiet` waits until every topic is consumed and every outbox is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from billing_events import inbox
from billing_events.admin import AdminSettings, rewind_group
from billing_events.clock import ManualClock
from billing_events.embedded import EmbeddedBroker
from billing_events.runtime import ServiceRuntime
from billing_events.schema import outbox
from billing_events.sealing import generate_keypair
from billing_events.settings import KafkaSettings
from billing_events.testing import signing
from billing_events.testing.infrastructure import LOCAL_POSTGRES
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import TEST_TOKEN_PRIVATE_KEY, TEST_TOKEN_PUBLIC_KEY, PostgresDatabases
from identity.app import build as build_identity
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger.app import build as build_ledger
from ledger.settings import DEFAULT_CAMPAIGNS, LedgerSettings
from notifier.app import build as build_notifier
from notifier.settings import NotifierSettings
from tariff.app import build as build_tariff
from tariff.settings import TariffSettings

SERVICES = ("identity", "ledger", "tariff", "notifier")
BUILDERS = {"identity": build_identity, "ledger": build_ledger, "tariff": build_tariff, "notifier": build_notifier}
QUIET_DEADLINE = 120.0
"""Seconds a step may take to settle before the run is called stuck (a failure like any other)."""


class Stuck(AssertionError):
    """The suite did not settle: a topic not consumed or an outbox not published in time."""


@dataclass
class Suite:
    workdir: Path
    database: str
    clock: ManualClock
    broker: EmbeddedBroker | None = None
    kafka: KafkaSettings | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    runtimes: dict[str, ServiceRuntime] = field(default_factory=dict)
    contexts: dict[str, Any] = field(default_factory=dict)
    producer: RawProducer | None = None
    postgres_server: str = LOCAL_POSTGRES
    """The PostgreSQL server each service gets a database of its own on (``database="postgresql"``)."""
    _postgres: PostgresDatabases | None = None
    _broker_generation: int = 0

    # --- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_broker()
        self.settings = await self._make_settings()
        for name in SERVICES:
            await self._start_service(name)
        self.producer = RawProducer(self.kafka.bootstrap_servers)
        await self.producer.__aenter__()

    def _start_broker(self) -> None:
        self._broker_generation += 1
        log = self.workdir / f"broker-{self._broker_generation}.log"
        self.broker = EmbeddedBroker(log_file=log).start()
        base = self.kafka or KafkaSettings(bootstrap_servers=self.broker.bootstrap_servers, topic_prefix="sim.",
                                           partitions=3, consumer_max_records=500, session_timeout_ms=2000,
                                           heartbeat_interval_ms=300, closed_network=True)
        self.kafka = base.model_copy(update={"bootstrap_servers": self.broker.bootstrap_servers})

    async def _database_url(self, name: str) -> str:
        if self.database == "sqlite":
            return f"sqlite+aiosqlite:///{self.workdir / f'{name}.db'}"
        if self._postgres is None:
            self._postgres = PostgresDatabases(self.postgres_server)
        return await self._postgres.create()

    async def _make_settings(self) -> dict[str, Any]:
        public, private = generate_keypair()
        common = {"kafka": self.kafka, "data_dir": self.workdir / "data", "http_port": None,
                  "token_public_keys": [TEST_TOKEN_PUBLIC_KEY], "inbox_retention_days": 0}
        extra: dict[str, dict[str, Any]] = {
            "identity": {"token_private_key": TEST_TOKEN_PRIVATE_KEY, "notifier_public_key": public,
                         "pii_lookup_key": new_key(), "pii_encryption_key": new_key(), "hashing_profile": "fast"},
            "ledger": {"bonus_campaigns_file": DEFAULT_CAMPAIGNS},
            "tariff": {"billing_clock_enabled": False},
            "notifier": {"notifier_private_key": private, "default_language": "ru", "retry_base_delay_seconds": 0.05},
        }
        classes = {"identity": IdentitySettings, "ledger": LedgerSettings, "tariff": TariffSettings,
                   "notifier": NotifierSettings}
        return {name: classes[name](**common, **signing.settings_values(name), **extra[name],
                                    database_url=await self._database_url(name))
                for name in classes}

    async def _start_service(self, name: str) -> None:
        runtime, context = BUILDERS[name](self.settings[name], self.clock)
        await runtime.start()
        self.runtimes[name], self.contexts[name] = runtime, context

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.__aexit__(None, None, None)
            self.producer = None
        for name in reversed(SERVICES):
            if name in self.runtimes:
                await self.runtimes.pop(name).stop()
        if self.broker is not None:
            self.broker.stop()
        if self._postgres is not None:
            await self._postgres.drop_all()

    # --- faults -----------------------------------------------------------------------------

    async def crash(self, name: str) -> None:
        """A SIGKILL of the service, as near as one process allows: every task cancelled where it
        stands (a batch half consumed, an outbox half published), nothing flushed, the
        connections dropped; then the service starts again from its database."""
        runtime = self.runtimes.pop(name)
        runtime.started = False
        tasks = [*runtime._tasks]
        relay = getattr(runtime, "_relay_task", None)
        if relay is not None:
            tasks.append(relay)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runtime.broker.stop(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runtime.producer.stop(), 10)
        await runtime.db.dispose()
        await self._start_service(name)

    async def restart(self, name: str) -> None:
        """A graceful stop and start (the batch in flight finishes, the outbox is drained)."""
        await self.runtimes.pop(name).stop()
        await self._start_service(name)

    async def restart_broker(self) -> None:
        """`make run` stopped and started again: the services stop, the in-memory broker loses
        every topic, a new one starts, and each service fills the topics from what it kept."""
        await self.producer.__aexit__(None, None, None)
        for name in reversed(SERVICES):
            await self.runtimes.pop(name).stop()
        self.broker.stop()
        self._start_broker()
        self.settings = {name: s.model_copy(update={"kafka": self.kafka}) for name, s in self.settings.items()}
        for name in SERVICES:
            await self._start_service(name)
        self.producer = RawProducer(self.kafka.bootstrap_servers)
        await self.producer.__aenter__()

    async def rewind(self, name: str) -> None:
        """Every offset of the service's consumer group back to the beginning."""
        await self.runtimes.pop(name).stop()
        await rewind_group(AdminSettings(kafka=self.kafka), name, datetime(2000, 1, 1, tzinfo=UTC))
        await self._start_service(name)

    async def prune_inboxes(self) -> int:
        """Every claim of every inbox forgotten: retention is a storage choice, not a correctness one."""
        forgotten = 0
        for runtime in self.runtimes.values():
            forgotten += await inbox.prune(runtime.db, before=self.clock.now())
        return forgotten

    async def cut_database(self, name: str) -> None:
        """Every connection of the service's pool dropped under whatever uses it."""
        await self.runtimes[name].db.dispose()

    async def redeliver(self, name: str, pick: int) -> str | None:
        """Publish again, byte for byte, the ``pick``-th event the service keeps in its outbox
        (the payments the ledger took included): a duplicate, or a delivery long delayed."""
        async with self.runtimes[name].db.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(outbox)) or 0
            if not count:
                return None
            row = (await conn.execute(select(outbox.c.topic, outbox.c.key, outbox.c.value)
                                      .order_by(outbox.c.id).offset(pick % count).limit(1))).one()
        await self.producer.send_raw(row.topic, row.value, key=row.key.encode())
        return row.topic

    # --- quiescence -------------------------------------------------------------------------

    async def quiet(self, deadline: float = QUIET_DEADLINE) -> None:
        """Wait until every outbox is published, every consumer group has consumed every topic
        it reads, and two looks in a row see the same: then nothing is left in flight."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline
        last: Any = None
        while loop.time() < until:
            look = await self._look()
            if look is not None and look == last:
                return
            last = look
            await asyncio.sleep(0.1)
        raise Stuck(f"the suite did not settle within {deadline:.0f} s (last look: {last})")

    async def _look(self) -> tuple[Any, ...] | None:
        published = []
        for name, runtime in self.runtimes.items():
            async with runtime.db.connect() as conn:
                waiting = await conn.scalar(select(func.count()).select_from(outbox)
                                            .where(outbox.c.published_at.is_(None)))
                total = await conn.scalar(select(func.count()).select_from(outbox))
            if waiting:
                return None
            published.append((name, total))
        lags = await self._lags()
        if any(lags.values()):
            return None
        return tuple(published)

    async def _lags(self) -> dict[str, int]:
        lags = {}
        for name, runtime in self.runtimes.items():
            consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, group_id=runtime.group_id,
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                partitions = [TopicPartition(topic, p) for topic in (runtime.topics(t) for t in runtime.consumes)
                              for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = [TopicPartition(topic, p)
                                  for topic in (runtime.topics(t) for t in runtime.consumes)
                                  for p in sorted(consumer.partitions_for_topic(topic) or ())]
                ends = await consumer.end_offsets(partitions) if partitions else {}
                lag = 0
                for tp, end in ends.items():
                    # The embedded broker may commit one past the end it reports: not a lag.
                    lag += max(0, end - (await consumer.committed(tp) or 0))
                lags[name] = lag
            finally:
                await consumer.stop()
        return lags

