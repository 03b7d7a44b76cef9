"""Seals of the ledger's journal, as the ledger published them on the broker.

The ledger publishes its chain head as ``JournalSealed`` on ``billing.ledger.seals`` (one
partition, key ``journal``). ``billing verify`` reads every seal on the topic, oldest first, and
has the ledger check that its journal reproduces each one (:func:`ledger.ops.verify`, beside the
seals an auditor wrote down, given as ``--seal``). Reading stops when
the broker has nothing more (see :func:`billing_cli.watch.read_from_beginning`): the newest seal
may not be visible yet, which only means one seal fewer to check; a seal that is there and
disagrees is always a finding.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from billing_cli.output import Exit, fail
from billing_cli.watch import read_from_beginning
from billing_contracts import topics
from billing_contracts.catalog.ledger import JournalSealed
from billing_contracts.envelope import InvalidEvent, decode
from ledger.ops import Seal


async def read_from_broker(broker: dict[str, Any], names: topics.TopicNames) -> list[Seal]:
    """Every JournalSealed on the seal topic (none if the topic does not exist yet), as the
    ledger's verification takes them; ``broker`` holds the client's keywords (the brokers and
    their TLS/SASL settings)."""
    topic = names(topics.LEDGER_SEALS)
    bootstrap = broker["bootstrap_servers"]
    consumer = AIOKafkaConsumer(**broker, enable_auto_commit=False, request_timeout_ms=10_000)
    try:
        await consumer.start()
    except Exception as exc:  # aiokafka's connection errors are not OSErrors
        await consumer.stop()
        fail(f"the broker at {bootstrap} is not reachable to read the seals: {type(exc).__name__}"
             " (--no-seals-from-broker checks without them)", Exit.UNREACHABLE)
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        records = await read_from_beginning(consumer, partitions)
    finally:
        await consumer.stop()
    seals = []
    for record in records:
        try:
            envelope = decode(record.value)
        except InvalidEvent:
            continue  # not a seal; the topic's consumers dead-letter it, the audit has nothing to check
        if isinstance(envelope.payload, JournalSealed):
            sealed = envelope.payload
            seals.append(Seal(sealed.length, bytes.fromhex(sealed.hash),
                              f"the seal at {topic} offset {record.offset} ({sealed.sealed_at:%Y-%m-%d %H:%M:%S} UTC)",
                              sealed.last_transaction_id))
    return seals
