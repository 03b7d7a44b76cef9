"""Plain aiokafka producing and consuming: the broker ceiling and the bench's own traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from billing_events.kafka import ensure_topics
from billing_events.settings import KafkaSettings
from billing_events.topics import EVENT_TOPICS, TopicNames

from bench.workload import Message

PARTITIONS = 12


async def create_topics(bootstrap: str, prefix: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=PARTITIONS)
    await ensure_topics(settings, TopicNames(prefix), EVENT_TOPICS)


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024, acks=1)


async def produce(bootstrap: str, prefix: str, messages: Sequence[Message]) -> float:
    """Send every message (keyed by account) and wait for all acknowledgements; seconds taken."""
    started = time.perf_counter()
    async with producer(bootstrap) as sender:
        pending = []
        for message in messages:
            pending.append(await sender.send(f"{prefix}{message.topic}", message.value, key=message.key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    return time.perf_counter() - started


async def consume_all(bootstrap: str, topic_names: Sequence[str], count: int, timeout: float = 600) -> float:
    """Read ``count`` records from the beginning of the topics with a plain consumer (no
    processing); records per second from the first fetched batch to the last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topic_names for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, first, first_size = 0, None, 0
        deadline = time.perf_counter() + timeout
        while seen < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"plain consumer saw {seen} of {count} records")
            batches = await consumer.getmany(timeout_ms=200, max_records=1_000)  # the ledger's batch size
            size = sum(len(records) for records in batches.values())
            if size and first is None:
                first, first_size = time.perf_counter(), size
            seen += size
        assert first is not None
        return (count - first_size) / max(time.perf_counter() - first, 1e-9)
    finally:
        await consumer.stop()
