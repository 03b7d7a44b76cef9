"""A topic holding ChargeApplied v1 and v2 (v1 alone during an upgrade, v2 with its v1 copy
beside it, redeliveries of both) reads through the ledger exactly like a topic of v2 alone."""

from __future__ import annotations

from typing import Any

from billing_contracts import topics
from billing_contracts.catalog.tariff import ChargeApplied, FeeKind
from billing_contracts.money import PositiveMoney

MIXED, PLAIN = "100000000008", "100000000016"
FEES = [(FeeKind.SUBSCRIPTION, "internet-100", 1_667), (FeeKind.OPTION, "antivirus", 333),
        (FeeKind.VOLUNTARY_BLOCK, "moscow", 15_000)]


async def _charged(ledger: Any, number: str) -> list[Any]:
    changes = await ledger.reader.wait_for_type("BalanceChanged", 1 + len(FEES), account_number=number)
    return [c.payload for c in changes if c.payload.cause_type == "ChargeApplied"]


async def test_a_topic_of_both_versions_posts_each_charge_once_and_answers_the_event_taken(ledger: Any) -> None:
    charges = {number: [ledger.envelope(ChargeApplied.of(number, ledger.clock.now().date(), kind, code,
                                                         PositiveMoney(minor=minor), code), number)
                        for kind, code, minor in FEES] for number in (MIXED, PLAIN)}
    subscription, option, block = charges[MIXED]
    mixed = [subscription.in_version(1),                    # v1 alone: the producer before the switch
             option, *option.previous_versions(),           # v2 and its v1 copy
             block.previous_versions()[0], block,           # the copy first: a consumer must not mind
             subscription.in_version(1), option]            # redeliveries
    topic = ledger.runtime.topics(topics.TARIFF)
    for number in (MIXED, PLAIN):
        await ledger.register(number)
        await ledger.pay(number, 100_000, f"P-{number}")
    await ledger.producer.send_many(topic, mixed)
    await ledger.producer.send_many(topic, charges[PLAIN])

    total = sum(minor for *_, minor in FEES)
    await ledger.balance_becomes(MIXED, 100_000 - total)
    await ledger.balance_becomes(PLAIN, 100_000 - total)
    taken = await _charged(ledger, MIXED)
    # The tariff service settles its charges by the event id it published: the ledger answers with it.
    assert {c.cause_event_id for c in taken} == {e.event_id for e in charges[MIXED]}
    assert sorted(c.delta_main.minor for c in taken) == sorted(
        c.delta_main.minor for c in await _charged(ledger, PLAIN)) == sorted(-minor for *_, minor in FEES)
    assert await ledger.dead_letter_reasons() == []
    assert await ledger.journal_total() == 0
