"""The broker side: one faststream broker per service, topics created up front, batch subscribers."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from billing_events.consumer import EventConsumer
from billing_events.db import awaiting
from billing_events.logging import get_logger
from billing_events.settings import KafkaSettings
from billing_contracts.topics import TopicNames, TopicSpec

log = get_logger(__name__)
TOPIC_ALREADY_EXISTS = 36
BATCH_TIMEOUT_MS = 5
"""How long a subscriber's poll waits for records to gather into a batch."""


_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of every client: the CA file (else the system's CAs), the client
    certificate for mutual TLS, and hostname checking unless switched off."""
    context = create_ssl_context(
        cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None,
        certfile=str(settings.ssl_cert_file) if settings.ssl_cert_file else None,
        keyfile=str(settings.ssl_key_file) if settings.ssl_key_file else None,
        password=settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None,
    )
    context.check_hostname = settings.ssl_check_hostname
    return context


def sasl_password(settings: KafkaSettings) -> str:
    """The SASL password, from the variable or from the mounted file (read at each start, so a
    rotated Secret takes effect on the next restart without a new image)."""
    if settings.sasl_password_file is not None:
        return settings.sasl_password_file.read_text().strip()
    assert settings.sasl_password is not None  # KafkaSettings refuses SASL without one of them
    return settings.sasl_password.get_secret_value()


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """The security of the faststream broker (the services' producer and consumers)."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = tls_context(settings) if settings.uses_tls else None
    if not settings.uses_sasl:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.sasl_username is not None
    return _SASL[settings.sasl_mechanism](settings.sasl_username, sasl_password(settings),
                                          ssl_context=context, use_ssl=settings.uses_tls)


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keywords of aiokafka's clients (producer, consumer,
    admin): the same ones faststream derives for the services' broker, so every client the suite
    makes (services, CLI, admin commands, bench) reaches a secured cluster alike."""
    return {"bootstrap_servers": settings.bootstrap_servers, **parse_security(broker_security(settings))}


def make_broker(settings: KafkaSettings, *, client_id: str, description: str = "") -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap_servers,
        security=broker_security(settings),
        client_id=client_id,
        acks=settings.acks,
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.producer_batch_bytes,
        description=description,
        logger=None,  # structlog speaks for the service; faststream's per-message lines are noise
        graceful_timeout=30.0,
    )


def make_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    """The outbox relay's producer: plain aiokafka with the settings of the services' broker
    (security, acks, idempotence, linger, batch size). Handing a row to it costs the relay about
    a third less CPU than faststream's publish path, which wraps every message for middlewares
    the relay does not use (docs/performance.md)."""
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks=settings.acks,
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.producer_batch_bytes,
    )


async def start_producer(producer: AIOKafkaProducer) -> None:
    await _start_with_retry(producer.start, what="producer")


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
    admin = AIOKafkaAdminClient(**client_options(settings))
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
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(KafkaConnectionError), stop=stop_after_attempt(attempts), wait=wait_fixed(1),
        before_sleep=lambda attempt: log.info("broker not reachable yet", what=what, attempt=attempt.attempt_number),
        reraise=True)
    await retrying(awaiting(start))


def _raw_body(message: Any) -> Any:
    """The consumer decodes records itself (:func:`billing_contracts.envelope.decode`). faststream's
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
