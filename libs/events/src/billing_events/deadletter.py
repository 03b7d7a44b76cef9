"""Dead letters: a message that cannot be taken is kept with its reason and original bytes.

The record lands in the service's ``dead_letters`` table and, through the outbox, on the
service's dead-letter topic, in the same transaction that moves the consumer past it: the
consumer goes on and nothing already accepted is touched.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.dead_letter_record import DeadLetterRecord, Source
from billing_events.clock import Clock
from billing_events.event_log import append_rows
from billing_events.schema import dead_letters
from billing_contracts.topics import TopicNames, dead_letter_topic

ORIGINAL = "original_"
"""Prefix of the dead-letter record's headers that hold the original's signature headers."""
MAX_REASON = 2000
MAX_ORIGINAL_ON_TOPIC = 256 * 1024
"""Brokers refuse messages over about 1 MB: a larger original stays whole in the table only."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    code: str
    """The refusal's machine code (see :mod:`billing_contracts.refusal`); ``reason`` is its sentence."""
    event_id: UUID | None = None
    event_type: str | None = None
    original_size: int | None = None
    """The original's length in bytes when ``value`` keeps only its beginning (``too_large``)."""
    signature: Mapping[str, str] = field(default_factory=dict)
    """The original's signature headers: kept on the dead-letter topic (``original_<name>``), so
    ``billing dlq retry`` sends the original back as its producer signed it."""

    @property
    def size(self) -> int:
        return len(self.value) if self.original_size is None else self.original_size


async def record(
    conn: AsyncConnection,
    letters: list[DeadLetter],
    *,
    consumer: str,
    topics: TopicNames,
    clock: Clock,
) -> None:
    if not letters:
        return
    now = clock.now()
    rows = [
        {
            "consumer": consumer,
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "key": _text_key(letter.key),
            "value": letter.value,
            "event_id": letter.event_id,
            "event_type": letter.event_type,
            "reason": letter.reason[:MAX_REASON],
            "code": letter.code,
            "created_at": now,
        }
        for letter in letters
    ]
    await conn.execute(insert(dead_letters), rows)
    await append_rows(
        conn,
        [
            {
                "topic": topics(dead_letter_topic(consumer)),
                "key": row["key"] or "",
                "value": _dead_letter_message(row, letter),
                "headers": {"code": row["code"], "reason": row["reason"][:200], "consumer": consumer,
                            **{f"{ORIGINAL}{name}": text for name, text in letter.signature.items()}},
                "created_at": now,
            }
            for row, letter in zip(rows, letters, strict=True)
        ],
    )


def _text_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    return key.decode("utf-8", errors="replace")[:64]


def _dead_letter_message(row: dict[str, Any], letter: DeadLetter) -> bytes:
    return DeadLetterRecord(
        consumer=row["consumer"],
        code=row["code"],
        reason=row["reason"],
        source=Source(topic=letter.topic, partition=letter.partition, offset=letter.offset),
        key=row["key"],
        event_id=letter.event_id,
        event_type=letter.event_type,
        original_base64=base64.b64encode(letter.value[:MAX_ORIGINAL_ON_TOPIC]).decode(),
        original_size=letter.size,
        original_truncated=letter.size > min(len(letter.value), MAX_ORIGINAL_ON_TOPIC),
        dead_lettered_at=row["created_at"],
    ).model_dump_json().encode()
