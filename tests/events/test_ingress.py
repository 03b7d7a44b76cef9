"""The consumer's door: what it refuses, with which code, and what it lets through.

The consumer is driven with records as the broker hands them over (topic, partition, offset,
key, value) on both databases the suite supports, so each refusal is checked exactly: its
dead letter (row and dead-letter topic message), and that nothing else changed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, PasswordIssued, PasswordPurpose, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.consumer import EventConsumer, EventRouter, Rejected
from billing_events.db import Database, upsert
from billing_contracts.envelope import Envelope, Event
from billing_contracts.money import Money
from billing_events.schema import dead_letters, inbox, outbox, plumbing_metadata
from billing_events.signing import SIGNATURE_HEADERS, Keyring
from billing_events.testing import signing
from billing_events.testing.signing import signed_headers
from billing_events.testing.clock import RunningClock
from billing_events.unit_of_work import UnitOfWork
from billing_contracts.topics import TopicNames

A = "100000000008"
clock = RunningClock()
names = TopicNames("t.")
metadata = MetaData()
totals = Table("totals", metadata, Column("account", String(12), primary_key=True), Column("minor", Integer))


async def on_payment(uow: UnitOfWork, envelope: Envelope[PaymentReceived]) -> None:
    conn = uow.conn
    payment = envelope.payload
    if payment.reference.startswith("poison"):
        raise Rejected("poisoned reference")
    if payment.reference.startswith("limit"):
        raise Rejected("may take 900.00 RUB, not 5000.00 RUB", code="amount_over_limit")
    current = await conn.scalar(select(totals.c.minor).where(totals.c.account == payment.account_number)) or 0
    await conn.execute(upsert(conn, totals, ["account"], ["minor"]),
                       {"account": payment.account_number, "minor": current + payment.amount.minor})


class Door:
    """A consumer of the payments and identity topics that only needs payments."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.consumer = EventConsumer(name="counter", db=db, handler=EventRouter({PaymentReceived: on_payment}),
                                      topics=names, clock=clock, keyring=Keyring.from_entries(signing.PUBLIC_KEYS))
        self.offset = 0

    def record(self, topic: str, value: bytes | None, key: bytes | None,
               headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
        self.offset += 1
        return ConsumerRecord(names(topic), 0, self.offset, 0, 0, key, value, None, 0, 0, headers or [])

    def of(self, topic: str, envelope: Envelope[Any]) -> ConsumerRecord[bytes, bytes]:
        """``envelope`` as its producer publishes it: signed (by the tests' key of that producer)."""
        return self.record(topic, envelope.to_bytes(), envelope.account.encode(), signed_headers(envelope))

    async def take(self, *records: ConsumerRecord[bytes, bytes]) -> None:
        await self.consumer.process(records)

    async def state(self) -> dict[str, int]:
        async with self.db.connect() as conn:
            return dict((await conn.execute(select(totals.c.account, totals.c.minor))).all())

    async def letters(self) -> list[tuple[int, str, str]]:
        """(source offset, code, reason) of every dead letter."""
        async with self.db.connect() as conn:
            rows = await conn.execute(select(dead_letters.c.offset, dead_letters.c.code, dead_letters.c.reason)
                                      .order_by(dead_letters.c.id))
            return [tuple(row) for row in rows]  # type: ignore[misc]

    async def letter_messages(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        async with self.db.connect() as conn:
            rows = await conn.execute(select(outbox.c.value, outbox.c.headers).order_by(outbox.c.id))
            return [(json.loads(value), headers) for value, headers in rows]

    async def letter_count(self) -> int:
        async with self.db.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(dead_letters)) or 0

    async def inbox_size(self) -> int:
        async with self.db.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(inbox)) or 0


@pytest.fixture
async def door(database_url: str) -> AsyncIterator[Door]:
    db = Database(database_url)
    await db.create_schema(plumbing_metadata, metadata)
    yield Door(db)
    await db.dispose()


def envelope(payload: Event, producer: str | None = None, account: str = A) -> Envelope[Any]:
    return Envelope.new(payload, account=account, producer=producer or topics.spec(payload.topic).owner, clock=clock)


def payment(reference: str, minor: int = 500, account: str = A) -> PaymentReceived:
    return PaymentReceived(account_number=account, channel="terminal", reference=reference,
                           amount=Money(minor=minor), received_at=clock.now())


def registration(account: str = A) -> SubscriberRegistered:
    return SubscriberRegistered(account_number=account, contract_number="D-1", region="moscow",
                                legal_status=LegalStatus.PERSON, masked_phone="+7 *** ***-00-00",
                                sealed_contact="c2VhbGVk")


