"""Ingestion, end-to-end latency and memory of the ledger process, with the broker ceilings.

1. Ceilings: the same money movements produced to a topic of their own and read back by a plain
   aiokafka consumer that does nothing with them; and the latency probe's payments, at its rate,
   taken through the ledger's two broker hops by plain aiokafka clients that do nothing else.
2. A ledger process starts, takes the registrations (every account opened), then serves the
   latency probe: payments at a steady rate, each timed from publishing to the BalanceChanged
   naming it as its cause, read by a plain consumer.
3. The ledger stops; the money movements are produced while it is down; a new ledger process
   starts and drains them. Throughput counts from its first posted transaction to its last
   (process start and the consumer group's join are reported apart); its peak RSS is sampled.
4. What envelope signatures cost: the same ingestion into a fresh ledger with signatures off
   (``BILLING_ENVELOPE_SIGNATURES=false``, for this comparison only), and one signature and one
   verification timed alone, times what a movement takes of each.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

from aiokafka import ConsumerRecord

from billing_contracts import topics
from billing_events import migrations
from billing_events.db import Database
from billing_events.signing import Keyring

from bench import kafka, workload
from bench.cpu import CpuMeter
from bench.cluster import PRODUCTION_SETTINGS, own_cluster
from bench.infra import Broker, Databases, asyncpg_dsn
from bench.ledger_process import LedgerProcess, scalar, wait_until

POSTINGS_PER_MOVEMENT = 2  # a payment or a charge: the subscriber's main account and the operator's
TRANSACTIONS = "SELECT coalesce(max(length), 0) FROM chain_head"
ACCOUNTS = "SELECT count(*) FROM accounts"
ALL_PUBLISHED = "SELECT (count(*) = 0)::int FROM outbox WHERE published_at IS NULL"


@dataclass(frozen=True)
class LedgerSizes:
    movements: int
    accounts: int
    latency_rate: int
    latency_seconds: float
    accounts_large: int = 0
    """A second ingestion among this many accounts (0: none): how the cost grows with them."""
    movements_large: int = 0
    """Its movements (0: as many as the first)."""


async def run(broker: Broker, databases: Databases, sizes: LedgerSizes, results: Path,
              say: callable) -> dict[str, dict[str, float]]:
    bootstrap = broker.bootstrap
    prefix = f"bench{uuid4().hex[:8]}."
    await kafka.create_topics(bootstrap, prefix)
    movements = workload.money_movements(sizes.movements, sizes.accounts)

    say(f"ceiling: producing {len(movements):,} messages and reading them back with plain aiokafka")
    ceiling_prefix = f"{prefix}ceiling."
    await kafka.create_topics(bootstrap, ceiling_prefix)
    produce_seconds = await kafka.produce(bootstrap, ceiling_prefix, movements)
    ceiling_rate, consume_us = await kafka.consume_all(
        bootstrap, [f"{ceiling_prefix}{topics.PAYMENTS}", f"{ceiling_prefix}{topics.TARIFF}"], len(movements))
    say(f"ceiling: {sizes.latency_rate} payments/s for {sizes.latency_seconds:g} s, two plain aiokafka hops")
    hops_prefix = f"{prefix}hops."  # empty topics, as the ledger's are during the probe
    await kafka.create_topics(bootstrap, hops_prefix)
    latency_ceiling = await kafka.round_trip(
        bootstrap, hops_prefix, _payments(sizes, "ceiling"), sizes.latency_rate)

    url = await _migrated(databases, "ledger")
    dsn = asyncpg_dsn(url)
    log_file = results / "ledger.log"
    ledger = LedgerProcess(bootstrap=bootstrap, database_url=url, prefix=prefix, log_file=log_file).start()
    try:
        say(f"ledger: registering {sizes.accounts:,} accounts")
        await kafka.produce(bootstrap, prefix, workload.registrations(sizes.accounts))
        await wait_until(dsn, ACCOUNTS, sizes.accounts, ledger=ledger, timeout=300)
        say(f"latency: {sizes.latency_rate} payments/s for {sizes.latency_seconds:g} s")
        latencies = await _latency(bootstrap, prefix, sizes)
        latencies.update({f"ceiling_{name}": value for name, value in latency_ceiling.items()})
        latencies["ratio_to_ceiling"] = latency_ceiling["p99_ms"] / latencies["p99_ms"]
    finally:
        ledger.stop()

    ingested = await _ingest(broker, dsn, movements, LedgerProcess(
        bootstrap=bootstrap, database_url=url, prefix=prefix, log_file=log_file), say)
    ingested["ingestion"].update({
        "ceiling_messages_per_s": ceiling_rate,
        "ceiling_postings_per_s": ceiling_rate * POSTINGS_PER_MOVEMENT,
        "ratio_to_ceiling": ingested["ingestion"]["movements_per_s"] / ceiling_rate,
        "ceiling_consume_us_per_message": consume_us,
        "producer_messages_per_s": len(movements) / produce_seconds,
        "postgres": await databases.describe(),
    })
    if sizes.accounts_large:
        ingested["ingestion_large"] = await _ingest_among_many(broker, databases, sizes, results, say)
    ingested["signatures"] = await _signature_cost(broker, databases, sizes, ingested, results, say)
    return {**ingested, "latency": latencies}


async def _ingest(broker: Broker, dsn: str, movements: Sequence[workload.Message], ledger: LedgerProcess,
                  say: callable, *, postmaster: int | None = None) -> dict[str, dict[str, float]]:
    """Produce ``movements`` while the ledger is down, start it and time the drain (the CPU of
    PostgreSQL counted among the children of ``postmaster`` when given)."""
    before = await scalar(dsn, TRANSACTIONS)
    outbox_before = await scalar(dsn, "SELECT coalesce(max(id), 0) FROM outbox")
    say(f"ingestion: {len(movements):,} payments and charges produced while the ledger is down")
    await kafka.produce(broker.bootstrap, ledger.prefix, movements)
    started = time.perf_counter()
    ledger.start()
    profiler = _profile(ledger.pids)
    meter = CpuMeter({**ledger.pids, **({"broker": broker.pid} if broker.pid else {})},
                     database=dsn.rpartition("/")[2], postmaster=postmaster)

    def first_posting() -> None:
        meter.start()
        ledger.note_start_rss()

    try:
        moved_at, moved_value, done_at = await wait_until(
            dsn, TRANSACTIONS, before + len(movements), ledger=ledger, timeout=1800, on_first_move=first_posting)
        # The CPU window runs on until the relay has published the last event too: its work
        # trails the postings, and a window closed at the last posting would leave it out.
        *_, published_at = await wait_until(dsn, ALL_PUBLISHED, 1, ledger=ledger, timeout=600)
        meter.stop()
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
    # The relay stamps one batch's rows with one moment: rows per distinct moment is its batch
    # (the ledger topic's rows only: the payments kept for history are stamped by the consumers).
    relayed = f"FROM outbox WHERE id > {outbox_before} AND topic = '{ledger.prefix}{topics.LEDGER}'"
    relay_batches = await scalar(dsn, f"SELECT count(DISTINCT published_at) {relayed}")
    dead = await scalar(dsn, "SELECT count(*) FROM dead_letters")
    if dead:
        raise RuntimeError(f"{dead} dead letters in the ingestion run; see {ledger.log_file}")
    return {
        "ingestion": {
            "movements": len(movements),
            "accounts": await scalar(dsn, ACCOUNTS),
            "postings": postings,
            "postings_per_s": rate * POSTINGS_PER_MOVEMENT,
            "movements_per_s": rate,
            "mean_batch": len(movements) / max(batches, 1),
            "relay_mean_batch": await scalar(dsn, f"SELECT count(*) {relayed}") / max(relay_batches, 1),
            "start_to_first_posting_s": moved_at - started,
            "start_to_all_posted_s": done_at - started,
            "last_posted_to_all_published_s": published_at - done_at,
            "relayed_per_movement": await scalar(dsn, f"SELECT count(*) {relayed}") / max(posted, 1),
        },
        "cpu": _with_ledger_total(meter.report(posted), list(ledger.roles)),
        "memory": {"peak_rss_mib": sum(peak_rss.values()) / 2**20, "movements": len(movements),
                   **{f"{name}_peak_rss_mib": rss / 2**20 for name, rss in peak_rss.items()},
                   **{f"{name}_start_rss_mib": rss / 2**20 for name, rss in ledger.start_rss.items()}},
    }


OPEN_ACCOUNTS = """
INSERT INTO accounts (number, currency, main, bonus, payment_type, credit_limit, is_open, opened_at)
SELECT number, 'RUB', 0, 0, 'prepaid', 0, true, now() FROM unnest($1::text[]) AS number
"""
"""Accounts as a registration leaves them (see ``ledger.domain.open_account``), written in bulk:
registering a million through the ledger would take longer than the ingestion measured."""


async def _ingest_among_many(broker: Broker, databases: Databases, sizes: LedgerSizes, results: Path,
                             say: callable) -> dict[str, dict[str, float]]:
    """The same ingestion into a ledger holding ``accounts_large`` accounts: the cost per
    movement as the accounts table and its index grow. It runs on a PostgreSQL cluster of its
    own, configured as docs/operations.md recommends for production (``shared_buffers`` holding
    the hot set), not on the machine's server of the other rows."""
    say(f"ingestion among {sizes.accounts_large:,} accounts: a PostgreSQL cluster of its own "
        f"(shared_buffers {PRODUCTION_SETTINGS['shared_buffers']}), opening them")
    with own_cluster() as cluster:
        own = Databases(cluster.url, source="the bench's own cluster, docs/operations.md's settings",
                        postmaster_pid=cluster.postmaster_pid)
        figures = await _ingest_fresh(broker, own, "ledger_large", sizes.accounts_large,
                                      sizes.movements_large or sizes.movements, results, say)
        figures["postgres"] = await own.describe()
    return figures


