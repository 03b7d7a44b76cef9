"""An account's whole life, merged from every service's topic.

Every topic is keyed by account number, so one account's events sit in one partition of each
topic (Kafka's default partitioner: murmur2 of the key). The history reads just that partition
of each topic from the beginning to its current end: no consumer group, nothing committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from billing_cli.output import money
from billing_events import topics
from billing_events.envelope import Envelope, InvalidEvent, decode, is_current

HISTORY_TOPICS = (topics.IDENTITY, topics.PAYMENTS, topics.LEDGER, topics.LEDGER_COMMANDS, topics.TARIFF, topics.NOTIFIER)


@dataclass(frozen=True)
class HistoryLine:
    envelope: Envelope[Any]
    balance: int | None
    """The main balance after this event, for events that moved money (BalanceChanged)."""


async def read_account(broker: dict[str, Any], names: topics.TopicNames, account: str,
                       wanted: tuple[str, ...] = HISTORY_TOPICS) -> list[Envelope[Any]]:
    consumer = AIOKafkaConsumer(**broker, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        existing = await consumer.topics()
        key = account.encode()
        for topic in (names(t) for t in wanted):
            if topic in existing:
                count = len(consumer.partitions_for_topic(topic) or ())
                partitions.append(TopicPartition(topic, DefaultPartitioner()(key, list(range(count)), list(range(count)))))
        if not partitions:
            return []
        found: list[Envelope[Any]] = []
        for record in await read_from_beginning(consumer, partitions):
            if record.key == key:
                try:
                    envelope = decode(record.value)
                except InvalidEvent:
                    continue
                if is_current(envelope):  # an older version beside it tells the same fact again
                    found.append(envelope)
        return found
    finally:
        await consumer.stop()


async def read_from_beginning(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> list[Any]:
    """Every record of the partitions, oldest first, until the broker has nothing more.

    Reading stops after two empty polls rather than at the reported end offsets: the embedded
    broker's end offsets can lag behind what it holds."""
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    records: list[Any] = []
    quiet = 0
    while quiet < 2:
        batches = await consumer.getmany(timeout_ms=400)
        quiet = 0 if batches else quiet + 1
        for batch in batches.values():
            records.extend(batch)
    return records


def timeline(envelopes: list[Envelope[Any]]) -> list[HistoryLine]:
    """Events in the order they happened, each money event with the balance it left."""
    ordered = sorted({e.event_id: e for e in envelopes}.values(), key=lambda e: (e.occurred_at, e.event_id))
    lines = []
    for envelope in ordered:
        balance = envelope.payload.main.minor if envelope.event_type == "BalanceChanged" else None
        lines.append(HistoryLine(envelope, balance))
    return lines


def summary(envelope: Envelope[Any]) -> str:
    """One line a person reads: the event's own fields, money in roubles, no secrets."""
    payload = envelope.payload
    skip = {"account_number", "sealed_secret", "sealed_contact", "transaction_id", "cause_event_id"}
    parts = []
    for name, value in payload:
        if name in skip or value in (None, "", ()):
            continue
        if hasattr(value, "minor") and hasattr(value, "currency"):
            value = money(value.minor, value.currency)
        elif hasattr(value, "value"):
            value = value.value
        parts.append(f"{name}={value}")
    return ", ".join(parts)
