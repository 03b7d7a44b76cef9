"""The broker side: one faststream broker per service, topics created up front, batch subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from billing_events.consumer import EventConsumer
from billing_events.logging import get_logger
from billing_events.settings import KafkaSettings
from billing_events.topics import TopicNames, TopicSpec

log = get_logger(__name__)
TOPIC_ALREADY_EXISTS = 36
BATCH_TIMEOUT_MS = 5
"""How long a subscriber's poll waits for records to gather into a batch."""


def make_broker(settings: KafkaSettings, *, client_id: str, description: str = "") -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=client_id,
        acks=settings.acks,
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.producer_batch_bytes,
        description=description,
        logger=None,  # structlog speaks for the service; faststream's per-message lines are noise
        graceful_timeout=30.0,
    )


async def ensure_topics(settings: KafkaSettings, names: TopicNames, specs: Iterable[TopicSpec]) -> None:
    """Create the topics the catalog documents; those that exist are left as they are."""
    wanted = [
        NewTopic(
            names(spec.name),
            num_partitions=spec.partitions if spec.partitions == 1 else settings.partitions,
            replication_factor=settings.replication_factor,
            topic_configs={
                "retention.ms": str(spec.retention_ms),
                "min.insync.replicas": str(settings.min_insync_replicas),
            },
        )
        for spec in specs
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await _start_with_retry(admin.start, what="admin client")
    try:
        response = await admin.create_topics(wanted)
        for topic, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {topic}: {message} (error {code})")
    finally:
        await admin.close()


async def empty_topics(settings: KafkaSettings, topics: Iterable[str]) -> list[str]:
    """Those of ``topics`` that exist and hold no record in any partition (a broker that lost
    them: the embedded one after a restart, or a cluster rebuilt from nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await _start_with_retry(consumer.start, what="end-offset reader")
    try:
        existing = await consumer.topics()
        empty = []
        for topic in topics:
            if topic not in existing:
                continue
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = await consumer.end_offsets(partitions)
            if partitions and not any(ends.values()):
                empty.append(topic)
        return empty
    finally:
        await consumer.stop()


async def _start_with_retry(start: Callable[[], Awaitable[Any]], *, what: str, attempts: int = 30) -> None:
    """``await start()`` until the brokers answer (they may come up after the service); a
    callable, since an awaited coroutine cannot be awaited again."""
    for attempt in range(1, attempts + 1):
        try:
            await start()
            return
        except KafkaConnectionError:
            if attempt == attempts:
                raise
            log.info("broker not reachable yet", what=what, attempt=attempt)
            await asyncio.sleep(1)


def _raw_body(message: Any) -> Any:
    """The consumer decodes records itself (:func:`billing_events.envelope.decode`). faststream's
    default decoder would json-parse every body first: twice the work, and a RecursionError on
    deeply nested JSON escapes it and stalls the partition."""
    return message.body


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    *,
    topics: list[str],
    group_id: str,
    settings: KafkaSettings,
    description: str = "",
) -> Any:
    """Feed batches from ``topics`` to ``consumer``; offsets are committed after it returns.

    NACK_ON_ERROR: when ``process`` raises (the database is down for longer than the retry
    window), the subscriber seeks back and the batch is delivered again; never acknowledged
    before the state change committed.
    """

    subscriber = broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=settings.consumer_max_records,
        batch_timeout_ms=BATCH_TIMEOUT_MS,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        title=f"{group_id}:{','.join(topics)}",
        description=description,
        decoder=_raw_body,
    )

    async def on_batch(message: KafkaMessage) -> None:
        records = message.raw_message
        await consumer.process(records if isinstance(records, tuple) else (records,))

    subscriber(on_batch)
    return subscriber
