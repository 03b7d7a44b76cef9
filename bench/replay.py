"""Replay and verify: ``ledger.service.rebuild`` and ``ledger.service.verify`` over a generated
journal, against SQL ``SUM ... GROUP BY``.

The journal is generated inside PostgreSQL (``INSERT ... SELECT generate_series``) in the ledger's
own schema: each account's opening (an account fact), then alternating payments (+amount on
``sub:<n>:main``, -amount on ``op:cash:terminal``) and charges (-amount on the subscriber,
+amount on ``op:revenue:subscription``), with the projections (``accounts``,
``operator_balances``) set to the journal's sums. The hash chain is then computed with the
ledger's own hashing and written in one statement, so the journal verifies clean: a correct
rebuild finds no mismatch, a correct verify no finding.
"""

from __future__ import annotations

import time

import asyncpg

from billing_events.clock import SystemClock
from ledger.domain import GENESIS_HASH
from billing_events.db import Database
from billing_events.schema import plumbing_metadata
from billing_events.topics import TopicNames
from ledger import service, store

from bench.infra import Databases, asyncpg_dsn

GENERATE = [
    """INSERT INTO accounts (number, currency, main, bonus, payment_type, credit_limit, is_open, opened_at)
       SELECT lpad((100000000000 + a)::text, 12, '0'), 'RUB', 0, 0, 'prepaid', 0, true, now()
       FROM generate_series(0, {accounts} - 1) AS a""",
    """INSERT INTO journal (txn_id, kind, business_key, cause_type, occurred_at, recorded_at, hash, account_settings)
       SELECT md5('bench-open-' || number)::uuid, 'account_opened', number || ':bench', 'SubscriberRegistered',
              opened_at, opened_at, '\\x00',
              format('{{"credit_limit":0,"currency":"RUB","is_open":true,"number":"%s","payment_type":"prepaid"}}',
                     number)
       FROM accounts ORDER BY number""",
    """INSERT INTO journal (txn_id, kind, business_key, cause_event_id, cause_type, occurred_at, recorded_at, hash)
       SELECT md5('bench-txn-' || t)::uuid,
              CASE WHEN t % 2 = 0 THEN 'payment' ELSE 'charge' END,
              CASE WHEN t % 2 = 0 THEN 'terminal:ref-' || t ELSE 'charge-' || t END,
              md5('bench-event-' || t)::uuid,
              CASE WHEN t % 2 = 0 THEN 'PaymentReceived' ELSE 'ChargeApplied' END,
              now(), now(), decode(md5(t::text) || md5((-t)::text), 'hex')
       FROM generate_series(0, {transactions} - 1) AS t""",
    """INSERT INTO postings (txn_id, account, amount, currency)
       SELECT md5('bench-txn-' || t)::uuid,
              CASE WHEN side = 0 THEN 'sub:' || lpad((100000000000 + t % {accounts})::text, 12, '0') || ':main'
                   WHEN t % 2 = 0 THEN 'op:cash:terminal' ELSE 'op:revenue:subscription' END,
              CASE WHEN t % 2 = 0 THEN 50000 ELSE -1000 END * CASE WHEN side = 0 THEN 1 ELSE -1 END,
              'RUB'
       FROM generate_series(0, {transactions} - 1) AS t, generate_series(0, 1) AS side
       ORDER BY t, side""",
]
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
CHAIN = """UPDATE journal SET hash = chained.hash FROM unnest($1::bigint[], $2::bytea[]) AS chained(seq, hash)
           WHERE journal.seq = chained.seq"""
CEILING = "SELECT account, sum(amount) FROM postings GROUP BY account"


async def run(databases: Databases, *, entries: int, accounts: int, repeat: int, say: callable) -> dict[str, float]:
    url = await databases.create("replay")
    db = Database(url)
    try:
        await db.create_schema(plumbing_metadata, store.metadata)
        say(f"replay: generating a journal of {entries:,} entries")
        started = time.perf_counter()
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            async with conn.transaction():
                for statement in GENERATE:
                    await conn.execute(statement.format(transactions=int(entries // 2), accounts=int(accounts)))
            await _chain(db, conn)
            async with conn.transaction():
                for statement in PROJECT:
                    await conn.execute(statement)
            await conn.execute("VACUUM ANALYZE")  # settle hint bits and statistics before timing
            generated = time.perf_counter() - started

            ceiling = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                rows = await conn.fetch(CEILING)
                ceiling = min(ceiling, time.perf_counter() - started)
        finally:
            await conn.close()

        ctx = service.LedgerContext(db=db, clock=SystemClock(), topics=TopicNames())
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            report = await service.rebuild(ctx)
            best = min(best, time.perf_counter() - started)
        if report.entries != entries or report.mismatches or report.accounts != len(rows):
            raise RuntimeError(f"rebuild disagrees with the generated journal: {report.entries} entries, "
                               f"{report.accounts} accounts, {len(report.mismatches)} mismatches")
        verified = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            audit = await service.verify(ctx)
            verified = min(verified, time.perf_counter() - started)
        if not audit.ok or audit.entries != entries:
            raise RuntimeError(f"verify disagrees with the generated journal: {audit.entries} entries, "
                               f"findings {[f.kind.value for f in audit.findings[:5]]}")
    finally:
        await db.dispose()
    return {
        "entries": entries,
        "accounts": report.accounts,
        "entries_per_s": entries / best,
        "seconds": best,
        "sql_entries_per_s": entries / ceiling,
        "sql_seconds": ceiling,
        "ratio_to_sql": ceiling / best,
        "generate_seconds": generated,
        "verify_entries_per_s": entries / verified,
        "verify_seconds": verified,
        "verify_records": audit.records,
    }


async def _chain(db: Database, conn: asyncpg.Connection) -> None:
    """Hash the generated journal as the ledger would have, and write the chain in one statement."""
    seqs, hashes, previous = [], [], GENESIS_HASH
    async with db.connect() as reader:
        async for record in store.raw_journal(reader):
            previous = record.content_hash(previous)
            seqs.append(record.seq)
            hashes.append(previous)
    await conn.execute(CHAIN, seqs, hashes)
