"""Failover, measured: two ledger processes in one group under a steady payment stream to every
partition; one is SIGKILLed. The survivor keeps posting on its own partitions and takes over the
dead one's within a bound set by the session timeout (the broker notices a dead member only when
its heartbeats stop for that long; aiokafka has no cooperative rebalancing, and static membership
would only delay the takeover further). Each process reports the lag of the partitions it holds
and of no other: a partition that moves leaves the old holder's metrics.

``BILLING_TEST_FAILOVER_SESSION_MS`` [the production setting, KafkaSettings' default] and
``BILLING_TEST_FAILOVER_HEARTBEAT_MS`` choose the timeouts, e.g. 30000/3000 to measure the old
setting. The test prints the stall of both kinds of partitions.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.settings import KafkaSettings
from billing_events.testing.plugin import eventually

from .conftest import PARTITIONS

SESSION_MS = int(os.environ.get("BILLING_TEST_FAILOVER_SESSION_MS", KafkaSettings().session_timeout_ms))
HEARTBEAT_MS = int(os.environ.get("BILLING_TEST_FAILOVER_HEARTBEAT_MS", KafkaSettings().heartbeat_interval_ms))
TICK = 0.1
"""One payment per partition every 100 ms."""
OBSERVE_AFTER_KILL = SESSION_MS / 1000 + 20
SURVIVOR_STALL_BOUND = 10.0
"""The survivor's own partitions pause only for the rebalance that hands it the dead one's."""
TAKEOVER_MARGIN = 10.0
"""On top of the session timeout: the rebalance, the first fetch and the first commit (measured
about 2 s on the embedded broker and two shared cores)."""


@pytest.mark.slow
async def test_the_survivor_keeps_its_partitions_and_takes_over_the_dead_ones_within_the_bound(
    deployment: Any, facts: Any, traffic: Any, producer: Any, register: Any, numbers: Any, http_door: Any
) -> None:
    timeouts = {"BILLING_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_MS),
                "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_MS)}
    first_port, first_door = http_door()
    second_port, second_door = http_door()
    first = await deployment.process("ledger-1", BILLING_HTTP_PORT=str(first_port), **timeouts).start()
    candidates = numbers(200)
    one_per_partition = {deployment.partition_of(number): number for number in reversed(candidates)}
    assert set(one_per_partition) == set(range(PARTITIONS))
    await register(list(one_per_partition.values()))
    await eventually(lambda: _lag_partitions(first_door, PARTITIONS),
                     what="the first instance reporting the lag of all six partitions")
    second = await deployment.process("ledger-2", BILLING_HTTP_PORT=str(second_port), **timeouts).start()
    # After the second joined, each reports the lag of its own partitions only: no partition twice.
    owned = await eventually(lambda: _split(first_door, second_door), timeout=60,
                             what="the partitions split, each holder reporting only its own")
    survivor_own, dead_own = owned

    progress = Progress(facts, one_per_partition)
    sending = asyncio.create_task(_stream(deployment, producer, traffic, one_per_partition))
    watching = asyncio.create_task(progress.watch())
    try:
        await asyncio.sleep(3)  # steady state: both post
        killed_at = time.monotonic()
        second.kill()
        await asyncio.sleep(OBSERVE_AFTER_KILL)
    finally:
        sending.cancel()
        watching.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)

    survivor_stall = max(progress.longest_gap(p, killed_at - 1) for p in survivor_own)
    takeover = max(progress.longest_gap(p, killed_at - 1) for p in dead_own)
    print(f"\nsession {SESSION_MS} ms / heartbeat {HEARTBEAT_MS} ms: survivor's own partitions {sorted(survivor_own)} "
          f"stalled at most {survivor_stall:.1f} s; the dead one's {sorted(dead_own)} at most {takeover:.1f} s "
          f"(gaps from the kill: {progress.gaps(killed_at)})")
    assert survivor_stall < SURVIVOR_STALL_BOUND
    assert takeover < SESSION_MS / 1000 + TAKEOVER_MARGIN
    assert await _lag_partitions(first_door, PARTITIONS)  # the survivor now reports all of them
    assert first.running and not second.running


class Progress:
    """When each partition's account last gained a payment, sampled from the ledger's balances."""

    def __init__(self, facts: Any, accounts: dict[int, str]) -> None:
        self.facts = facts
        self.partition_of = {number: partition for partition, number in accounts.items()}
        self.advances: dict[int, list[float]] = {partition: [] for partition in accounts}

    async def watch(self) -> None:
        last: dict[str, int] = {}
        while True:
            balances = await self.facts.balances()
            now = time.monotonic()
            for number, partition in self.partition_of.items():
                if last and balances.get(number) != last.get(number):
                    self.advances[partition].append(now)
            last = balances
            await asyncio.sleep(0.1)

    def longest_gap(self, partition: int, since: float) -> float:
        times = [since, *(t for t in self.advances[partition] if t >= since)]
        return max(later - earlier for earlier, later in zip(times, times[1:], strict=False)) if len(times) > 1 \
            else float("inf")

    def gaps(self, since: float) -> dict[int, str]:
        """Per partition, the longest pause after ``since``: when it began (s after) and how long."""
        out = {}
        for partition, times in self.advances.items():
            points = [since, *(t for t in times if t >= since)]
            pairs = list(zip(points, points[1:], strict=False))
            if pairs:
                start, end = max(pairs, key=lambda pair: pair[1] - pair[0])
                out[partition] = f"+{start - since:.1f}s:{end - start:.1f}s"
        return out


async def _stream(deployment: Any, producer: Any, traffic: Any, accounts: dict[int, str]) -> None:
    """A payment to every partition's account each tick, until cancelled."""
    n = 0
    while True:
        await producer.send_many(deployment.topics(topics.PAYMENTS),
                                 [traffic.payment(number, 100, f"failover-{n}-{p}") for p, number in accounts.items()])
        n += 1
        await asyncio.sleep(TICK)


async def _lag_series(door: Any) -> set[int]:
    _, body = await door.get("/metrics")
    return {int(line.split('partition="', 1)[1].split('"', 1)[0]) for line in body.splitlines()
            if line.startswith("billing_consumer_lag{") and "payments" in line}


async def _lag_partitions(door: Any, expected: int) -> bool:
    return len(await _lag_series(door)) == expected


async def _split(first: Any, second: Any) -> tuple[set[int], set[int]] | None:
    mine, theirs = await _lag_series(first), await _lag_series(second)
    if mine and theirs and not mine & theirs and len(mine | theirs) == PARTITIONS:
        return mine, theirs
    return None
