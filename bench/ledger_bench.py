"""Ingestion, end-to-end latency and memory of the ledger process, with the broker ceiling.

1. Ceiling: the same money movements produced to a topic of their own and read back by a plain
   aiokafka consumer that does nothing with them.
2. A ledger process starts, takes the registrations (every account opened), then serves the
   latency probe: payments at a steady rate, each timed from publishing to the BalanceChanged
   naming it as its cause, read by a plain consumer.
3. The ledger stops; the money movements are produced while it is down; a new ledger process
   starts and drains them. Throughput counts from its first posted transaction to its last
   (process start and the consumer group's join are reported apart); its peak RSS is sampled.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, TopicPartition

from billing_events import topics

from bench import kafka, workload
from bench.infra import Databases, asyncpg_dsn
from bench.ledger_process import LedgerProcess, scalar, wait_until

POSTINGS_PER_MOVEMENT = 2  # a payment or a charge: the subscriber's main account and the operator's
TRANSACTIONS = "SELECT coalesce(max(length), 0) FROM chain_head"
ACCOUNTS = "SELECT count(*) FROM accounts"


@dataclass(frozen=True)
class LedgerSizes:
    movements: int
    accounts: int
    latency_rate: int
    latency_seconds: float


async def run(bootstrap: str, databases: Databases, sizes: LedgerSizes, results: Path,
              say: callable) -> dict[str, dict[str, float]]:
    prefix = f"bench{uuid4().hex[:8]}."
    await kafka.create_topics(bootstrap, prefix)
    movements = workload.money_movements(sizes.movements, sizes.accounts)

    say(f"ceiling: producing {len(movements):,} messages and reading them back with plain aiokafka")
    ceiling_prefix = f"{prefix}ceiling."
    await kafka.create_topics(bootstrap, ceiling_prefix)
    produce_seconds = await kafka.produce(bootstrap, ceiling_prefix, movements)
    ceiling_rate = await kafka.consume_all(
        bootstrap, [f"{ceiling_prefix}{topics.PAYMENTS}", f"{ceiling_prefix}{topics.TARIFF}"], len(movements))

    url = await databases.create("ledger")
    dsn = asyncpg_dsn(url)
    log_file = results / "ledger.log"
    ledger = LedgerProcess(bootstrap=bootstrap, database_url=url, prefix=prefix, log_file=log_file).start()
    try:
        say(f"ledger: registering {sizes.accounts:,} accounts")
        await kafka.produce(bootstrap, prefix, workload.registrations(sizes.accounts))
        await wait_until(dsn, ACCOUNTS, sizes.accounts, ledger=ledger, timeout=300)
        say(f"latency: {sizes.latency_rate} payments/s for {sizes.latency_seconds:g} s")
        latencies = await _latency(bootstrap, prefix, sizes)
    finally:
        ledger.stop()

    before = await scalar(dsn, TRANSACTIONS)
    say(f"ingestion: {len(movements):,} payments and charges produced while the ledger is down")
    await kafka.produce(bootstrap, prefix, movements)
    ledger = LedgerProcess(bootstrap=bootstrap, database_url=url, prefix=prefix, log_file=log_file)
    started = time.perf_counter()
    ledger.start()
    profiler = _profile(ledger.pid)
    try:
        moved_at, moved_value, done_at = await wait_until(
            dsn, TRANSACTIONS, before + len(movements), ledger=ledger, timeout=1800)
        peak_rss = ledger.sample_rss()
    finally:
        ledger.stop()
        if profiler is not None:
            profiler.wait(timeout=30)
    assert moved_at is not None
    posted = before + len(movements) - moved_value
    rate = posted / max(done_at - moved_at, 1e-9)
    postings = await scalar(dsn, "SELECT count(*) FROM postings")
    batches = await scalar(dsn, f"SELECT count(DISTINCT recorded_at) FROM journal WHERE seq > {before}")
    dead = await scalar(dsn, "SELECT count(*) FROM dead_letters")
    if dead:
        raise RuntimeError(f"{dead} dead letters in the ingestion run; see {log_file}")

    return {
        "ingestion": {
            "movements": len(movements),
            "accounts": sizes.accounts,
            "postings": postings,
            "postings_per_s": rate * POSTINGS_PER_MOVEMENT,
            "movements_per_s": rate,
            "ceiling_messages_per_s": ceiling_rate,
            "ceiling_postings_per_s": ceiling_rate * POSTINGS_PER_MOVEMENT,
            "ratio_to_ceiling": rate / ceiling_rate,
            "producer_messages_per_s": len(movements) / produce_seconds,
            "mean_batch": len(movements) / max(batches, 1),
            "start_to_first_posting_s": moved_at - started,
            "start_to_all_posted_s": done_at - started,
        },
        "latency": latencies,
        "memory": {"peak_rss_mib": peak_rss / 1024 / 1024, "movements": len(movements)},
    }


def _profile(pid: int) -> subprocess.Popen[bytes] | None:
    """With BENCH_PROFILE=<file>, py-spy samples the ingesting ledger: a flame graph for a
    ``.svg`` file, collapsed stacks (one line per stack, with its count) otherwise."""
    output = os.environ.get("BENCH_PROFILE")
    if not output:
        return None
    kind = "flamegraph" if output.endswith(".svg") else "raw"
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                             "--format", kind, "--output", output],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _latency(bootstrap: str, prefix: str, sizes: LedgerSizes) -> dict[str, float]:
    """Payments at a steady rate; publish -> BalanceChanged observed, per payment."""
    ledger_topic = f"{prefix}{topics.LEDGER}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    partitions = [TopicPartition(ledger_topic, p) for p in range(kafka.PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    sent: dict[UUID, float] = {}
    seen: dict[UUID, float] = {}
    count = int(sizes.latency_rate * sizes.latency_seconds)

    async def observe() -> None:
        while len(seen) < count:
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    body = json.loads(record.value)
                    if body.get("event_type") == "BalanceChanged":
                        seen[UUID(body["payload"]["cause_event_id"])] = now

    watcher = asyncio.create_task(observe())
    tick = 0.01
    per_tick = max(1, round(sizes.latency_rate * tick))
    async with kafka.producer(bootstrap) as sender:
        start = time.perf_counter()
        for index in range(count):
            due = start + (index // per_tick) * tick
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            message = workload.payment(index, index % sizes.accounts, minor=10_000, tag="latency")
            sent[message.event_id] = time.perf_counter()
            await sender.send(f"{prefix}{message.topic}", message.value, key=message.key)
        await sender.flush()
    try:
        await asyncio.wait_for(watcher, timeout=60)
    finally:
        watcher.cancel()
        await consumer.stop()
    samples = sorted((seen[event_id] - sent[event_id]) * 1000 for event_id in sent if event_id in seen)
    if len(samples) < count:
        raise RuntimeError(f"only {len(samples)} of {count} payments came back as BalanceChanged")
    return {
        "payments": count,
        "rate_per_s": sizes.latency_rate,
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "max_ms": samples[-1],
    }
