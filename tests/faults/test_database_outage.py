"""Database outage: the ledger reaches PostgreSQL through a TCP proxy the test cuts in the middle
of a payment stream (every connection reset, new ones refused) and restores a few seconds later.

The batch in flight fails on a dead connection; ``retry_transient`` retries it with backoff on a
fresh connection until the database answers again; a commit whose answer was lost is retried
too and finds its events already in the inbox. The process never restarts, nothing is lost or
posted twice.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.testing.plugin import eventually
from billing_events.testing.tcp_proxy import TcpProxy

PAYMENTS = int(os.environ.get("BILLING_TEST_OUTAGE_PAYMENTS", 10_000))
ACCOUNTS = 300
OUTAGES = ((0.25, 4.0), (0.6, 1.5))
"""(share of the payments posted when the cut comes, seconds without a database)."""


@pytest.mark.slow
async def test_the_ledger_rides_out_a_database_outage(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any, http_door: Any
) -> None:
    """10,000 payments (``BILLING_TEST_OUTAGE_PAYMENTS``; 10 % delivered twice) with the database
    cut off twice: 4 s when a quarter is posted, 1.5 s at 60 %."""
    async with TcpProxy.for_url(deployment.database_url) as proxy:
        port, door = http_door()
        ledger = await deployment.process(database_url=proxy.url_through(deployment.database_url),
                                          BILLING_HTTP_PORT=str(port)).start()
        accounts = numbers(ACCOUNTS)
        await register(accounts)
        payments = traffic.payments(accounts, PAYMENTS, "outage")
        sending = asyncio.create_task(producer.send_many(
            deployment.topics(topics.PAYMENTS), traffic.delivered_with_duplicates(payments, 0.10)))

        frozen = []
        for share, seconds in OUTAGES:
            await eventually(lambda s=share: facts.posted_at_least(int(PAYMENTS * s)), timeout=90,
                             interval=0.02, what=f"{share:.0%} of the payments posted")
            await proxy.cut(mid_request=True, min_bytes=100_000)  # a batch's INSERTs
            before = await facts.payments_posted()
            await asyncio.sleep(seconds)
            frozen.append((before, await facts.payments_posted()))
            connections_before = proxy.accepted
            await proxy.restore()
            await eventually(lambda c=connections_before: proxy.accepted > c,
                             what="the ledger reconnecting")
        await sending

        await eventually(lambda: facts.posted_at_least(PAYMENTS), timeout=120, interval=0.1,
                         what="every payment posted")
        await eventually(lambda: deployment.consumed(producer.ends), timeout=60, what="every message committed")
        await eventually(facts.all_published, timeout=60, what="the outbox drained")

        assert all(before == after < PAYMENTS for before, after in frozen), frozen  # nothing got through
        assert ledger.running and ledger.starts == 1  # rode it out: no crash, no restart
        retries = [line for line in ledger.output().splitlines() if "transient failure, retrying" in line]
        assert sum("ledger batch" in line for line in retries) >= len(OUTAGES), retries  # cut mid-batch
        await facts.assert_consistent(payments, accounts)
        assert await facts.dead_letter_count() == 0
        # the monitoring came through too: lag and outbox backlog gauges back to zero
        await eventually(lambda: _gauges_at_zero(door), interval=0.5,
                         what="billing_consumer_lag and billing_outbox_backlog at 0 after the outage")
        print(f"\noutages at {[before for before, _ in frozen]} posted; {proxy.accepted} connections in all")


async def _gauges_at_zero(door: Any) -> bool:
    lag, backlog = await door.samples("billing_consumer_lag"), await door.samples("billing_outbox_backlog")
    return bool(lag) and bool(backlog) and not any(lag) and not any(backlog)
