"""Reading the broker for operations: tailing events and handling dead letters."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from billing_cli.config import CliSettings
from billing_cli.history import summary
from billing_cli.output import Exit, console, emit_json, errors, fail
from billing_events.deadletter import ORIGINAL
from billing_contracts.envelope import InvalidEvent, decode
from billing_contracts.refusal import RefusalCode
from billing_contracts.topics import TopicNames, dead_letter_topic

CONSUMERS = ("ledger", "identity", "tariff", "notifier")


async def tail(settings: CliSettings, wanted: list[str], account: str | None, from_beginning: bool,
               limit: int | None, as_json: bool) -> None:
    """Events in the order they happened: what the topics hold already (with --from-beginning)
    sorted by time across topics and partitions, then each poll's new events sorted the same way."""
    names = TopicNames(settings.topic_prefix)
    consumer = AIOKafkaConsumer(**settings.broker_options(), enable_auto_commit=False)
    shown = 0
    try:
        await consumer.start()
        existing = await consumer.topics()
        partitions = [TopicPartition(topic, partition) for topic in (names(t) for t in wanted) if topic in existing
                      for partition in sorted(consumer.partitions_for_topic(topic) or ())]
        if from_beginning:
            backlog = await read_from_beginning(consumer, partitions)
        else:
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            backlog = []
        records = backlog
        while True:
            for record in sorted(_of_account(records, account), key=_when):
                _show(record, as_json)
                shown += 1
                if limit is not None and shown >= limit:
                    return
            records = [r for batch in (await consumer.getmany(timeout_ms=400)).values() for r in batch]
    finally:
        await consumer.stop()


def _of_account(records: list[Any], account: str | None) -> list[Any]:
    return [r for r in records if account is None or (r.key or b"").decode(errors="replace") == account]


def _when(record: Any) -> tuple[datetime, str]:
    """When the event happened (the broker's timestamp for a message that is no event)."""
    try:
        envelope = decode(record.value)
    except InvalidEvent:
        return datetime.fromtimestamp(record.timestamp / 1000, UTC), ""
    return envelope.occurred_at, str(envelope.event_id)


def _show(record: Any, as_json: bool) -> None:
    try:
        envelope = decode(record.value)
    except InvalidEvent as exc:
        errors.print(f"{record.topic} unreadable message: {exc}", markup=False)
        return
    if as_json:
        emit_json(envelope.model_dump(mode="json"))
    else:
        console.print(f"{envelope.occurred_at:%Y-%m-%d %H:%M:%S} [cyan]{record.topic}[/cyan] {envelope.account}"
                      f" [bold]{envelope.event_type}[/bold] {summary(envelope)}")


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


@dataclass(frozen=True)
class DeadLetterView:
    consumer: str
    offset: int
    body: dict[str, Any]
    original_signature: dict[str, str]
    """The original record's signature headers, as the dead-letter record kept them."""

    @property
    def ref(self) -> str:
        return f"{self.consumer}/{self.offset}"

    @property
    def code(self) -> str:
        return str(self.body.get("code", ""))

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", ""))

    @property
    def when(self) -> str:
        return str(self.body.get("dead_lettered_at", ""))

    @property
    def event_type(self) -> str | None:
        return self.body.get("event_type")

    @property
    def source(self) -> str:
        source = self.body.get("source", {})
        return f"{source.get('topic')}[{source.get('partition')}]@{source.get('offset')}"

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.body.get("original_base64", ""))

    def summary(self) -> dict[str, Any]:
        return {"ref": self.ref, "consumer": self.consumer, "code": self.code, "reason": self.reason, "when": self.when,
                "source": self.body.get("source"), "event_type": self.event_type, "key": self.body.get("key")}


def _original_signature(headers: Any) -> dict[str, str]:
    return {name.removeprefix(ORIGINAL): text.decode() for name, text in headers or () if name.startswith(ORIGINAL)}


async def _read_dead_letters(settings: CliSettings, consumers: tuple[str, ...]) -> list[DeadLetterView]:
    names = TopicNames(settings.topic_prefix)
    consumer = AIOKafkaConsumer(**settings.broker_options(), enable_auto_commit=False)
    try:
        await consumer.start()
        existing = await consumer.topics()
        partitions = [TopicPartition(names(dead_letter_topic(c)), 0) for c in consumers
                      if names(dead_letter_topic(c)) in existing]
        if not partitions:
            return []
        letters = [
            DeadLetterView(record.topic.removeprefix(settings.topic_prefix).split(".")[1], record.offset,
                           json.loads(record.value), _original_signature(record.headers))
            for record in await read_from_beginning(consumer, partitions)
        ]
        return sorted(letters, key=lambda letter: letter.when)
    finally:
        await consumer.stop()


async def dead_letters(settings: CliSettings, service: str | None) -> list[DeadLetterView]:
    if service is not None and service not in CONSUMERS:
        fail(f"unknown service {service!r}; known: {', '.join(CONSUMERS)}", Exit.USAGE)
    return await _read_dead_letters(settings, (service,) if service else CONSUMERS)


async def dead_letter(settings: CliSettings, ref: str) -> DeadLetterView:
    owner, _, offset = ref.partition("/")
    if owner not in CONSUMERS or not offset.isdigit():
        fail(f"{ref!r} is not a dead letter reference (consumer/offset, e.g. ledger/3)", Exit.USAGE)
    for letter in await _read_dead_letters(settings, (owner,)):
        if letter.offset == int(offset):
            return letter
    fail(f"no dead letter {ref}", Exit.NOT_FOUND)


async def retry(settings: CliSettings, ref: str, replacement: bytes | None) -> str:
    letter = await dead_letter(settings, ref)
    if letter.body.get("original_truncated") and replacement is None:
        kept = ("was over the consumers' size limit and only its beginning was kept: send a corrected message"
                if letter.body.get("code") == RefusalCode.TOO_LARGE else
                "was too large for the topic; its whole bytes are in the service's dead_letters table: send them")
        fail(f"{ref}: the original ({letter.body.get('original_size')} bytes) {kept} with --with FILE", Exit.REFUSED)
    topic = letter.body["source"]["topic"]
    key = letter.body.get("key")
    encoded_key = key.encode() if key else b""
    if replacement is None:  # the original, as its producer signed it
        value, headers = letter.original, letter.original_signature
    else:  # a corrected message is the operator's own: signed by the CLI's key, so it must name `cli`
        value = replacement
        headers = settings.signer().headers(topic.removeprefix(settings.topic_prefix), encoded_key, value)
    producer = AIOKafkaProducer(**settings.broker_options())
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=encoded_key or None,
                                     headers=[(name, text.encode()) for name, text in headers.items()])
    finally:
        await producer.stop()
    return topic
