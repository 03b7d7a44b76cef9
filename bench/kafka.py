"""Plain aiokafka producing and consuming: the broker ceilings and the bench's own traffic."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from billing_contracts import topics
from billing_events.admin import AdminSettings
from billing_events.kafka import BATCH_TIMEOUT_MS, client_options, ensure_topics
from billing_events.settings import KafkaSettings
from billing_contracts.topics import EVENT_TOPICS, TopicNames

from bench.workload import Message

PARTITIONS = 12
TICK = 0.01
"""A steady rate is sent as one group of messages every 10 ms."""


def kafka_settings(bootstrap: str, **overrides: Any) -> KafkaSettings:
    """The ``BILLING_KAFKA__*`` settings (a secured named broker's TLS and SASL) for ``bootstrap``."""
    return AdminSettings().kafka.model_copy(update={"bootstrap_servers": bootstrap, **overrides})


def options(bootstrap: str) -> dict[str, Any]:
    """The keywords of a plain aiokafka client of the bench, security included."""
    return client_options(kafka_settings(bootstrap))


async def create_topics(bootstrap: str, prefix: str) -> None:
    settings = kafka_settings(bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    await ensure_topics(settings, TopicNames(prefix), EVENT_TOPICS)


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(**options(bootstrap), linger_ms=5, max_batch_size=256 * 1024, acks=1)


async def produce(bootstrap: str, prefix: str, messages: Sequence[Message]) -> float:
    """Send every message (keyed by account) and wait for all acknowledgements; seconds taken."""
    started = time.perf_counter()
    async with producer(bootstrap) as sender:
        pending = []
        for message in messages:
            pending.append(await sender.send(f"{prefix}{message.topic}", message.value, key=message.key,
                                             headers=message.headers))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    return time.perf_counter() - started


async def consume_all(bootstrap: str, topic_names: Sequence[str], count: int,
                      timeout: float = 600) -> tuple[float, float]:
    """Read ``count`` records from the beginning of the topics with a plain consumer that only
    parses each record's JSON: records per second from the first fetched batch to the last, and
    this process's CPU microseconds per record over the same window (consuming and decoding one
    message: the unit the ledger's CPU per movement is compared with)."""
    consumer = AIOKafkaConsumer(**options(bootstrap), enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topic_names for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, first, first_size, first_cpu = 0, None, 0, 0.0
        deadline = time.perf_counter() + timeout
        while seen < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"plain consumer saw {seen} of {count} records")
            batches = await consumer.getmany(timeout_ms=200, max_records=1_000)  # the ledger's batch size
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
            size = sum(len(records) for records in batches.values())
            if size and first is None:
                first, first_size, first_cpu = time.perf_counter(), size, time.process_time()
            seen += size
        assert first is not None
        counted = max(count - first_size, 1)
        return (counted / max(time.perf_counter() - first, 1e-9),
                (time.process_time() - first_cpu) / counted * 1e6)
    finally:
        await consumer.stop()


def probe_producer(bootstrap: str) -> AIOKafkaProducer:
    """The latency probe's sender: each group leaves at once (no linger), or the probe's own wait
    would be timed as the system's latency."""
    return AIOKafkaProducer(**options(bootstrap), linger_ms=0, acks=1)


async def tail(bootstrap: str, topic: str, *, fetch_max_wait_ms: int = 5) -> AIOKafkaConsumer:
    """A plain consumer on every partition of ``topic``, positioned at its end (no group)."""
    consumer = AIOKafkaConsumer(**options(bootstrap), enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer


async def send_steadily(sender: AIOKafkaProducer, prefix: str, messages: Sequence[Message],
                        rate: int) -> dict[UUID, float]:
    """Send ``messages`` at ``rate`` per second; returns when each was handed to the producer."""
    per_tick = max(1, round(rate * TICK))
    sent: dict[UUID, float] = {}
    start = time.perf_counter()
    for index, message in enumerate(messages):
        delay = start + (index // per_tick) * TICK - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[message.event_id] = time.perf_counter()
        await sender.send(f"{prefix}{message.topic}", message.value, key=message.key, headers=message.headers)
    await sender.flush()
    return sent


async def observe(consumer: AIOKafkaConsumer, expected: Collection[UUID],
                  match: Callable[[ConsumerRecord[bytes, bytes]], UUID | None]) -> dict[UUID, float]:
    """When the record naming each ``expected`` id (``match`` finds it) arrived. Others are
    skipped: Tansu's end offset can fall short of a partition's last batch, so a tail may first
    read a few older records."""
    seen: dict[UUID, float] = {}
    while len(seen) < len(expected):
        batches = await consumer.getmany(timeout_ms=50)
        now = time.perf_counter()
        for records in batches.values():
            for record in records:
                if (event_id := match(record)) in expected:
                    seen[event_id] = now
    return seen


def latency_ms(sent: dict[UUID, float], seen: dict[UUID, float], what: str) -> dict[str, float]:
    samples = sorted((seen[event_id] - at) * 1000 for event_id, at in sent.items() if event_id in seen)
    if len(samples) < len(sent):
        raise RuntimeError(f"only {len(samples)} of {len(sent)} {what}")
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "max_ms": samples[-1],
    }


async def round_trip(bootstrap: str, prefix: str, payments: Sequence[Message],
                     rate: int) -> dict[str, float]:
    """The latency ceiling: the two broker hops the ledger adds, with nothing done in between.

    The payments go out at ``rate`` to the payments topic; a plain consumer there, with the
    services' fetch wait and batch size, forwards each record unchanged to the ledger topic with
    the services' producer settings (acks, linger) and awaits a batch's acknowledgements before
    the next, as the relay does; a second plain consumer, like the latency probe's, times them.
    """
    settings = KafkaSettings()
    target = f"{prefix}{topics.LEDGER}"
    relay_in = await tail(bootstrap, f"{prefix}{topics.PAYMENTS}",
                          fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms)
    relay_out = AIOKafkaProducer(**options(bootstrap), acks=settings.acks, linger_ms=settings.linger_ms,
                                 max_batch_size=settings.producer_batch_bytes)
    watcher = await tail(bootstrap, target)
    ids = {payment.value: payment.event_id for payment in payments}

    async def forward() -> None:
        while True:
            batches = await relay_in.getmany(timeout_ms=BATCH_TIMEOUT_MS,
                                             max_records=settings.consumer_max_records)
            acks = [await relay_out.send(target, record.value, key=record.key)
                    for records in batches.values() for record in records]
            await asyncio.gather(*acks)

    await relay_out.start()
    forwarder = asyncio.create_task(forward())
    arrivals = asyncio.create_task(observe(watcher, set(ids.values()), lambda r: ids.get(r.value)))
    try:
        async with probe_producer(bootstrap) as sender:
            sent = await send_steadily(sender, prefix, payments, rate)
        seen = await asyncio.wait_for(arrivals, timeout=60)
    finally:
        forwarder.cancel()
        arrivals.cancel()
        await asyncio.gather(forwarder, arrivals, return_exceptions=True)
        for client in (relay_in, relay_out, watcher):
            await client.stop()
    return latency_ms(sent, seen, "payments came back through the two hops")
