"""Poison: malformed and hostile messages mixed into valid traffic.

Every bad message becomes exactly one dead letter (row in ``dead_letters``, message on the
ledger's dead-letter topic) with a reason that says what was wrong, found again by the topic,
partition and offset the broker gave it; every valid payment around them is posted; nothing
stalls a partition.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from billing_contracts import topics
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.money import Money
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import eventually
from billing_events.testing.signing import signed_headers
from billing_contracts.topics import dead_letter_topic

BAD = int(os.environ.get("BILLING_TEST_POISON_BAD", 2_000))
VALID = int(os.environ.get("BILLING_TEST_POISON_VALID", 5_000))
ACCOUNTS = 200
MEGABYTE = 1_000_000
TOO_LARGE = r"^message of [\d,]+ bytes is over the limit of 65,536 \(BILLING_MAX_MESSAGE_BYTES\)"
"""A megabyte is refused at the door, before it is parsed: the default limit is 64 KiB."""

Hostile = tuple[bytes | None, bytes | None, str]
"""(message key, message value, pattern the dead letter's reason must match)."""
Expected = tuple[str, str]
"""(pattern of the dead letter's code, pattern of its reason)."""

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


class Poisoner:
    """Bad messages of every kind, built from a valid payment so each differs in one way."""

    def __init__(self, traffic: Any, accounts: list[str]) -> None:
        self.traffic, self.accounts, self.rng = traffic, accounts, traffic.rng
        self.serial = 0

    def _valid(self) -> tuple[bytes, dict[str, Any]]:
        self.serial += 1
        account = self.rng.choice(self.accounts)
        envelope = self.traffic.payment(account, 1_000, f"poison-{self.serial}")
        return account.encode(), json.loads(envelope.to_bytes())

    def _mutated(self, change: Callable[[dict[str, Any]], None], reason: str) -> Hostile:
        key, data = self._valid()
        change(data)
        return key, json.dumps(data).encode(), reason

    def _field(self, path: str, value: Any, reason: str) -> Hostile:
        def change(data: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            for part in parents:
                data = data[part]
            data[last] = value

        return self._mutated(change, reason)

    # --- the kinds; each returns one message --------------------------------------------------

    def truncated_json(self) -> Hostile:
        key, data = self._valid()
        raw = json.dumps(data).encode()
        return key, raw[: self.rng.randint(1, len(raw) - 1)], r"^not JSON"

    def binary_garbage(self) -> Hostile:
        garbage = b"\xff\xfe\x00" + self.rng.randbytes(self.rng.randint(1, 4096))
        return self.rng.choice(self.accounts).encode(), garbage, r"^not JSON"

    def not_an_object(self) -> Hostile:
        value = self.rng.choice([b"[1, 2, 3]", b'"PaymentReceived"', b"42", b"null", b"true"])
        return self.rng.choice(self.accounts).encode(), value, r"^not a JSON object"

    def empty(self) -> Hostile:
        return self.rng.choice(self.accounts).encode(), self.rng.choice([b"", None]), r"^not JSON"

    def no_type(self) -> Hostile:
        return self._mutated(lambda d: d.pop(self.rng.choice(["event_type", "schema_version"])),
                             r"^missing or malformed event_type / schema_version")

    def type_not_a_string(self) -> Hostile:
        return self._field("event_type", ["PaymentReceived"], r"^missing or malformed event_type")

    def unknown_type(self) -> Hostile:
        return self._field("event_type", self.rng.choice(["PaymentRefunded", "DROP TABLE journal", ""]),
                           r"^unknown event type")

    def unknown_version(self) -> Hostile:
        return self._field("schema_version", self.rng.choice([0, 2, 99, -1, 2**40]),
                           r"^unknown version -?\d+ of PaymentReceived; known: \[1\]")

    def negative_amount(self) -> Hostile:
        return self._field("payload.amount.minor", -self.rng.randint(0, 10**6),
                           r"payload\.amount\.minor: Value error, amount must be greater than zero")

    def amount_as_text(self) -> Hostile:
        return self._field("payload.amount.minor", self.rng.choice(["100", "1e3", "сто"]),
                           r"payload\.amount\.minor: Input should be a valid integer")

    def fractional_amount(self) -> Hostile:
        return self._field("payload.amount.minor", self.rng.choice([0.5, 100.25, float("nan"), float("inf")]),
                           r"payload\.amount\.minor: Input should be a (valid|finite) (integer|number)")

    def unknown_currency(self) -> Hostile:
        return self._field("payload.amount.currency", self.rng.choice(["XYZ", "rub", "", "RUBLES"]),
                           r"payload\.amount\.currency: ")

    def unknown_channel(self) -> Hostile:
        return self._field("payload.channel", self.rng.choice(["pigeon", 5, None]), r"payload\.channel: ")

    def bad_timestamp(self) -> Hostile:
        return self._field(self.rng.choice(["occurred_at", "payload.received_at"]),
                           self.rng.choice(["yesterday", "2026-12-10T09:00:00", "", None]),
                           r"(occurred_at|payload\.received_at): ")

    def bad_event_id(self) -> Hostile:
        return self._field("event_id", self.rng.choice(["not-a-uuid", 12345, None, ""]), r"^event_id: ")

    def missing_payload_field(self) -> Hostile:
        field = self.rng.choice(["account_number", "channel", "reference", "amount", "received_at"])
        return self._mutated(lambda d: d["payload"].pop(field), rf"payload\.{field}: Field required")

    def payload_not_an_object(self) -> Hostile:
        return self._field("payload", self.rng.choice([[], "payment", 7]), r"^payload: ")

    def wrong_key(self) -> Hostile:
        _, value, _ = self._mutated(lambda d: None, "")
        key = self.rng.choice([b"999999999999", b"", b"\xff\xfe", None])
        return key, value, r"^message key .* is not the envelope's account"

    def huge_reference(self) -> Hostile:
        return self._field("payload.reference", "R" * MEGABYTE, TOO_LARGE)

    def huge_account(self) -> Hostile:
        return self._field("payload.account_number", "1" * MEGABYTE, TOO_LARGE)

    def deeply_nested(self) -> Hostile:
        depth = self.rng.choice([2_000, 30_000])  # 30,000 deep is 60 KB: within the size limit, parsed
        key, data = self._valid()
        raw = json.dumps(data).encode()
        nested = raw[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"
        return key, nested, r"^not JSON: nested too deeply"

    def overflowing_amount(self) -> Hostile:
        return self._field("payload.amount.minor", 10**30, r"payload\.amount\.minor: Input should be less than or equal to")


# How many of each in a thousand: every kind present; the megabyte ones and the amount that
# only the database refuses (its batch is retried one event at a time) are rare.
MIX: dict[str, int] = {
    "truncated_json": 80, "binary_garbage": 80, "not_an_object": 40, "empty": 30, "no_type": 50,
    "type_not_a_string": 20, "unknown_type": 60, "unknown_version": 60, "negative_amount": 90,
    "amount_as_text": 50, "fractional_amount": 50, "unknown_currency": 50, "unknown_channel": 40,
    "bad_timestamp": 50, "bad_event_id": 40, "missing_payload_field": 60, "payload_not_an_object": 30,
    "wrong_key": 90, "deeply_nested": 10,
}
RARE = {"huge_reference": 3, "huge_account": 3, "overflowing_amount": 2}
CODES: dict[str, str] = {
    "truncated_json": "unreadable", "binary_garbage": "unreadable", "not_an_object": "unreadable",
    "empty": "unreadable", "deeply_nested": "unreadable", "no_type": "invalid_envelope",
    "type_not_a_string": "invalid_envelope", "bad_event_id": "invalid_envelope",
    "bad_timestamp": "invalid_(envelope|payload)", "unknown_type": "unknown_event_type",
    "unknown_version": "unsupported_version", "wrong_key": "key_mismatch",
    "huge_reference": "too_large", "huge_account": "too_large",
}
"""The dead letter's code for each kind; every other kind breaks the payload's schema."""


def kinds_for(total: int, rng: Any) -> list[str]:
    kinds = [kind for kind, count in RARE.items() for _ in range(count)]
    weights = list(MIX.values())
    kinds += rng.choices(list(MIX), weights=weights, k=total - len(kinds))
    kinds += list(MIX)  # every kind at least once, whatever the draw
    del kinds[total:]
    return kinds


@pytest.mark.slow
async def test_every_bad_message_is_dead_lettered_with_its_reason_and_every_valid_one_posted(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any, bootstrap_servers: str
) -> None:
    """2,000 bad messages (``BILLING_TEST_POISON_BAD``) of the kinds above, among them megabyte
    strings (too large for the door) and JSON nested 30,000 deep, shuffled into 5,000 valid payments
    (``BILLING_TEST_POISON_VALID``), plus charges for accounts that do not exist (well formed,
    refused by the ledger's rules) on the tariff topic."""
    await deployment.process().start()
    accounts = numbers(ACCOUNTS)
    await register(accounts)

    poisoner = Poisoner(traffic, accounts)
    kinds = kinds_for(BAD, traffic.rng)
    assert set(kinds) == set(MIX) | set(RARE)
    bad = [(key, value, (CODES.get(kind, "invalid_payload"), reason))
           for kind in kinds for key, value, reason in [getattr(poisoner, kind)()]]
    valid = traffic.payments(accounts, VALID, "valid")
    # The valid payments come signed by their channel, as a channel's would; the bad ones are
    # refused for what is wrong with them before any signature is looked at.
    mixed: list[tuple[bytes | None, bytes | None, Expected | None, list[tuple[str, bytes]]]] = [
        (p.account.encode(), p.to_bytes(), None, signed_headers(p)) for p in valid
    ] + [(key, value, wanted, []) for key, value, wanted in bad]
    traffic.rng.shuffle(mixed)

    landed = await producer.send_raw_many(deployment.topics(topics.PAYMENTS), [(k, v) for k, v, _, _ in mixed],
                                          [headers for _, _, _, headers in mixed])
    expected = {where: wanted for where, (_, _, wanted, _) in zip(landed, mixed, strict=True) if wanted is not None}
    nobody = numbers(50, first=900_000)  # never registered
    charges = [
        traffic.envelope(ChargeApplied(charge_id=f"c-{n}", account_number=number, amount=Money(minor=100),
                                       charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=traffic.clock.now().date()), number)
        for n, number in enumerate(nobody)
    ]
    for where, number in zip(await producer.send_many(deployment.topics(topics.TARIFF), charges), nobody, strict=True):
        expected[where] = ("unknown_account", rf"account {number}")

    await eventually(lambda: deployment.consumed(producer.ends), timeout=120, interval=0.2,
                     what="every message consumed (no partition stalled by a poison pill)")
    letters = await facts.dead_letters()
    by_place = {(row.topic, row.partition, row.offset): row for row in letters}
    assert len(by_place) == len(letters) == len(expected), (len(letters), len(expected))
    wrong = []
    for where, (code, pattern) in expected.items():
        row = by_place.get(where)
        if row is None or not re.fullmatch(code, row.code) or not re.search(pattern, row.reason, re.IGNORECASE):
            wrong.append((where, code, pattern, f"{row.code}: {row.reason[:200]}" if row else "no dead letter"))
    assert not wrong, f"{len(wrong)} dead letters without the expected reason, e.g. {wrong[:5]}"
    assert all(row.consumer == "ledger" for row in letters)

    await facts.assert_consistent(valid, accounts)
    # the dead letters reach the dead-letter topic too (the original bytes in base64)
    async with TopicReader(bootstrap_servers, deployment.topics(dead_letter_topic("ledger"))) as dlq:
        await eventually(lambda: len(dlq.records) >= len(expected), timeout=60,
                         what=f"{len(expected)} messages on the dead-letter topic")
        codes = Counter(json.loads(record.value)["code"] for record in dlq.records)
    await eventually(facts.all_published, what="the outbox drained")
    print(f"\n{len(expected)} dead letters ({len(bad)} malformed, {len(charges)} refused), {VALID} posted; "
          f"codes: {codes.most_common(8)}")
