"""Replay and verify: ``ledger.service.rebuild`` and ``ledger.service.verify`` over a generated
journal, against a plain Python fold of the same rows and SQL ``SUM ... GROUP BY``.

The journal is generated here and copied into the ledger's own schema: each account's opening
(an account fact), then alternating payments (+amount on ``sub:<n>:main``, -amount on
``op:cash:terminal``) and charges (-amount on the subscriber, +amount on
``op:revenue:subscription``), chained with the ledger's own hashing, with the projections
(``accounts``, ``operator_balances``) set to the journal's sums in SQL. The journal verifies
clean: a correct rebuild finds no mismatch, a correct verify no finding.

The fold is the ceiling a Python replay is held to: the postings' (account, amount) rows read
with the driver's cursor and summed into a dict, nothing else, with the garbage collector paused
as the ledger's passes pause it. Verify also hashes every journal row: ``hash_seconds`` is the
chain's SHA-256 alone over canonical bytes built beforehand, so fold / (fold + hash) bounds what
any verifier reading the same rows could reach against the fold.
"""

from __future__ import annotations

import gc
import hashlib
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from billing_contracts.catalog.ledger import PaymentType
from billing_events.clock import SystemClock
from ledger.domain import GENESIS_HASH, AccountSettings, FactKind, JournalRecord, Posting
from billing_events.db import Database
from billing_events.schema import plumbing_metadata
from billing_contracts.topics import TopicNames
from ledger import service, store
from ledger.context import LedgerContext

from bench.infra import Databases, asyncpg_dsn
from bench.workload import account_number

ACCOUNTS = """INSERT INTO accounts (number, currency, main, bonus, payment_type, credit_limit, is_open, opened_at)
               SELECT number, 'RUB', 0, 0, 'prepaid', 0, true, $1 FROM unnest($2::text[]) AS number"""
PROJECT = [
    """UPDATE accounts SET main = s.total
       FROM (SELECT substr(account, 5, 12) AS number, sum(amount) AS total FROM postings
             WHERE account LIKE 'sub:%:main' GROUP BY 1) AS s
       WHERE accounts.number = s.number""",
    """INSERT INTO operator_balances (code, currency, balance)
       SELECT account, 'RUB', sum(amount) FROM postings WHERE account LIKE 'op:%' GROUP BY account""",
    """INSERT INTO chain_head (id, hash, length)
       SELECT 1, hash, (SELECT count(*) FROM journal) FROM journal ORDER BY seq DESC LIMIT 1""",
]
JOURNAL_COLUMNS = ("txn_id", "kind", "business_key", "cause_event_id", "cause_type", "occurred_at", "recorded_at",
                   "hash", "prev_hash", "account_settings")
POSTING_COLUMNS = ("txn_id", "account", "amount", "currency")
LOAD_BATCH = 100_000
CASH, REVENUE = "op:cash:terminal", "op:revenue:subscription"
CEILING = "SELECT account, sum(amount) FROM postings GROUP BY account"
FOLD = "SELECT account, amount FROM postings"
FOLD_BATCH = 50_000


async def run(databases: Databases, *, entries: int, large_entries: int, accounts: int, repeat: int,
              say: callable) -> dict[str, Any]:
    """Replay and verify of ``entries`` (best of ``repeat``) against the fold and SQL, then once
    more at ``large_entries``: how the cost per entry grows with the journal."""
    figures = await _measure(databases, entries=entries, accounts=accounts, repeat=repeat, say=say, hashing=True)
    large = await _measure(databases, entries=large_entries, accounts=accounts, repeat=1, say=say, hashing=False)
    figures["growth"] = [_growth(figures), _growth(large)]
    return figures


def _growth(figures: dict[str, Any]) -> dict[str, float]:
    """Wall and this process's CPU per entry: the CPU one is blind to the database server and to
    whatever else runs on the machine."""
    per_entry = {name: figures[name] / figures["entries"] * 1e6 for name in
                 ("seconds", "cpu_seconds", "verify_seconds", "verify_cpu_seconds", "fold_seconds")}
    return {"entries": figures["entries"], "replay_us_per_entry": per_entry["seconds"],
            "replay_cpu_us_per_entry": per_entry["cpu_seconds"], "verify_us_per_entry": per_entry["verify_seconds"],
            "verify_cpu_us_per_entry": per_entry["verify_cpu_seconds"], "fold_us_per_entry": per_entry["fold_seconds"],
            "generate_seconds": figures["generate_seconds"]}


