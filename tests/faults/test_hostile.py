"""Hostile input on every topic every service consumes: nothing changes, each message is a dead letter.

The four services run as ``make run`` runs them. After some legitimate traffic (registrations,
payments and the balances the ledger publishes for them) has settled, thousands of hostile
messages of every kind go to every consumed topic: raw bytes, broken JSON, envelopes with a
field missing, unknown event types and versions, payloads that break their schema, amounts out
of range or over the per-movement limit, message keys that are not the envelope's account,
events of another topic, envelopes from a producer that does not own the topic, reused event ids
carrying another payload, payments repeated under a new id with another amount, and forgeries (a valid envelope in its
owner's name, unsigned). The other kinds come signed by the producer they name, as an adapter
gone hostile would sign them: they are refused for what they say.

Every service that consumes the topic dead-letters each of them with the expected code, and no
row of any service's state changes (every table of every database but the dead letters and the
outbox that publishes them). A payment sent after the flood is still posted.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from billing_contracts.ids import uuid7
from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType, TransferRequested
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.envelope import REGISTRY, Envelope
from billing_contracts.money import Money
from billing_events.sealing import seal
from billing_events.testing import signing
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import eventually

HOSTILE = int(os.environ.get("BILLING_TEST_HOSTILE", 3_000))
ACCOUNTS = 20
CONSUMERS = {
    topics.IDENTITY: ("ledger", "tariff", "notifier"),
    topics.PAYMENTS: ("ledger",),
    topics.LEDGER: ("identity", "tariff", "notifier"),
    topics.TARIFF: ("ledger", "notifier"),
    topics.LEDGER_COMMANDS: ("ledger",),
}
"""Who consumes what (each service's ``CONSUMES``): every one of them must refuse each message."""
HANDLED_BY_EVERY_CONSUMER = (topics.IDENTITY, topics.PAYMENTS, topics.LEDGER_COMMANDS)
"""Topics whose base event every consumer of the topic handles: a signature is checked only for an
event the consumer takes (one it does not handle it skips unchecked), so only there does a
forgery make a dead letter at each consumer."""
TAKES_NO_BALANCES = {("identity", topics.LEDGER)}
"""Consumers that take none of the topic's balance changes (identity takes only AccountClosed from
the ledger's topic): a copy of a balance change under its id is skipped unread, as the original
was, so there is no first payload for it to conflict with."""


def refuses(service: str, topic: str, code: str) -> bool:
    """Whether ``service`` dead-letters a hostile message on ``topic`` that every taker refuses with ``code``."""
    if service not in CONSUMERS[topic]:
        return False
    return not (code == "conflicting_event_id" and (service, topic) in TAKES_NO_BALANCES)


MONEY = {topics.PAYMENTS: "amount", topics.LEDGER: "main", topics.TARIFF: "amount", topics.LEDGER_COMMANDS: "amount"}
NOT_STATE = {"dead_letters", "outbox"}
"""What a refusal writes: the dead letter and the outbox row that publishes it."""

Hostile = tuple[bytes | None, bytes | None, str]
"""(message key, message value, the code every consumer must dead-letter it with)."""

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


class Hostiles:
    """Bad messages for one topic, each built from a valid envelope of that topic so it differs in one way."""

    def __init__(self, topic: str, valid: Callable[[], Envelope[Any]], foreign: Callable[[], Envelope[Any]],
                 taken: list[Envelope[Any]], rng: Any) -> None:
        self.topic, self.valid, self.foreign, self.taken, self.rng = topic, valid, foreign, taken, rng

    def kinds(self) -> list[Callable[[], Hostile]]:
        kinds = [self.raw_bytes, self.broken_json, self.not_an_object, self.envelope_field_missing,
                 self.unknown_type, self.unknown_version, self.payload_broken, self.key_mismatch, self.wrong_topic]
        if self.topic in MONEY:
            kinds.append(self.amount_out_of_range)
        if topics.spec(self.topic).open_to is None:
            kinds.append(self.not_the_owner)
        if self.taken:
            kinds.append(self.reused_event_id)
        if self.topic == topics.PAYMENTS and self.taken:
            kinds.append(self.conflicting_duplicate)
        if self.topic == topics.LEDGER_COMMANDS:
            kinds.append(self.over_the_limit)
        if self.topic in HANDLED_BY_EVERY_CONSUMER:
            kinds.append(self.forged)
        return kinds

    def _data(self) -> tuple[bytes, dict[str, Any]]:
        envelope = self.valid()
        return envelope.account.encode(), json.loads(envelope.to_bytes())

    def _changed(self, change: Callable[[dict[str, Any]], None], code: str) -> Hostile:
        key, data = self._data()
        change(data)
        return key, json.dumps(data).encode(), code

    def raw_bytes(self) -> Hostile:
        return self._data()[0], self.rng.choice([b"", b"\x00", b"\xff\xfe"]) + self.rng.randbytes(64), "unreadable"

    def broken_json(self) -> Hostile:
        key, data = self._data()
        raw = json.dumps(data).encode()
        return key, raw[: self.rng.randint(1, len(raw) - 1)], "unreadable"

    def not_an_object(self) -> Hostile:
        return self._data()[0], self.rng.choice([b"[]", b"42", b"null", b'"event"']), "unreadable"

    def envelope_field_missing(self) -> Hostile:
        field = self.rng.choice(["event_id", "occurred_at", "account", "correlation_id", "producer", "event_type"])
        return self._changed(lambda d: d.pop(field), "invalid_envelope")

    def unknown_type(self) -> Hostile:
        return self._changed(lambda d: d.update(event_type=self.rng.choice(["MoneyPrinted", "", "DROP TABLE"])),
                             "unknown_event_type")

    def unknown_version(self) -> Hostile:
        def unknown(d: dict[str, Any]) -> None:  # 0, the version after the newest, or far beyond
            newest = max(version for (kind, version) in REGISTRY if kind == d["event_type"])
            d.update(schema_version=self.rng.choice([0, newest + 1, 99]))

        return self._changed(unknown, "unsupported_version")

    def payload_broken(self) -> Hostile:
        return self._changed(lambda d: d.update(payload=self.rng.choice([{}, {"account_number": "1"}])),
                             "invalid_payload")

    def amount_out_of_range(self) -> Hostile:
        return self._changed(lambda d: d["payload"][MONEY[self.topic]].update(minor=self.rng.choice([10**30, -(10**30)])),
                             "invalid_payload")

    def key_mismatch(self) -> Hostile:
        _, value, _ = self._changed(lambda d: None, "")
        return self.rng.choice([b"999999999999", b"", None]), value, "key_mismatch"

    def wrong_topic(self) -> Hostile:
        envelope = self.foreign()
        return envelope.account.encode(), envelope.to_bytes(), "wrong_topic"

    def not_the_owner(self) -> Hostile:
        return self._changed(lambda d: d.update(producer=self.rng.choice(["payments", "intruder", "cli"])),
                             "wrong_topic")

    def forged(self) -> Hostile:
        """A valid envelope in its owner's name, from someone who holds none of the listed keys."""
        envelope = self.valid()
        return envelope.account.encode(), envelope.to_bytes(), "bad_signature"

    def conflicting_duplicate(self) -> Hostile:
        """A new event for a payment (channel + reference) that was credited, with another amount."""
        original = self.rng.choice(self.taken).payload
        _, data = self._data()
        data["account"] = original.account_number
        data["payload"].update(account_number=original.account_number, reference=original.reference,
                               amount={"minor": original.amount.minor + self.rng.randint(1, 10**6), "currency": "RUB"})
        return original.account_number.encode(), json.dumps(data).encode(), "conflicting_duplicate"

    def over_the_limit(self) -> Hostile:
        """A well-formed request to move more than one movement may (BILLING_MAX_PAYMENT)."""
        return self._changed(lambda d: d["payload"]["amount"].update(minor=self.rng.randint(10**8 + 1, 10**15)),
                             "amount_over_limit")

    def reused_event_id(self) -> Hostile:
        """An event the consumers took, its id reused for another payload (each one different)."""
        original = self.rng.choice(self.taken)
        data = json.loads(original.to_bytes())
        field = MONEY.get(self.topic)
        if field:
            data["payload"][field]["minor"] += self.rng.randint(1, 10**9)
        else:
            data["payload"]["contract_number"] = f"FORGED-{uuid7().hex[:12]}"
        return original.account.encode(), json.dumps(data).encode(), "conflicting_event_id"


@pytest.mark.slow
async def test_hostile_messages_on_every_consumed_topic_change_nothing_and_each_is_dead_lettered(
    suite: Any, producer: Any, traffic: Any, numbers: Any, bootstrap_servers: str
) -> None:
    """3,000 hostile messages (``BILLING_TEST_HOSTILE``) spread over the five consumed topics."""
    prefix = suite.processes["ledger"].env["BILLING_KAFKA__TOPIC_PREFIX"]
    accounts = numbers(ACCOUNTS, first=515_000)
    contact = seal(suite.secrets["BILLING_NOTIFIER_PUBLIC_KEY"], {"phone": "+79161234567", "email": None})
    await suite.start()

    # legitimate traffic first: what the hostile copies will try to overwrite
    registrations = [traffic.registration(n, sealed_contact=contact) for n in accounts]
    await producer.send_many(f"{prefix}{topics.IDENTITY}", registrations)
    await eventually(lambda: all(suite.balance(n) == 0 for n in accounts), timeout=60, what="accounts opened")
    payments = [traffic.payment(n, 100_000, f"LEGIT-{k}") for k, n in enumerate(accounts)]
    await producer.send_many(f"{prefix}{topics.PAYMENTS}", payments)
    async with TopicReader(bootstrap_servers, f"{prefix}{topics.LEDGER}") as ledger_topic:
        balances = await ledger_topic.wait_for_type("BalanceChanged", ACCOUNTS, timeout=60)
    before = await suite.quiet()

    def valid(topic: str) -> Envelope[Any]:
        number = traffic.rng.choice(accounts)
        return traffic.envelope(_payload(topic, number, traffic.clock.now()), number)

    def foreign(topic: str) -> Envelope[Any]:
        return valid(traffic.rng.choice([other for other in CONSUMERS if other != topic]))

    taken = {topics.IDENTITY: registrations, topics.PAYMENTS: payments, topics.LEDGER: balances}
    sources = {
        topic: Hostiles(topic, lambda t=topic: valid(t), lambda t=topic: foreign(t), taken.get(topic, []), traffic.rng)
        for topic in CONSUMERS
    }
    expected: dict[tuple[str, int, int], str] = {}
    sent: Counter[str] = Counter()
    for topic, source in sources.items():
        kinds = source.kinds()
        count = HOSTILE // len(CONSUMERS)
        messages = [kind() for kind in kinds] + [traffic.rng.choice(kinds)() for _ in range(count - len(kinds))]
        landed = await producer.send_raw_many(f"{prefix}{topic}", [(key, value) for key, value, _ in messages],
                                              [_signed_as_named(topic, *message) for message in messages])
        expected.update({where: code for where, (_, _, code) in zip(landed, messages, strict=True)})
        sent.update(code for _, _, code in messages)
    wanted = {service: sum(1 for (topic, _, _), code in expected.items()
                           if refuses(service, topic.removeprefix(prefix), code))
              for service in ("identity", "ledger", "tariff", "notifier")}

    def letters(service: str) -> dict[tuple[str, int, int], str]:
        rows = suite.query(service, 'SELECT topic, "partition", "offset", code FROM dead_letters')
        return {(topic, partition, offset): code for topic, partition, offset, code in rows}

    await eventually(lambda: all(len(letters(s)) >= n for s, n in wanted.items()), timeout=120, interval=0.5,
                     what=f"dead letters {wanted}")
    after = await suite.quiet()

    wrong = []
    for service, count in wanted.items():
        found = letters(service)
        assert len(found) == count, (service, len(found), count)
        for where, code in expected.items():
            if refuses(service, where[0].removeprefix(prefix), code) and found.get(where) != code:
                wrong.append((service, where, code, found.get(where)))
    assert not wrong, f"{len(wrong)} messages without the expected dead letter, e.g. {wrong[:5]}"
    changed = {
        (service, table): len(set(rows.items()) ^ set(after[service].get(table, {}).items()))
        for service, tables in before.items() for table, rows in tables.items()
        if table not in NOT_STATE and rows != after[service].get(table)
    }
    assert not changed, f"hostile messages changed state: {changed}"
    staged = {row[1] for service in wanted for key, row in after[service]["outbox"].items()
              if key not in before[service]["outbox"]}  # (id, topic, ...)
    assert staged == {f"{prefix}{topics.dead_letter_topic(service)}" for service in wanted}, staged

    # the consumers kept going: a payment after the flood is posted
    await producer.send(f"{prefix}{topics.PAYMENTS}", traffic.payment(accounts[0], 4_200, "AFTER-THE-FLOOD"))
    await eventually(lambda: suite.balance(accounts[0]) == 104_200, what="a payment after the flood")
    print(f"\nhostile: {sum(sent.values())} sent ({dict(sent)}); dead letters: {wanted}; "
          f"state changes: {sum(changed.values())}")


def _signed_as_named(topic: str, key: bytes | None, value: bytes, code: str) -> list[tuple[str, bytes]]:
    """Signed as the producer a message names would sign it (an adapter gone hostile: its
    messages must be refused for what they say, not for a missing signature); a forgery, not."""
    try:
        producer = json.loads(value)["producer"]
        headers = {} if code == "bad_signature" else signing.signature(topic, key or b"", value, producer)
    except (ValueError, TypeError, KeyError):  # unreadable, not an object, no (usable) producer
        return []
    return [(name, text.encode()) for name, text in headers.items()]


def _payload(topic: str, number: str, now: datetime) -> Any:
    """A valid event of ``topic`` for ``number``: the base of each hostile message."""
    money = Money(minor=1_000)
    match topic:
        case topics.IDENTITY:
            return SubscriberRegistered(account_number=number, contract_number="D-HOSTILE", region="moscow",
                                        legal_status=LegalStatus.PERSON, masked_phone="+7 *** ***-00-00",
                                        sealed_contact="c2VhbGVk")
        case topics.PAYMENTS:
            return PaymentReceived(account_number=number, channel="terminal", reference=f"H-{uuid7()}",
                                   amount=money, received_at=now)
        case topics.LEDGER:
            return BalanceChanged(account_number=number, transaction_id=uuid7(), main=money, bonus=Money.zero(),
                                  delta_main=money, delta_bonus=Money.zero(), cause_event_id=None,
                                  cause_type="PaymentReceived", payment_type=PaymentType.PREPAID,
                                  credit_limit=Money.zero())
        case topics.TARIFF:
            return ChargeApplied(charge_id=f"H-{uuid7()}", account_number=number, amount=money,
                                 charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=date(2026, 3, 1))
        case topics.LEDGER_COMMANDS:
            return TransferRequested(request_id=uuid7(), from_account=number, to_account=number, amount=money,
                                     requested_by="hostile")
    raise ValueError(topic)
