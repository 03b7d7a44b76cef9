"""The envelope: ids, causality, validation on the way in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from billing_contracts.catalog.payments import PaymentReceived
from billing_events.clock import ManualClock
from billing_contracts.envelope import Envelope, InvalidEvent, decode
from billing_contracts.money import Money

clock = ManualClock(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))


def _payment(reference: str = "r-1", minor: int = 12345) -> Envelope[PaymentReceived]:
    body = PaymentReceived(account_number="100000000008", channel="bank", reference=reference,
                           amount=Money(minor=minor), received_at=clock.now())
    return Envelope.new(body, account="100000000008", producer="test", clock=clock)


def test_round_trip_keeps_every_field() -> None:
    envelope = _payment()
    assert decode(envelope.to_bytes()) == envelope
    assert envelope.event_type == "PaymentReceived" and envelope.schema_version == 1


def test_event_ids_are_unique_and_sort_by_creation() -> None:
    ids = []
    for _ in range(200):
        ids.append(_payment().event_id)
        clock.advance(timedelta(milliseconds=1))
    assert len(set(ids)) == 200
    assert [i.version for i in ids] == [7] * 200


def test_a_caused_event_inherits_the_correlation_id() -> None:
    cause = _payment()
    effect = Envelope.new(cause.payload, account=cause.account, producer="test", clock=clock, cause=cause)
    assert effect.correlation_id == cause.correlation_id and effect.causation_id == cause.event_id


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda raw: b"\xff\xfe", "not JSON"),
        (lambda raw: b"[1, 2]", "not a JSON object"),
        (lambda raw: raw.replace(b'"schema_version":1', b'"schema_version":9'), "unknown version 9 of PaymentReceived"),
        (lambda raw: raw.replace(b'"PaymentReceived"', b'"Nope"'), "unknown event type 'Nope'"),
        (lambda raw: raw.replace(b'"minor":12345', b'"minor":0'), "payload.amount.minor"),
        (lambda raw: raw.replace(b'"minor":12345', b'"minor":123.45'), "payload.amount.minor"),
        (lambda raw: raw.replace(b'"currency":"RUB"', b'"currency":"XXX"'), "unknown currency"),
        (lambda raw: raw.replace(b'"channel":"bank"', b'"channel":"pigeon"'), "payload.channel"),
        (lambda raw: re.sub(rb'("occurred_at":"[^"]+)Z"', rb'\1"', raw), "occurred_at"),
    ],
)
def test_invalid_messages_are_refused_with_a_reason(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    raw = _payment().to_bytes()
    with pytest.raises(InvalidEvent, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode(mutate(raw))


def test_money_parsing_refuses_too_many_decimals_and_unknown_currencies() -> None:
    assert Money.parse("1234.5").minor == 123450
    assert Money.parse("0,07").minor == 7
    with pytest.raises(ValueError, match="more than 2 decimals"):
        Money.parse("1.234")
    with pytest.raises(ValueError, match="unknown currency"):
        Money.parse("1", "BTC")
    with pytest.raises(ValueError, match="not an amount"):
        Money.parse("ten")


def test_an_amount_too_large_for_money_is_said_in_one_sentence() -> None:
    with pytest.raises(ValueError) as huge:
        Money.parse("99999999999999999999")
    assert str(huge.value) == "99999999999999999999 RUB is more than the 10000000000000.00 RUB an amount may be"
