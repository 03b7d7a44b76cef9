"""Crash: the ledger process is killed with SIGKILL, again and again, while payments stream in.

SIGKILL leaves no chance to clean up: the batch in flight is cut mid-transaction, its offsets
uncommitted, the outbox undrained. After each restart the broker redelivers from the last
committed offset, and the inbox (same event id) and the journal's business key (same channel
and reference under a new event id) absorb what was already posted.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.testing.plugin import eventually

PAYMENTS = int(os.environ.get("BILLING_TEST_CRASH_PAYMENTS", 50_000))
ACCOUNTS = int(os.environ.get("BILLING_TEST_CRASH_ACCOUNTS", 1_000))
KILLS = int(os.environ.get("BILLING_TEST_CRASH_KILLS", 3))
DUPLICATES = 0.10


@pytest.mark.slow
async def test_sigkill_during_a_payment_stream_loses_and_doubles_nothing(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any
) -> None:
    """50,000 distinct payments (the issue's size, the default; ``BILLING_TEST_CRASH_PAYMENTS``
    changes it) over 1,000 accounts, 10 % of them delivered twice, while the ledger process is
    SIGKILLed 3 times at random points of its progress and restarted. Afterwards each balance
    is the sum of the account's distinct payments, there is one PAYMENT transaction per distinct
    payment, the postings sum to zero and ``verify`` is ok."""
    ledger = await deployment.process().start()
    accounts = numbers(ACCOUNTS)
    await register(accounts)

    payments = traffic.payments(accounts, PAYMENTS, "crash")
    stream = traffic.delivered_with_duplicates(payments, DUPLICATES)
    assert len(stream) == PAYMENTS + int(PAYMENTS * DUPLICATES)
    started = time.monotonic()
    sending = asyncio.create_task(producer.send_many(deployment.topics(topics.PAYMENTS), stream))

    # Kill points: spread over the run, each somewhere inside its own slice of the progress.
    slices = [(k + traffic.rng.uniform(0.2, 0.8)) / (KILLS + 1) for k in range(KILLS)]
    posted_at_kill = []
    for share in slices:
        threshold = int(PAYMENTS * share)
        await eventually(lambda t=threshold: facts.posted_at_least(t), timeout=120, interval=0.02,
                         what=f"{threshold} payments posted")
        ledger.kill()
        posted_at_kill.append(await facts.payments_posted())
        await asyncio.sleep(traffic.rng.uniform(0.0, 1.0))
        await ledger.start()
    await sending

    await eventually(lambda: facts.posted_at_least(PAYMENTS), timeout=150, interval=0.1,
                     what=f"all {PAYMENTS} payments posted")
    await eventually(lambda: deployment.consumed(producer.ends), timeout=60,
                     what="every message consumed and committed")
    elapsed = time.monotonic() - started

    assert ledger.starts == KILLS + 1 and ledger.running
    assert all(0 < posted < PAYMENTS for posted in posted_at_kill), posted_at_kill  # killed mid-stream
    await facts.assert_consistent(payments, accounts)
    assert await facts.dead_letter_count() == 0
    # every distinct event id was taken once: registrations, payments and the re-sent payments
    assert await facts.inbox_count() == ACCOUNTS + PAYMENTS + int(PAYMENTS * DUPLICATES) // 2
    await eventually(facts.all_published, timeout=60, what="the outbox drained after the crashes")
    print(f"\n{PAYMENTS} payments (+{len(stream) - PAYMENTS} duplicates), {KILLS} SIGKILLs at "
          f"{posted_at_kill} posted: consistent after {elapsed:.1f}s (seed {traffic.seed})")