async def _ingest_fresh(broker: Broker, databases: Databases, purpose: str, accounts: int, movements: int,
                        results: Path, say: callable, *, signatures: bool = True) -> dict[str, dict[str, float]]:
    """An ingestion into a new ledger database and topics, its ``accounts`` written straight into
    the table (their opening facts are not in the journal, which ingestion never reads)."""
    prefix = f"bench{uuid4().hex[:8]}."
    await kafka.create_topics(broker.bootstrap, prefix)
    url = await _migrated(databases, purpose)
    dsn = asyncpg_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(OPEN_ACCOUNTS, [workload.account_number(n) for n in range(accounts)])
        await conn.execute("ANALYZE accounts")
    finally:
        await conn.close()
    figures = await _ingest(broker, dsn, workload.money_movements(movements, accounts), LedgerProcess(
        bootstrap=broker.bootstrap, database_url=url, prefix=prefix, log_file=results / "ledger.log",
        signatures=signatures), say, postmaster=databases.postmaster_pid)
    await databases.drop(url)
    return {**figures["ingestion"], "cpu": figures["cpu"], "memory": figures["memory"]}


SIGNATURE_SAMPLES = 2_000


async def _signature_cost(broker: Broker, databases: Databases, sizes: LedgerSizes,
                          signed: dict[str, dict[str, float]], results: Path, say: callable) -> dict[str, float]:
    """CPU per movement with and without envelope signatures. The difference of two runs carries
    the machine's noise, so one signature and one verification are also timed alone: a movement
    costs one verification (the payment or charge it takes) and one signature per record the
    relay publishes for it."""
    say(f"signatures: the same {sizes.movements:,} movements into a ledger with signatures off")
    unsigned = await _ingest_fresh(broker, databases, "ledger_unsigned", sizes.accounts, sizes.movements, results,
                                   say, signatures=False)
    payment = workload.payment(0, 0)
    signer = workload.SIGNERS["ledger"]
    keyring = Keyring.from_entries(workload.KEYRING)
    headers = dict(payment.headers)
    started = time.process_time()
    for _ in range(SIGNATURE_SAMPLES):
        signer.headers(payment.topic, payment.key, payment.value)
    sign_us = (time.process_time() - started) / SIGNATURE_SAMPLES * 1e6
    started = time.process_time()
    for _ in range(SIGNATURE_SAMPLES):
        keyring.refusal(payment.topic, payment.key, payment.value, headers, "payments")
    verify_us = (time.process_time() - started) / SIGNATURE_SAMPLES * 1e6
    relayed = signed["ingestion"]["relayed_per_movement"]

    def spent(cpu: dict[str, float]) -> float:
        return sum(cpu.get(f"{part}_us_per_movement", 0.0) for part in ("ledger", "postgres", "broker"))

    return {
        "sign_us": sign_us,
        "verify_us": verify_us,
        "signatures_per_movement": relayed,
        "alone_us_per_movement": verify_us + relayed * sign_us,
        "ledger_us_per_movement_signed": signed["cpu"].get("ledger_us_per_movement", 0.0),
        "ledger_us_per_movement_unsigned": unsigned["cpu"].get("ledger_us_per_movement", 0.0),
        "us_per_movement_signed": spent(signed["cpu"]),
        "us_per_movement_unsigned": spent(unsigned["cpu"]),
        "movements_per_s_unsigned": unsigned["movements_per_s"],
    }


