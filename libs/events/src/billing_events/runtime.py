"""A service process: its database, its broker, its consumer and its outbox relay.

Every service builds one :class:`ServiceRuntime` in its ``app.py``. Tests build the same object
in-process (with a manual clock and a test topic prefix); ``python -m <service>`` runs it until
SIGINT/SIGTERM. Stopping goes in the safe order: stop consuming, let the relay publish what was
committed, close the database.

A process consumes and relays by default. ``process_role`` splits the two across processes, so
that consuming (posting into the database) and publishing (encoding and sending to the broker)
each have a core: consumer processes stage outbox rows and their commits notify the relay
process through PostgreSQL (see :mod:`billing_events.event_log`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker
from sqlalchemy import MetaData, text
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_fixed

from billing_contracts import catalog as _catalog  # noqa: F401  (registers every event type
from billing_contracts import topics
from billing_events import inbox, metrics, migrations
from billing_events.clock import Clock
from billing_events.consumer import BatchHandler, EventConsumer
from billing_events.db import Database, awaiting, is_transient
from billing_events.kafka import empty_topics, ensure_topics, make_broker, make_producer, start_producer, subscribe
from billing_events.logging import configure_logging, get_logger
from billing_events.event_log import OutboxRelay, published, unpublished, listen_for_appended_rows, published_topics
from billing_events.schema import plumbing_metadata
from billing_events.settings import DevelopmentDefaultsInProduction, ServiceSettings
from billing_events.signing import SIGNATURE_HEADER
from billing_contracts.topics import EVENT_TOPICS, TopicNames, dead_letter_spec

if TYPE_CHECKING:  # the HTTP door's modules are imported where it is served (see ServiceRuntime.http_app)
    import uvicorn
    from fastapi import APIRouter, FastAPI

    from billing_events.auth import Tokens

log = get_logger(__name__)

BackgroundTask = Callable[[], Awaitable[None]]


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    clock: Clock
    metadata: MetaData
    handler: BatchHandler | None = None
    consumes: Sequence[str] = ()
    """Logical topic names the service's handler reads."""
    background: list[BackgroundTask] = field(default_factory=list)
    """Long-running loops of the service (a billing clock, a retry scheduler...)."""
    routers: list[APIRouter] = field(default_factory=list)
    """The service's HTTP routes, served beside /health (and /metrics, unless metrics_port gives
    it a port of its own) when http_port is set (not by a relay process). A service whose routes'
    modules are heavy gives them to :meth:`include_api` instead, to be built only if served."""
    tasks_stop_grace: float = 20.0
    """Seconds a stop waits for its cancelled background tasks (the notifier's sends in flight
    get 15) before it goes on without them; production's grace is 45 (deploy/)."""
    migrated: bool = False
    """The service keeps its schema history in ``<name>.migrations`` (:mod:`billing_events.migrations`):
    starting upgrades the database, or refuses one behind the code. False: the tables are made
    from ``metadata`` (the small services of tests)."""

    def __post_init__(self) -> None:
        self.settings.refuse_development_defaults()
        self.name = self.settings.service_name
        self.settings.kafka.refuse_cleartext()
        role = self.settings.process_role
        self.consuming, self.relaying = role != "relay", role != "consumer"
        self.topics = TopicNames(self.settings.kafka.topic_prefix)
        database = self.settings.database
        self.db = Database(
            self.settings.resolved_database_url(),
            pool_size=database.pool_size,
            max_overflow=database.max_overflow,
            echo=database.echo,
        )
        if role != "all" and self.db.dialect != "postgresql":
            raise ValueError(f"process_role={role} needs PostgreSQL: its notifications carry the wake-ups "
                             "between consumer and relay processes")
        self.broker: KafkaBroker = make_broker(self.settings.kafka, client_id=f"billing-{self.name}")
        self.producer = make_producer(self.settings.kafka, client_id=f"billing-{self.name}")
        """What the outbox relay (and a republish) sends with."""
        self.signer = self.settings.envelope_signer() if self.relaying else None
        """Signs each record as the relay hands it to the producer (see :meth:`_publish`). A
        consumer process publishes nothing: it is not given the key."""
        self.relay = OutboxRelay(
            self.db,
            self._publish,
            clock=self.clock,
            name=self.name,
            retention=timedelta(hours=hours) if (hours := self.settings.outbox_retention_hours) else None,
            poll_interval=self.settings.outbox_poll_seconds,
        )
        self.group_id = f"{self.settings.kafka.topic_prefix}{self.name}"
        self._after_commit: list[Callable[[], None]] = []
        self.consumer: EventConsumer | None = None
        self.subscriber: Any = None
        if self.handler is not None:
            self.attach_handler(self.handler)
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        self._apis: list[Callable[[], APIRouter]] = []
        self._token_keys = self.settings.token_keys()  # read now: a wrong key stops every role's start
        self._operator_keys = self.settings.operator_key_ring()
        self._servers: list[uvicorn.Server] = []
        self.http_port: int | None = None
        self.metrics_port: int | None = None
        self._lag_reported: set[Any] = set()
        """The partitions whose lag gauge this process set: removed when they leave it."""
        metrics.DB_CONNECTIONS_IN_USE.labels(self.name).set_function(self.db.in_use)
        metrics.DB_CONNECTIONS_WAITING.labels(self.name).set_function(lambda: self.db.waiting)

    @cached_property
    def http_app(self) -> FastAPI:
        """/health, /metrics (unless metrics_port gives it a port of its own) and, but in a relay
        process, the service's API. Built at its first use (the start, when http_port is set): a
        process that serves no HTTP imports neither the framework nor the token library nor the
        routes' modules (with the receipts' PDF, 31 of the 127 MiB a ledger process imported)."""
        from billing_events.archive import events_router
        from billing_events.http import DoorPolicy, build_http_app
        from billing_events.revocations import StoredRevocations

        settings = self.settings
        served = [*self.routers, events_router(self.name, self.db), *(api() for api in self._apis)] \
            if self.consuming else []
        doors = DoorPolicy(api_docs=settings.serves_api_docs, strict_transport=settings.in_production,
                           max_request_bytes=settings.max_request_bytes)
        app = build_http_app(self.name, self.readiness, served, needed=self.needed_checks,
                             metrics=settings.metrics_port is None, doors=doors)
        app.state.tokens = self.tokens
        app.state.revocations = StoredRevocations(self.db)
        return app

    @cached_property
    def tokens(self) -> Tokens:
        """What the API checks its callers' tokens with (and identity's issues them with)."""
        from billing_events.auth import Tokens

        return Tokens(self._token_keys, self.clock, audience=self.name, operators=self._operator_keys)

    def include_api(self, build_router: Callable[[], APIRouter]) -> None:
        """Serve the router ``build_router`` makes beside /health and /metrics: for routes that
        need the built runtime. It is called (and the routes' modules imported) when the HTTP door
        is built, so only in a process that serves it; a relay process serves no API (only health
        and metrics)."""
        self._apis.append(build_router)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time a consumed batch has committed (e.g. to wake a sender)."""
        self._after_commit.append(callback)

    def _committed(self) -> None:
        self.relay.wake()
        for callback in self._after_commit:
            callback()

    def attach_handler(self, handler: BatchHandler) -> None:
        """Consume ``consumes`` with ``handler``: for a handler that needs the runtime's database.
        A relay process consumes nothing: it keeps the handler but builds no consumer."""
        self.handler = handler
        if not self.consuming:
            return
        self.consumer = EventConsumer(
            name=self.name,
            db=self.db,
            handler=handler,
            topics=self.topics,
            clock=self.clock,
            on_commit=self._committed,
            keeps=[self.topics(topic) for topic in self.consumes if topic in topics.INGRESS_TOPICS],
            max_message_bytes=self.settings.max_message_bytes,
            keyring=self.settings.signing_keyring(),
        )
        self.subscriber = subscribe(
            self.broker,
            self.consumer,
            topics=[self.topics(topic) for topic in self.consumes],
            group_id=self.group_id,
            settings=self.settings.kafka,
        )

    async def _publish(self, topic: str, key: bytes, value: bytes, headers: dict[str, str], *,
                       signed_as: str | None = None) -> Awaitable[Any]:
        """Send one record, signed for ``signed_as`` (a real topic name; default: ``topic``).

        Signed here, as the relay sends, not when the row is staged: every publication (the
        first, a refill of a lost topic, a replay) carries a signature by the key the service
        holds now, so history stays verifiable after a rotation has retired the key that was
        current when it happened, and the consumer's transaction does not pay for it. A row that
        already carries a signature is another publisher's record the service kept (a channel's
        payment): it goes out with that publisher's own signature, which the service cannot make."""
        if self.signer is not None and SIGNATURE_HEADER not in headers:
            logical = (signed_as or topic).removeprefix(self.topics.prefix)
            headers = {**headers, **self.signer.headers(logical, key, value)}
        return await self.producer.send(topic, value, key=key,
                                        headers=[(name, text.encode()) for name, text in headers.items()])

    async def migrate(self) -> migrations.Migrated:
        """Upgrade the service's database to the head of its history."""
        return await migrations.upgrade(self.db, self.name)

    async def _prepare_schema(self) -> None:
        if not self.migrated:
            await self.db.create_schema(plumbing_metadata, self.metadata)
        elif self.settings.migrate_on_start:
            await self.migrate()
        else:
            await migrations.ensure_current(self.db, self.name)

    async def _prune_inbox(self) -> None:
        """Forget claimed event ids older than the retention, once an hour."""
        retention = timedelta(days=self.settings.inbox_retention_days)
        while True:
            forgotten = await inbox.prune(self.db, before=self.clock.now() - retention)
            if forgotten:
                log.info("inbox pruned", service=self.name, forgotten=forgotten, older_than_days=retention.days)
            await asyncio.sleep(3600)

    async def start(self) -> None:
        await self._prepare_schema()
        if self.settings.kafka.create_topics:
            await ensure_topics(
                self.settings.kafka, self.topics, [*EVENT_TOPICS, dead_letter_spec(self.name)]
            )
        await self.broker.connect()  # the producer only: nothing is consumed before the restore
        await start_producer(self.producer)
        if self.relaying:
            await self._restore_lost_topics()
        await self.broker.start()
        self._tasks.append(asyncio.create_task(self._watch_backlog(), name=f"{self.name}-backlog"))
        if self.relaying:
            self._relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-relay")
            if self.db.dialect == "postgresql":  # another process's commits wake this relay too
                listen = partial(listen_for_appended_rows, self.db, self.relay.wake)
                self._tasks.append(asyncio.create_task(self._supervised(listen, "outbox-notifications"),
                                                       name=f"{self.name}-outbox-notifications"))
        pruning = [self._prune_inbox] if self.settings.inbox_retention_days else []
        for task in [*self.background, *pruning] if self.consuming else ():
            name = getattr(task, "__name__", "background")
            self._tasks.append(asyncio.create_task(self._supervised(task, name), name=f"{self.name}-{name}"))
        if self.settings.http_port is not None:
            self.http_port = await self._serve(self.http_app, self.settings.http_port, "http")
        if self.settings.metrics_port is not None:
            from billing_events.http import build_metrics_app

            self.metrics_port = await self._serve(build_metrics_app(), self.settings.metrics_port, "metrics")
        self.started = True
        log.info("service started", service=self.name, role=self.settings.process_role,
                 consumes=list(self.consumes) if self.consuming else [],
                 database=self.db.dialect, broker=self.settings.kafka.bootstrap_servers)

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        for server in self._servers:
            server.should_exit = True
        self._servers.clear()
        if self.subscriber is not None:
            await self.subscriber.stop()  # no new batches; the one in flight finishes first
        for task in self._tasks:
            task.cancel()
        await self._tasks_ended()
        if self.relaying:
            self.relay.stop()  # it publishes what was committed, while the producer is still up
            try:
                await self._relay_task
            except Exception:
                log.exception("outbox not fully drained at stop; it is published at the next start")
        await self.producer.stop()
        await self.broker.stop()
        await self.db.dispose()
        self._forget_lag(set(self._lag_reported))  # this process holds no partition any more
        log.info("service stopped", service=self.name)

    async def _tasks_ended(self) -> None:
        """Wait for the cancelled background tasks, at most :attr:`tasks_stop_grace` seconds. One
        that is still running then is named in the log and left behind: the stop goes on to
        publish what was committed and close, as a process's stop must within its orchestrator's
        grace period, instead of waiting for ever on a loop that does not end."""
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        ended, running = await asyncio.wait(tasks, timeout=self.tasks_stop_grace)
        for task in ended:
            if not task.cancelled() and task.exception() is not None:
                log.error("background task failed as it stopped", service=self.name, task=task.get_name(),
                          error=repr(task.exception()))
        if running:
            log.error("background tasks still running after their stop grace; left behind", service=self.name,
                      tasks=sorted(task.get_name() for task in running), grace_s=self.tasks_stop_grace)

    async def _restore_lost_topics(self) -> None:
        """Fill the topics this service published to, if the broker lost them, from the events
        its outbox kept (see :meth:`OutboxRelay.restore`)."""
        async with self.db.connect() as conn:
            kept = await published_topics(conn)
        lost = await empty_topics(self.settings.kafka, kept) if kept else []
        if lost:
            began = time.monotonic()
            count = await self.relay.restore(lost)
            log.info("topics restored from the outbox", service=self.name, topics=lost, events=count,
                     seconds=round(time.monotonic() - began, 2))

    async def republish(
        self, *, account: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> int:
        """Publish this service's archived events again on the replay topic, unchanged: the
        original event ids let every consumer's inbox recognise what it already has."""
        count = 0
        async with self.db.connect() as conn:
            async for rows in published(conn, account=account, since=since, until=until):
                pending = [await self._publish(self.topics(topics.REPLAY), row.key.encode(), row.value, row.headers,
                                               signed_as=row.topic)
                           for row in rows]
                await asyncio.gather(*pending)
                metrics.EVENTS_PUBLISHED.labels(self.name).inc(len(rows))
                count += len(rows)
        log.info("events republished", service=self.name, count=count, account=account)
        return count

    async def _supervised(self, task: BackgroundTask, name: str) -> None:
        """Run a background loop for the life of the service: a failure is logged and the loop
        starts again, so one database outage does not silence it for good."""

        def note(attempt: RetryCallState) -> None:
            failure = attempt.outcome.exception() if attempt.outcome else None
            if failure is not None and is_transient(failure):  # the database or the network away: no traceback
                log.warning("background task interrupted; restarting it", task=name, error=repr(failure))
            else:
                log.error("background task failed; restarting it", task=name, exc_info=failure)

        # Cancellation is no Exception: it ends the loop.
        restarting = AsyncRetrying(retry=retry_if_exception_type(Exception), stop=stop_never, wait=wait_fixed(1),
                                   before_sleep=note)
        await restarting(awaiting(task))

    async def _serve(self, app: Any, port: int, what: str) -> int:
        """Serve ``app`` on ``port`` for the life of the service; the port it got (0: any free one)."""
        import uvicorn

        config = uvicorn.Config(app, host=self.settings.http_host, port=port,
                                log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        self._servers.append(server)
        self._tasks.append(asyncio.create_task(server.serve(), name=f"{self.name}-{what}"))
        while not server.started:
            await asyncio.sleep(0.01)
        return int(server.servers[0].sockets[0].getsockname()[1])

    @property
    def needed_checks(self) -> frozenset[str]:
        """What readiness needs: the database for every process. The broker only for a relay
        process: it is there to publish. A process serving the API needs only the database (the
        outbox keeps what is to be published), so a broker outage does not take the API out of
        service; its consumer catches up when the broker is back."""
        return frozenset({"started", "database", "broker"} if self.settings.process_role == "relay"
                         else {"started", "database"})

    async def readiness(self) -> dict[str, bool]:
        checks = {"started": self.started}
        try:
            async with self.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["broker"] = await self.broker.ping(timeout=2)
        if self.subscriber is not None:
            consumer = getattr(self.subscriber, "consumer", None)
            checks["partitions_assigned"] = bool(consumer is not None and consumer.assignment())
        return checks

    async def refresh_gauges(self) -> None:
        """The outbox backlog and the lag of each partition this process holds. A partition a
        rebalance moved elsewhere loses its series here: a stale value would keep a lag alert
        firing (or silent) for a partition another instance now reports."""
        if self.relaying:  # one process per role reports it: a sum over instances stays true
            async with self.db.connect() as conn:
                metrics.OUTBOX_BACKLOG.labels(self.name).set(await unpublished(conn))
        consumer = getattr(self.subscriber, "consumer", None)
        assigned = set(consumer.assignment()) if consumer is not None else set()
        self._forget_lag(self._lag_reported - assigned)
        for partition in assigned:
            end = consumer.highwater(partition)
            if end is not None:
                lag = max(0, end - await consumer.position(partition))
                metrics.CONSUMER_LAG.labels(self.name, partition.topic, str(partition.partition)).set(lag)
                self._lag_reported.add(partition)

    def _forget_lag(self, partitions: set[Any]) -> None:
        for partition in partitions:
            metrics.CONSUMER_LAG.remove(self.name, partition.topic, str(partition.partition))
        self._lag_reported -= partitions

    async def _watch_backlog(self) -> None:
        """Keep the outbox backlog and the consumer lag gauges current."""
        while True:
            try:
                await self.refresh_gauges()
            except Exception as exc:
                # A database outage or a rebalance must not end the watch: the gauges would
                # freeze at their last values just when operators look at them.
                log.warning("metrics round failed; next one in 5 s", error=type(exc).__name__)
            await asyncio.sleep(5)

    async def __aenter__(self) -> ServiceRuntime:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


GC_THRESHOLDS = (50_000, 20, 100)
"""Allocations between young collections (Python's default is 700). A batch of 1,000 events
allocates a few hundred thousand short-lived objects; at the default the collector ran hundreds
of times per batch and cost the ledger a third of its CPU (bench/, ``BENCH_PROFILE``)."""


def tune_garbage_collector() -> None:
    """Move what start-up built (modules, tables, the catalog) out of the collector's sight and
    collect less often: the objects of a batch die young, by reference counting, either way."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(build: Callable[[], ServiceRuntime], argv: Sequence[str] | None = None) -> None:
    """The process entry point: run until SIGINT/SIGTERM, then stop in order. ``--help`` says
    so and starts nothing."""
    service = build.__module__.partition(".")[0]
    parser = argparse.ArgumentParser(
        prog=f"python -m {service}", description=sys.modules[build.__module__].__doc__,
        epilog="Runs until SIGINT or SIGTERM, then stops consuming, publishes its outbox and exits. Every setting "
               "is an environment variable with the prefix BILLING_ (README, \"Configuration\"; docs/operations.md).")
    parser.add_argument("command", nargs="?", choices=["migrate"],
                        help="migrate: upgrade the service's database to this version's schema and exit "
                             "(production's one-shot step before the services start)")
    args = parser.parse_args(argv)

    def built() -> ServiceRuntime:
        try:
            return build()
        except DevelopmentDefaultsInProduction as refused:
            raise SystemExit(str(refused)) from None

    async def migrate() -> None:
        runtime = built()
        configure_logging(runtime.name, fmt=runtime.settings.log_format, level=runtime.settings.log_level)
        try:
            await runtime.migrate()
        finally:
            await runtime.db.dispose()

    async def main() -> None:
        runtime = built()
        configure_logging(runtime.name, fmt=runtime.settings.log_format, level=runtime.settings.log_level)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await runtime.start()
        except migrations.SchemaBehind as behind:
            await runtime.db.dispose()
            raise SystemExit(f"{runtime.name} not started: {behind}") from None
        tune_garbage_collector()
        await stop.wait()
        await runtime.stop()

    asyncio.run(migrate() if args.command == "migrate" else main())