async def _measure(databases: Databases, *, entries: int, accounts: int, repeat: int, say: callable,
                   hashing: bool) -> dict[str, Any]:
    url = await databases.create("replay")
    db = Database(url)
    try:
        await db.create_schema(plumbing_metadata, store.metadata)
        say(f"replay: generating a journal of {entries:,} entries")
        started = time.perf_counter()
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            contents = await _generate(conn, transactions=entries // 2, accounts=accounts, keep=hashing)
            await conn.execute("VACUUM ANALYZE")  # settle hint bits and statistics before timing
            generated = time.perf_counter() - started

            hashed = _hash_chain(contents) if contents else None
            del contents
            ctx = LedgerContext(db=db, clock=SystemClock(), topics=TopicNames())
            ceiling = folded = best = best_cpu = verified = verified_cpu = float("inf")
            for _ in range(repeat):  # in turns, so that a busy spell of the machine hits all three
                started = time.perf_counter()
                rows = await conn.fetch(CEILING)
                ceiling = min(ceiling, time.perf_counter() - started)
                started = time.perf_counter()
                balances = await _fold(conn)
                folded = min(folded, time.perf_counter() - started)
                started, cpu = time.perf_counter(), time.process_time()
                report = await service.rebuild(ctx)
                if time.perf_counter() - started < best:
                    best, best_cpu = time.perf_counter() - started, time.process_time() - cpu
            if balances != {account: int(total) for account, total in rows}:
                raise RuntimeError("the plain fold disagrees with SQL")
        finally:
            await conn.close()
        if report.entries != entries or report.mismatches or report.accounts != len(rows):
            raise RuntimeError(f"rebuild disagrees with the generated journal: {report.entries} entries, "
                               f"{report.accounts} accounts, {len(report.mismatches)} mismatches")
        for _ in range(repeat):
            started, cpu = time.perf_counter(), time.process_time()
            audit = await service.verify(ctx)
            if time.perf_counter() - started < verified:
                verified, verified_cpu = time.perf_counter() - started, time.process_time() - cpu
        if not audit.ok or audit.entries != entries:
            raise RuntimeError(f"verify disagrees with the generated journal: {audit.entries} entries, "
                               f"findings {[f.kind.value for f in audit.findings[:5]]}")
    finally:
        await db.dispose()
        await databases.drop(url)
    figures: dict[str, Any] = {
        "entries": entries,
        "accounts": report.accounts,
        "entries_per_s": entries / best,
        "seconds": best,
        "cpu_seconds": best_cpu,
        "fold_entries_per_s": entries / folded,
        "fold_seconds": folded,
        "replay_vs_fold": folded / best,
        "sql_entries_per_s": entries / ceiling,
        "sql_seconds": ceiling,
        "ratio_to_sql": ceiling / best,
        "generate_seconds": generated,
        "verify_entries_per_s": entries / verified,
        "verify_seconds": verified,
        "verify_cpu_seconds": verified_cpu,
        "verify_vs_fold": folded / verified,
        "verify_records": audit.records,
    }
    if hashed is not None:
        figures["hash_seconds"] = hashed
        figures["verify_floor_vs_fold"] = folded / (folded + hashed)
    return figures


async def _fold(conn: asyncpg.Connection) -> dict[str, int]:
    """The plain fold: every posting's (account, amount) through the driver's cursor into a dict."""
    balances: dict[str, int] = {}
    get = balances.get
    gc.disable()
    try:
        async with conn.transaction():
            cursor = await conn.cursor(FOLD)
            while chunk := await cursor.fetch(FOLD_BATCH):
                for account, amount in chunk:
                    balances[account] = get(account, 0) + amount
    finally:
        gc.enable()
    return balances


def _hash_chain(contents: list[bytes]) -> float:
    """Seconds to chain SHA-256 over the journal's canonical bytes, built beforehand: the part of
    a verify no reading or encoding can remove."""
    sha256, previous = hashlib.sha256, GENESIS_HASH
    started = time.perf_counter()
    for content in contents:
        previous = sha256(previous + content).digest()
    return time.perf_counter() - started


async def _generate(conn: asyncpg.Connection, *, transactions: int, accounts: int, keep: bool) -> list[bytes]:
    """Write the journal, chained with the ledger's own hashing, its postings and projections, in
    one transaction. With ``keep``, the canonical bytes of every journal row, in chain order.

    The rows are built here and copied in (``COPY``), hash included; the postings' foreign key and
    balance triggers are off while loading (``session_replication_role``), as in a restore: the
    rows are sound by construction, and the verify that follows checks them all."""
    now = datetime.now(UTC)
    numbers = [account_number(a) for a in range(accounts)]
    opening = [JournalRecord(0, UUID(int=(3 << 64) + a), FactKind.ACCOUNT_OPENED.value, (), None,
                             "SubscriberRegistered", now, f"{number}:bench", None, None, None, b"",
                             AccountSettings(number, "RUB", PaymentType.PREPAID, 0, True).encode(), now)
               for a, number in enumerate(numbers)]
    contents: list[bytes] = []
    previous = GENESIS_HASH
    gc.disable()  # millions of acyclic objects: collections would only walk them
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(ACCOUNTS, now, numbers)
            for start in (None, *range(0, transactions, LOAD_BATCH)):
                batch = opening if start is None else [_transaction(t, now, numbers) for t in
                                                       range(start, min(start + LOAD_BATCH, transactions))]
                journal_rows = []
                for record in batch:
                    content = record.content()
                    prev_hash, previous = previous, hashlib.sha256(previous + content).digest()
                    journal_rows.append((record.id, record.kind, record.business_key, record.cause_event_id,
                                         record.cause_type, now, now, previous, prev_hash, record.account_settings))
                    if keep:
                        contents.append(content)
                await conn.copy_records_to_table("journal", records=journal_rows, columns=JOURNAL_COLUMNS)
                await conn.copy_records_to_table("postings", columns=POSTING_COLUMNS, records=[
                    (record.id, *posting) for record in batch for posting in record.postings])
            for statement in PROJECT:
                await conn.execute(statement)
    finally:
        gc.enable()
    return contents


def _transaction(t: int, now: datetime, numbers: list[str]) -> JournalRecord:
    """The t-th money transaction: even ones pay 500.00 in at a terminal, odd ones charge 10.00."""
    subscriber = f"sub:{numbers[t % len(numbers)]}:main"
    if t % 2 == 0:
        kind, key, cause, amount, operator = "payment", f"terminal:ref-{t}", "PaymentReceived", 50_000, CASH
    else:
        kind, key, cause, amount, operator = "charge", f"charge-{t}", "ChargeApplied", -1_000, REVENUE
    postings = (Posting(subscriber, amount, "RUB"), Posting(operator, -amount, "RUB"))
    return JournalRecord(0, UUID(int=(1 << 64) + t), kind, postings, UUID(int=(2 << 64) + t), cause, now, key,
                         None, None, None, b"")
