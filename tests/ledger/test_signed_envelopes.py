"""Anyone who reaches the broker is not the ledger: a command or a payment is taken only when
signed by a key of the producer its envelope names (billing_events.signing)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from billing_contracts import topics
from billing_events import event_log
from billing_contracts.catalog.ledger import TransferRequested
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.signing import KEY_ID_HEADER, SIGNATURE_HEADER, EnvelopeSigner, Keyring, generate_signing_key
from billing_events.testing import signing
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import eventually

from .conftest import LedgerDriver

A, B = "100000000016", "100000000024"


def transfer(minor: int) -> TransferRequested:
    return TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=minor),
                             requested_by=f"cabinet:{A}")


def record_headers(envelope: Envelope[Any], signature: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, text.encode()) for name, text in {**envelope.kafka_headers(), **signature}.items()]


async def bad_signatures(ledger: LedgerDriver, count: int) -> list[str] | None:
    reasons = [reason.removeprefix("bad_signature: ") for reason in await ledger.dead_letter_reasons()
               if reason.startswith("bad_signature:")]
    return reasons if len(reasons) >= count else None


async def nothing_to_publish(ledger: LedgerDriver) -> bool:
    async with ledger.runtime.db.connect() as conn:
        return await event_log.unpublished(conn) == 0


async def test_a_forged_transfer_in_the_ledgers_name_moves_nothing(ledger: LedgerDriver) -> None:
    """Forgeries of a transfer that claims ``producer: ledger``: unsigned; signed by the forger's
    own key; signed by a listed key of another producer (a payment channel's); and the ledger's
    real signature of a smaller transfer on a record whose amount was changed. None moves money;
    the ledger's own command, sent after them on the same partition, does."""
    await ledger.register(A)
    await ledger.register(B)
    await ledger.pay(A, 10_000, "SIGNED-1")
    await ledger.balance_becomes(A, 10_000)
    commands, key = ledger.runtime.topics(topics.LEDGER_COMMANDS), A.encode()
    forger = EnvelopeSigner("ledger", generate_signing_key("ledger")[1])

    def unsigned(value: bytes) -> dict[str, str]:
        return {}

    def by_the_forger(value: bytes) -> dict[str, str]:
        return forger.headers(topics.LEDGER_COMMANDS, key, value)

    def by_a_channel(value: bytes) -> dict[str, str]:
        return signing.signature(topics.LEDGER_COMMANDS, key, value, "terminal")

    def of_a_smaller_amount(value: bytes) -> dict[str, str]:
        return signing.signature(topics.LEDGER_COMMANDS, key, value.replace(b'"minor":5000', b'"minor":1'), "ledger")

    for forge in (unsigned, by_the_forger, by_a_channel, of_a_smaller_amount):
        forged = ledger.envelope(transfer(5_000), A)
        value = forged.to_bytes()
        assert b'"minor":5000' in value
        await ledger.producer.send_raw(commands, value, key, record_headers(forged, forge(value)))
    await ledger.send(transfer(1_000), A)  # signed by the ledger's key: taken after the forgeries

    await ledger.balance_becomes(B, 1_000)
    assert await ledger.main_balance(A) == 9_000
    assert await eventually(lambda: bad_signatures(ledger, 4), what="the forgeries dead-lettered") == [
        "the record is not signed",
        "signed with a key this consumer does not list",
        "signed with a key of 'terminal', while the envelope names 'ledger' as its producer",
        "the signature does not match the record (altered, or moved from another record)",
    ]


async def test_a_signature_moved_to_another_accounts_record_is_refused(ledger: LedgerDriver) -> None:
    """A channel's real signature of a payment to A, carried by a payment to B (the same amount
    and reference, the key and the account changed): B gets nothing."""
    await ledger.register(A)
    await ledger.register(B)
    paid_a = await ledger.pay(A, 7_000, "MOVED-1")
    await ledger.balance_becomes(A, 7_000)
    signature = signing.signature(topics.PAYMENTS, A.encode(), paid_a.to_bytes(), paid_a.producer)
    to_b = ledger.envelope(ledger.payment(B, 7_000, "MOVED-1"), B)
    await ledger.producer.send_raw(ledger.runtime.topics(topics.PAYMENTS), to_b.to_bytes(), B.encode(),
                                   record_headers(to_b, signature))
    assert await eventually(lambda: bad_signatures(ledger, 1), what="the moved signature refused") == [
        "the signature does not match the record (altered, or moved from another record)"]
    await ledger.pay(B, 100, "MOVED-2")  # behind the refused one, on B's partition
    await ledger.balance_becomes(B, 100)


async def test_what_the_ledger_publishes_verifies_and_so_does_its_replay(ledger: LedgerDriver,
                                                                         bootstrap_servers: str) -> None:
    """The relay signs each record it sends; a replay (another topic, published later) sends the
    same events with signatures that still verify, over the topic each was first published to."""
    await ledger.register(A)
    await ledger.pay(A, 2_500, "SIGNED-OUT")
    await ledger.reader.wait_for_type("BalanceChanged", account=A)
    await eventually(lambda: nothing_to_publish(ledger), what="the relay done")
    keyring = Keyring.from_entries(signing.PUBLIC_KEYS)
    replayed = await ledger.runtime.republish(account=A)
    assert replayed >= 2  # the payment the ledger kept, and what it published
    async with TopicReader(bootstrap_servers, ledger.runtime.topics(topics.REPLAY)) as replay:
        await replay.wait_for(lambda envelopes: len(envelopes) >= replayed, what="the replay")
        for reader in (ledger.reader, replay):
            for record, envelope in zip(reader.records, reader.envelopes, strict=True):
                headers = dict(record.headers)
                assert {SIGNATURE_HEADER, KEY_ID_HEADER} <= headers.keys()
                assert keyring.refusal(envelope.topic, record.key, record.value, headers, envelope.producer) is None
        assert {envelope.producer for envelope in replay.envelopes} == {"ledger", "payments"}
