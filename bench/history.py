"""History: ``billing history`` of one account with 100 events, among few and among many events.

Each size is an outbox generated inside PostgreSQL (``INSERT ... SELECT generate_series``) of
BalanceChanged events of the real shape (about 720 bytes), 100 of them for the account read and
the rest spread over 10,000 others. The read is the CLI's own (:func:`billing_cli.history.read_account`
and ``timeline``) against the service's HTTP route, served by uvicorn on a loopback port: what it
costs should follow the account's 100 events, not the size of the outbox.

Restore: :meth:`OutboxRelay.restore` of a kept outbox into an empty topic of the bench's broker,
what a service does at start after the embedded broker lost its topics.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer

from billing_cli.history import read_account, timeline
from billing_contracts import topics
from billing_events.archive import events_router
from billing_events.auth import Tokens
from billing_events.keys import TokenKeys, generate_token_keypair
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType
from billing_events.clock import SystemClock
from billing_events.db import Database
from billing_events.embedded import free_port
from billing_contracts.envelope import Envelope
from billing_events.http import build_http_app
from billing_events.kafka import ensure_topics
from billing_contracts.money import Money
from billing_events.event_log import OutboxRelay
from billing_events.schema import plumbing_metadata
from billing_events.settings import KafkaSettings
from billing_contracts.topics import EVENT_TOPICS, TopicNames

from bench.infra import Broker, Databases, asyncpg_dsn

ACCOUNT = "100000000008"
ACCOUNT_EVENTS = 100
OTHER_ACCOUNTS = 10_000

GENERATE = """
INSERT INTO outbox (topic, key, value, headers, created_at, published_at)
SELECT $1, k.key,
       convert_to(replace(replace($2, $3, md5('bench-history-' || n)::uuid::text), $4, k.key), 'UTF8'),
       '{"event_type": "BalanceChanged", "schema_version": "1"}'::json, now(), now()
FROM generate_series(0, $5 - 1) AS n,
     LATERAL (SELECT CASE WHEN n % ($5 / $6) = 0 AND n / ($5 / $6) < $6 THEN $4
                          ELSE (200000000000 + n % $7)::text END AS key) AS k
"""


def template() -> Envelope[BalanceChanged]:
    rub = Money(minor=150_000)
    event = BalanceChanged(account_number=ACCOUNT, transaction_id=uuid4(), main=rub, bonus=Money(minor=3_000),
                           delta_main=rub, delta_bonus=Money(minor=0), cause_event_id=uuid4(),
                           cause_type="PaymentReceived", payment_type=PaymentType.PREPAID,
                           credit_limit=Money(minor=0))
    return Envelope.new(event, account=ACCOUNT, producer="ledger", clock=SystemClock())


async def generate(databases: Databases, purpose: str, events: int) -> str:
    """A database whose outbox holds ``events`` kept events, ``ACCOUNT_EVENTS`` of them ours."""
    url = await databases.create(purpose)
    db = Database(url)
    try:
        await db.create_schema(plumbing_metadata)
    finally:
        await db.dispose()
    example = template()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(GENERATE, topics.LEDGER, example.to_bytes().decode(), str(example.event_id), ACCOUNT,
                           events, ACCOUNT_EVENTS, OTHER_ACCOUNTS)
        await conn.execute("VACUUM ANALYZE outbox")
    finally:
        await conn.close()
    return url


async def _ready() -> dict[str, bool]:
    return {}


async def time_history(url: str, *, repeat: int) -> dict[str, float]:
    """The CLI's read of ACCOUNT's history through the route, best of ``repeat``."""
    db = Database(url)
    tokens = Tokens(TokenKeys.from_base64(private_key=generate_token_keypair()[1]), SystemClock(), audience="ledger")
    app = build_http_app("ledger", _ready, [events_router("ledger", db)])
    app.state.tokens = tokens
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    sources = {"ledger": f"http://127.0.0.1:{server.config.port}"}

    async def read() -> None:
        token, _ = tokens.issue("service", "bench", audience=["ledger"], scopes=["ledger:history"])
        lines = timeline(await read_account(sources, token, ACCOUNT))
        if len(lines) != ACCOUNT_EVENTS:
            raise RuntimeError(f"history found {len(lines)} events, not {ACCOUNT_EVENTS}")

    try:
        await read()  # connections and caches warm, as for every read after the first
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            await read()
            best = min(best, time.perf_counter() - started)
        tracemalloc.start()  # a separate read: tracing slows what it traces
        await read()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        server.should_exit = True
        await serving
        await db.dispose()
    return {"seconds": best, "peak_kib": peak / 1024}


async def time_restore(url: str, broker: Broker, events: int) -> dict[str, float]:
    """A kept outbox published again into an empty topic, as a service does at start."""
    prefix = f"bench{uuid4().hex[:8]}."
    await ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap, partitions=12), TopicNames(prefix),
                        [spec for spec in EVENT_TOPICS if spec.name == topics.LEDGER])
    db = Database(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("UPDATE outbox SET topic = $1", prefix + topics.LEDGER)
    finally:
        await conn.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=256 * 1024)
    await producer.start()

    async def publish(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> Any:
        return await producer.send(topic, value, key=key, headers=[(n, v.encode()) for n, v in headers.items()])

    try:
        relay = OutboxRelay(db, publish, clock=SystemClock(), name="bench")
        started = time.perf_counter()
        restored = await relay.restore([prefix + topics.LEDGER])
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
        await db.dispose()
    if restored != events:
        raise RuntimeError(f"restored {restored} events, not {events}")
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


async def run(databases: Databases, broker: Broker, *, small: int, large: int, restore: int, repeat: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    figures: dict[str, Any] = {"account_events": ACCOUNT_EVENTS}
    for label, events in (("small", small), ("large", large)):
        say(f"history: generating an outbox of {events:,} events ({ACCOUNT_EVENTS} of the account read)")
        started = time.perf_counter()
        url = await generate(databases, f"history_{label}", events)
        generated = time.perf_counter() - started
        figures[label] = {"events": events, "generate_seconds": generated, **await time_history(url, repeat=repeat)}
        if events == restore:
            say(f"restore: {events:,} kept events into an empty topic")
            figures["restore"] = await time_restore(url, broker, events)
        await databases.drop(url)
    if "restore" not in figures:
        say(f"restore: generating and publishing {restore:,} kept events into an empty topic")
        url = await generate(databases, "restore", restore)
        figures["restore"] = await time_restore(url, broker, restore)
        await databases.drop(url)
    figures["ratio"] = figures["large"]["seconds"] / figures["small"]["seconds"]
    figures["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    return figures
