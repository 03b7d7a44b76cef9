"""Scale out: two ledger processes in one consumer group, on one database, share the partitions;
one is SIGKILLed in the middle of a stream and the other takes over its partitions. The batch
the killed one had in flight (never committed) is redelivered to the survivor, whose inbox and
journal keys let nothing be posted twice.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.testing.plugin import eventually

PAYMENTS = int(os.environ.get("BILLING_TEST_SCALE_PAYMENTS", 10_000))
ACCOUNTS = 300


@pytest.mark.slow
async def test_the_survivor_takes_over_the_partitions_of_a_killed_instance(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any, http_door: Any
) -> None:
    """10,000 payments (``BILLING_TEST_SCALE_PAYMENTS``; 10 % delivered twice) while both run,
    the second instance SIGKILLed when about a third is posted, then 1,000 more payments to
    accounts on every partition after the kill."""
    first_port, first_door = http_door()
    second_port, second_door = http_door()
    first = deployment.process("ledger-1", BILLING_HTTP_PORT=str(first_port))
    second = deployment.process("ledger-2", BILLING_HTTP_PORT=str(second_port))
    await first.start()  # one after the other: the second finds the schema the first created
    await second.start()
    await eventually(lambda: _both_hold_partitions(first_door, second_door),
                     what="both instances holding partitions")

    accounts = numbers(ACCOUNTS)
    assert {deployment.partition_of(a) for a in accounts} == set(range(6))  # work on every partition
    await register(accounts)
    while_both = traffic.payments(accounts, PAYMENTS, "both")
    sending = asyncio.create_task(producer.send_many(
        deployment.topics(topics.PAYMENTS), traffic.delivered_with_duplicates(while_both, 0.10)))

    await eventually(lambda: facts.posted_at_least(PAYMENTS // 3), timeout=90, interval=0.02,
                     what="a third of the payments posted")
    handled_by_first = await first_door.handled("PaymentReceived")
    handled_by_second = await second_door.handled("PaymentReceived")
    second.kill()
    posted_at_kill = await facts.payments_posted()
    assert handled_by_first > 0 and handled_by_second > 0, "the partitions were not shared"
    await sending

    after_kill = traffic.payments(accounts, 1_000, "after")
    await producer.send_many(deployment.topics(topics.PAYMENTS), after_kill)
    everything = while_both + after_kill
    await eventually(lambda: facts.posted_at_least(len(everything)), timeout=120, interval=0.1,
                     what="every payment posted")
    await eventually(lambda: deployment.consumed(producer.ends), timeout=60,
                     what="the survivor committed every partition")

    assert posted_at_kill < PAYMENTS
    assert first.running and not second.running
    ready = await first_door.ready()
    assert ready["status"] == 200 and ready["checks"]["partitions_assigned"], ready
    # the survivor applied the payments sent after the kill, to accounts on every partition
    assert await first_door.handled("PaymentReceived") - handled_by_first >= len(after_kill)
    await facts.assert_consistent(everything, accounts)
    assert await facts.dead_letter_count() == 0
    print(f"\nshared: first {handled_by_first}, second {handled_by_second} handled when the second was "
          f"killed at {posted_at_kill} posted; the first finished {len(everything)}")


async def _both_hold_partitions(*doors: Any) -> bool:
    for door in doors:
        ready = await door.ready()
        if ready["status"] != 200:
            return False
    return True
