"""Bounded input at the ledger's door, over the real broker and PostgreSQL (issue 26, breaks 6, 7,
8 and 10): every message is either taken or dead-lettered with a code, never dropped in silence,
never stored beyond a size, and no balance, operator accounts and suspense included, leaves the
±10^15 minor units money may hold."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from billing_contracts.accounts import AccountNumber
from billing_contracts.dead_letter_record import DeadLetterRecord
from billing_contracts.ids import uuid7
from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.money import MAX_MINOR
from billing_events.schema import dead_letters, outbox
from billing_events.testing.plugin import eventually
from billing_contracts.topics import dead_letter_topic
from ledger import store

A = "100000000008"
MISTYPED = "500000020008"
"""Twelve digits whose last is not the Luhn check digit of the first eleven (it would be 5)."""


async def _dead_letters(ledger: Any, count: int) -> list[Any]:
    async def enough() -> list[Any] | None:
        async with ledger.runtime.db.connect() as conn:
            rows = (await conn.execute(select(dead_letters).order_by(dead_letters.c.id))).all()
        return rows if len(rows) >= count else None

    return await eventually(enough, what=f"{count} dead letters")


async def _journal_keys(ledger: Any) -> list[str]:
    async with ledger.runtime.db.connect() as conn:
        return list((await conn.execute(select(store.journal.c.business_key))).scalars())


async def _operator_balances(ledger: Any) -> dict[str, int]:
    async with ledger.runtime.db.connect() as conn:
        rows = await conn.execute(select(store.operator_balances.c.code, store.operator_balances.c.balance))
        return {code: balance for code, balance in rows}


async def test_a_copy_of_on_the_newest_version_is_dead_lettered_not_dropped(ledger: Any) -> None:
    await ledger.register(A)
    data = json.loads(ledger.envelope(ledger.payment(A, 5_000, "COPY-1"), A).to_bytes())
    data["copy_of"] = str(uuid7())  # PaymentReceived v1 is its newest version: it is nobody's copy
    topic = ledger.runtime.topics(topics.PAYMENTS)
    await ledger.producer.send_raw(topic, json.dumps(data).encode(), key=A.encode())
    await ledger.pay(A, 1_000, "AFTER-1")  # same key, same partition: taken after the copy
    await ledger.balance_becomes(A, 1_000)
    [letter] = await _dead_letters(ledger, 1)
    assert letter.code == "invalid_copy" and letter.value == json.dumps(data).encode()
    assert "copy_of" in letter.reason and "PaymentReceived v1, its newest version" in letter.reason
    assert not any("COPY-1" in key for key in await _journal_keys(ledger))


async def test_a_registration_with_a_wrong_check_digit_opens_no_account(ledger: Any) -> None:
    assert not AccountNumber.is_valid(MISTYPED)
    registration = ledger.envelope(SubscriberRegistered(
        account_number=A, contract_number="D-2026-0000008", region="moscow", legal_status=LegalStatus.PERSON,
        masked_phone="+7 *** ***-00-00", sealed_contact="c2VhbGVk"), A)
    raw = registration.to_bytes().replace(A.encode(), MISTYPED.encode())
    await ledger.producer.send_raw(ledger.runtime.topics(topics.IDENTITY), raw, key=MISTYPED.encode())
    [letter] = await _dead_letters(ledger, 1)
    assert (letter.code, letter.event_type) == ("invalid_payload", None)
    assert "account_number" in letter.reason and "check digit" in letter.reason
    assert not await ledger.exists(MISTYPED)


async def test_a_payment_to_a_mistyped_number_still_parks_in_suspense(ledger: Any) -> None:
    await ledger.pay(MISTYPED, 2_500, "TYPO-1")

    async def parked() -> list[Any]:
        async with ledger.runtime.db.connect() as conn:
            return await store.open_suspense(conn)

    [item] = await eventually(parked, what="the payment parked")
    assert (item.typed_account, item.amount, item.reason.value) == (MISTYPED, 2_500, "unknown_account")


async def test_an_oversized_message_is_dead_lettered_truncated_with_its_size(ledger: Any) -> None:
    await ledger.register(A)
    limit = ledger.runtime.settings.max_message_bytes
    topic = ledger.runtime.topics(topics.PAYMENTS)
    long_producer = json.loads(ledger.envelope(ledger.payment(A, 7_000, "BIG-PRODUCER"), A).to_bytes())
    long_producer["producer"] = "p" * (4 * limit)
    unknown_field = json.loads(ledger.envelope(ledger.payment(A, 7_000, "BIG-FIELD"), A).to_bytes())
    unknown_field["payload"]["note"] = "n" * (4 * limit)
    named_at_length = json.loads(ledger.envelope(ledger.payment(A, 7_000, "LONG-NAME"), A).to_bytes())
    named_at_length["producer"] = "terminal-" + "x" * 200  # small message, a producer name nobody has
    sent = [json.dumps(data).encode() for data in (long_producer, unknown_field, named_at_length)]
    for raw in sent:
        await ledger.producer.send_raw(topic, raw, key=A.encode())
    await ledger.pay(A, 1_000, "AFTER-2")
    await ledger.balance_becomes(A, 1_000)
    letters = await _dead_letters(ledger, 3)
    assert [letter.code for letter in letters] == ["too_large"] * 3
    for letter, raw in zip(letters[:2], sent[:2], strict=True):
        assert f"{len(raw):,} bytes" in letter.reason and f"{limit:,}" in letter.reason
        assert len(letter.value) < limit and raw.startswith(letter.value)
    assert "producer" in letters[2].reason and letters[2].value == sent[2]
    assert not any(ref in key for key in await _journal_keys(ledger)
                   for ref in ("BIG-PRODUCER", "BIG-FIELD", "LONG-NAME"))
    async with ledger.runtime.db.connect() as conn:
        largest_row = await conn.scalar(select(func.max(func.length(outbox.c.value))))
        on_topic = (await conn.execute(select(outbox.c.value).where(
            outbox.c.topic == ledger.runtime.topics(dead_letter_topic("ledger"))))).scalars().all()
    assert largest_row < 2 * limit  # neither the archive nor the dead-letter topic keeps the whole
    records = [DeadLetterRecord.model_validate_json(value) for value in on_topic]
    assert sorted(r.original_size for r in records if r.original_truncated) == sorted(map(len, sent[:2]))


async def test_no_operator_account_or_suspense_leaves_the_money_range(ledger: Any) -> None:
    await ledger.register(A)
    await ledger.pay(A, MAX_MINOR, "HUGE-1")  # over the per-payment maximum: parked for a person
    await ledger.pay(A, MAX_MINOR, "HUGE-2")  # suspense would hold 2 × 10^15: refused
    await ledger.pay(A, 1, "TINY-1")  # the terminal's cash account would pass −10^15 by one: refused
    await ledger.pay(A, 1, "TINY-2", channel="card")  # another channel's cash account has room
    await ledger.balance_becomes(A, 1)
    letters = await _dead_letters(ledger, 2)
    assert [letter.code for letter in letters] == ["amount_out_of_bounds"] * 2
    assert "op:suspense" in letters[0].reason and "op:cash:terminal" in letters[1].reason
    balances = await _operator_balances(ledger)
    assert (balances["op:suspense"], balances["op:cash:terminal"], balances["op:cash:card"]) == (
        MAX_MINOR, -MAX_MINOR, -1)
    keys = await _journal_keys(ledger)
    assert any("HUGE-1" in key for key in keys) and not any("HUGE-2" in k or "TINY-1" in k for k in keys)