async def test_every_dead_letter_has_a_code_beside_its_reason_in_the_table_the_topic_and_the_headers(
    door: Door,
) -> None:
    good = envelope(payment("OK-1")).to_bytes()
    data = json.loads(good)
    bad: list[tuple[bytes | None, bytes | None, str, str]] = [
        (A.encode(), b"{not json", "unreadable", "not JSON"),
        (A.encode(), b"[1, 2]", "unreadable", "not a JSON object"),
        (A.encode(), json.dumps({**data, "event_type": None}).encode(), "invalid_envelope", "missing or malformed"),
        (A.encode(), json.dumps({**data, "event_id": "x"}).encode(), "invalid_envelope", "event_id: "),
        (A.encode(), json.dumps({**data, "event_type": "PaymentTeleported"}).encode(), "unknown_event_type",
         "unknown event type 'PaymentTeleported'"),
        (A.encode(), json.dumps({**data, "schema_version": 7}).encode(), "unsupported_version",
         "unknown version 7 of PaymentReceived"),
        (A.encode(), good.replace(b'"minor":500', b'"minor":-500'), "invalid_payload", "greater than zero"),
        (b"999999999999", good, "key_mismatch", "is not the envelope's account"),
    ]
    signed = [door.of(topics.PAYMENTS, envelope(payment("poison-1"))),
              door.of(topics.PAYMENTS, envelope(payment("limit-1", 500_000)))]
    await door.take(*(door.record(topics.PAYMENTS, value, key) for key, value, _, _ in bad), *signed)

    letters = await door.letters()
    expected = [(code, part) for _, _, code, part in bad] + [
        ("rejected", "poisoned reference"), ("amount_over_limit", "may take 900.00 RUB, not 5000.00 RUB")]
    assert [code for _, code, _ in letters] == [code for code, _ in expected]
    assert all(part in reason for (_, _, reason), (_, part) in zip(letters, expected, strict=True))
    assert not any(reason.startswith(code) for _, code, reason in letters)  # the sentence, not the code again
    messages = await door.letter_messages()
    assert [(body["code"], headers["code"]) for body, headers in messages] == [(c, c) for c, _ in expected]
    assert [body["reason"] for body, _ in messages] == [reason for _, _, reason in letters]
    # a signed original's signature stays with it, so `billing dlq retry` sends it back as signed
    kept = [{name: text for name, text in headers.items() if name.startswith("original_")} for _, headers in messages]
    assert kept == [{}] * len(bad) + [{f"original_{name}": text.decode() for name, text in record.headers
                                       if name in SIGNATURE_HEADERS} for record in signed]
    assert all(set(found) == {"original_signature", "original_signature_kid"} for found in kept[len(bad):])
    assert await door.state() == {}


def dead_lettered(event_type: str, code: str) -> float:
    labels = {"service": "counter", "event_type": event_type, "code": code}
    return REGISTRY.get_sample_value("billing_events_dead_lettered_total", labels) or 0.0


async def test_a_consumer_takes_from_a_topic_only_what_the_catalog_lists_for_it_and_from_its_owner(
    door: Door,
) -> None:
    counted = dead_lettered("SubscriberRegistered", "wrong_topic")
    await door.take(
        door.of(topics.PAYMENTS, envelope(registration(), producer="identity")),   # a type of another topic
        door.of(topics.IDENTITY, envelope(payment("SMUGGLED", 10_000))),           # money on the identity topic
        door.of(topics.IDENTITY, envelope(registration(), producer="terminal")),  # not the topic's owner
        door.of(topics.PAYMENTS, envelope(payment("CLI-1", 700), producer="cli")),  # payments: any channel
        door.of(topics.PAYMENTS, envelope(payment("BANK-1", 300), producer="bank")),
        door.of(topics.IDENTITY, envelope(registration())),  # listed for identity, not needed here: skipped
        door.of(topics.IDENTITY, envelope(PasswordIssued(
            account_number=A, purpose=PasswordPurpose.INITIAL, channel="sms", masked_destination="+7 ***",
            sealed_secret="c2VhbGVk"))),
    )
    assert await door.state() == {A: 1_000}
    assert await door.inbox_size() == 2
    letters = await door.letters()
    assert [(offset, code) for offset, code, _ in letters] == [(1, "wrong_topic"), (2, "wrong_topic"), (3, "wrong_topic")]
    assert letters[0][2] == "SubscriberRegistered travels on billing.identity, not on billing.payments"
    assert letters[1][2] == "PaymentReceived travels on billing.payments, not on billing.identity"
    assert letters[2][2] == "billing.identity is written by identity only, not by 'terminal'"
    assert dead_lettered("SubscriberRegistered", "wrong_topic") == counted + 2


async def test_a_reused_event_id_with_another_payload_is_dead_lettered_and_changes_nothing(door: Door) -> None:
    first = envelope(payment("P-1", 500))
    await door.take(door.of(topics.PAYMENTS, first))
    forged = first.model_copy(update={"payload": payment("P-1", 500_000)})
    other_account = first.model_copy(update={"payload": payment("P-1", 500, account="100000000016"),
                                             "account": "100000000016"})
    # again, the very same event (a redelivery): dropped without a word
    await door.take(door.of(topics.PAYMENTS, first), door.of(topics.PAYMENTS, forged),
                    door.of(topics.PAYMENTS, other_account))
    # within one batch: the first copy is taken, a different second one refused
    second = envelope(payment("P-2", 200))
    await door.take(door.of(topics.PAYMENTS, second), door.of(topics.PAYMENTS, second),
                    door.of(topics.PAYMENTS, second.model_copy(update={"payload": payment("P-2", 9_999)})))

    assert await door.state() == {A: 700}
    assert await door.inbox_size() == 2
    assert await door.letter_count() == 3
    letters = await door.letters()
    assert [(offset, code) for offset, code, _ in letters] == [
        (3, "conflicting_event_id"), (4, "conflicting_event_id"), (7, "conflicting_event_id")]
    assert letters[0][2] == (f"event id {first.event_id} was taken before with another PaymentReceived payload;"
                             " this one is not applied")
