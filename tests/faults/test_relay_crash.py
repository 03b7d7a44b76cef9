"""Relay crash: the ledger split the way deploy/ runs it, a consumer process and a relay process
on one database; the relay is SIGKILLed again and again while it publishes.

A relay killed between sending a batch and marking it published sends that batch again when it
is back (its transaction, and the outbox lock with it, died with the connection): the topic
gets duplicates, which the consumers' inboxes absorb, and never a gap. The consumer process is
not disturbed: posting never waits for publishing.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import eventually

PAYMENTS = int(os.environ.get("BILLING_TEST_RELAY_CRASH_PAYMENTS", 10_000))
ACCOUNTS = 300
KILLS = 3


@pytest.mark.slow
async def test_a_relay_killed_while_publishing_loses_no_event(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any, bootstrap_servers: str
) -> None:
    """10,000 payments (``BILLING_TEST_RELAY_CRASH_PAYMENTS``) over 300 accounts; the relay is
    SIGKILLed 3 times at random points of what it has published, and restarted. Afterwards every
    payment's BalanceChanged is on the topic, the outbox is drained, and the ledger is consistent."""
    consumer = await deployment.process("ledger-consumer", BILLING_PROCESS_ROLE="consumer").start()
    relay = await deployment.process("ledger-relay", BILLING_PROCESS_ROLE="relay").start()
    accounts = numbers(ACCOUNTS)
    await register(accounts)
    payments = traffic.payments(accounts, PAYMENTS, "relay-crash")
    wanted = {payment.event_id for payment in payments}

    async with TopicReader(bootstrap_servers, deployment.topics(topics.LEDGER)) as reader:

        def announced() -> Counter[Any]:
            """How often each payment's BalanceChanged is on the topic so far."""
            return Counter(e.payload.cause_event_id for e in reader.envelopes
                           if e.event_type == "BalanceChanged" and e.payload.cause_event_id in wanted)

        sending = asyncio.create_task(_stream(producer, deployment.topics(topics.PAYMENTS), payments))
        published_at_kill = [0]
        for kill in range(KILLS):
            # Paced by what is posted (the relay publishes in jumps of a batch, which a threshold
            # on the topic could skip past), and only once the relay published since its restart.
            threshold = int(PAYMENTS * (kill + traffic.rng.uniform(0.2, 0.8)) / (KILLS + 1))
            await eventually(lambda t=threshold: facts.posted_at_least(t), timeout=120, interval=0.02,
                             what=f"{threshold} payments posted")
            await eventually(lambda: len(announced()) > published_at_kill[-1], timeout=60, interval=0.02,
                             what="the relay publishing again")
            relay.kill()
            published_at_kill.append(len(announced()))
            await asyncio.sleep(traffic.rng.uniform(0.0, 1.0))
            await relay.start()

        await sending
        await eventually(lambda: len(announced()) == PAYMENTS, timeout=120, interval=0.1,
                         what=f"all {PAYMENTS} payments announced")
        await eventually(facts.all_published, timeout=60, what="the outbox drained")
        repeated = sum(count - 1 for count in announced().values())

    published_at_kill.pop(0)
    assert published_at_kill == sorted(set(published_at_kill)), published_at_kill  # it published between kills
    assert published_at_kill[-1] < PAYMENTS  # the last kill too came while it had work
    assert (consumer.starts, relay.starts) == (1, KILLS + 1) and consumer.running and relay.running
    await facts.assert_consistent(payments, accounts)
    assert await facts.dead_letter_count() == 0
    print(f"\n{PAYMENTS} payments, relay SIGKILLed at {published_at_kill} announced: every one announced, "
          f"{repeated} announcements repeated (seed {traffic.seed})")


async def _stream(producer: Any, topic: str, payments: list[Any], chunks: int = 10, pause: float = 0.5) -> None:
    """The payments over a few seconds, so the relay has work after each restart."""
    size = -(-len(payments) // chunks)
    for start in range(0, len(payments), size):
        await producer.send_many(topic, payments[start:start + size])
        await asyncio.sleep(pause)