async def _migrated(databases: Databases, purpose: str) -> str:
    """A new database at the head of the ledger's history, migrated as deploy/ does it: by a
    step before the processes start, which then only check its revision."""
    url = await databases.create(purpose)
    database = Database(url)
    try:
        await migrations.upgrade(database, "ledger")
    finally:
        await database.engine.dispose()
    return url


def _with_ledger_total(cpu: dict[str, float], processes: Sequence[str]) -> dict[str, float]:
    """The ledger's processes summed, and the rate every core of the machine would give at the
    measured CPU per movement: the bound of this machine, whatever the ledger waits on."""
    for figure in ("us_per_movement", "cores_busy"):
        if all(f"{name}_{figure}" in cpu for name in processes):
            cpu[f"ledger_{figure}"] = sum(cpu[f"{name}_{figure}"] for name in processes)
    if cpu.get("machine_us_per_movement"):
        cpu["machine_bound_postings_per_s"] = cpu["cores"] / cpu["machine_us_per_movement"] * 1e6 * POSTINGS_PER_MOVEMENT
    return cpu


def _profile(pids: dict[str, int]) -> subprocess.Popen[bytes] | None:
    """With BENCH_PROFILE=<file>, py-spy samples one ingesting ledger process (the first, or
    the one BENCH_PROFILE_PROCESS names, e.g. ``relay``): a flame graph for a ``.svg`` file,
    collapsed stacks (one line per stack, with its count) otherwise."""
    output = os.environ.get("BENCH_PROFILE")
    if not output:
        return None
    pid = pids[os.environ.get("BENCH_PROFILE_PROCESS", next(iter(pids)))]
    kind = "flamegraph" if output.endswith(".svg") else "raw"
    py_spy = Path(sys.executable).with_name("py-spy")  # installed beside the interpreter, on PATH or not
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                             "--format", kind, "--output", output],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _payments(sizes: LedgerSizes, tag: str) -> list[workload.Message]:
    count = int(sizes.latency_rate * sizes.latency_seconds)
    return [workload.payment(index, index % sizes.accounts, minor=10_000, tag=tag) for index in range(count)]


async def _latency(bootstrap: str, prefix: str, sizes: LedgerSizes) -> dict[str, float]:
    """Payments at a steady rate; publish -> BalanceChanged observed, per payment."""
    payments = _payments(sizes, "latency")
    watcher = await kafka.tail(bootstrap, f"{prefix}{topics.LEDGER}")

    def cause(record: ConsumerRecord[bytes, bytes]) -> UUID | None:
        body = json.loads(record.value)
        return UUID(body["payload"]["cause_event_id"]) if body.get("event_type") == "BalanceChanged" else None

    arrivals = asyncio.create_task(kafka.observe(watcher, {payment.event_id for payment in payments}, cause))
    try:
        async with kafka.probe_producer(bootstrap) as sender:
            sent = await kafka.send_steadily(sender, prefix, payments, sizes.latency_rate)
        seen = await asyncio.wait_for(arrivals, timeout=60)
    finally:
        arrivals.cancel()
        await watcher.stop()
    return {"payments": len(payments), "rate_per_s": sizes.latency_rate,
            **kafka.latency_ms(sent, seen, "payments came back as BalanceChanged")}
