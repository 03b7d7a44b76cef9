"""The tariff split as deploy/ runs it: a consumer process that serves, consumes and runs the
billing clock, and a relay process that publishes what it commits."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from billing_contracts import topics
from billing_events.clock import ManualClock
from billing_events.testing.kafka_probe import TopicReader
from tariff.app import build

from tests.tariff.test_day_close import open_accounts, prepaid, with_check_digit

DAY = date(2026, 8, 1)
ACCOUNTS = [with_check_digit(f"7100000000{n}") for n in range(3)]


def billing_clocks() -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks() if task.get_name().endswith("billing_clock_loop")]


async def test_the_consumer_closes_the_day_and_the_relay_publishes_its_charges_in_both_versions(
    tariff: Any,
) -> None:
    """The billing clock runs where the tariff consumes, never in its relay; the close's commits
    wake the relay through PostgreSQL (its own poll is an hour away), which publishes each
    ChargeApplied with its v1 copy right after it."""
    consuming = await tariff.settings(billing_clock_enabled=True, process_role="consumer",
                                      outbox_poll_seconds=3600)
    relaying = consuming.model_copy(update={"process_role": "relay"})
    clock = ManualClock(tariff.noon(DAY - timedelta(days=1)))
    (consumer, ctx), (relay, _) = build(consuming, clock), build(relaying, clock)
    async with consumer, relay, TopicReader(tariff.bootstrap_servers, consumer.topics(topics.TARIFF)) as reader:
        assert billing_clocks() == ["tariff-billing_clock_loop"]  # the consumer's alone
        await open_accounts(ctx, {account: prepaid(10_000_000) for account in ACCOUNTS})
        clock.set(tariff.noon(DAY + timedelta(days=1)))  # the clock's next tick closes DAY
        charges = await reader.wait_for_type("ChargeApplied", len(ACCOUNTS), billing_day=DAY)
        await reader.wait_for(lambda seen: sum(e.copy_of is not None for e in seen) == len(ACCOUNTS),
                              what="the v1 copies")
    for charge in charges:  # in its account's partition, the copy right after the charge
        sent = [e for e in reader.envelopes if e.event_type == "ChargeApplied" and e.account == charge.account]
        assert [(e.as_sent.version, e.copy_of) for e in sent] == [(2, None), (1, charge.event_id)]
    assert consumer.relay.published == 0 and relay.relay.published > 0
