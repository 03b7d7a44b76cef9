"""The ledger's integrity commands: audit the journal, rebuild (and repair) the projections from
it, and seal its chain head outside the database.

- :func:`verify` reads the journal's raw rows in one snapshot and reports every finding of
  :mod:`ledger.domain.audit`; it never raises on damaged data.
- :func:`rebuild` replays the postings (summed by the database) and the account facts and
  reports the projection drift :func:`verify` reports (balances per account and currency, and
  settings); with ``repair`` it first holds every writer off
  (:func:`ledger.store.lock_out_writers`), audits the journal against the seals given, and only
  then overwrites the projections, in the same transaction: no posting lands between the replay
  and the write, and a journal that fails the audit (a seal it does not reproduce included) is
  not copied into the balances unless the operator says it is to be trusted (logged as the
  operator's act).
- :func:`seal` publishes the chain head (``JournalSealed``) through the outbox;
  :func:`keep_sealing` does it periodically. An auditor checks the journal against those seals:
  rewriting history then needs the topic rewritten too, which the database's writer cannot do.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events import event_log
from billing_contracts.catalog.ledger import JOURNAL_KEY, JournalSealed
from billing_contracts.envelope import Envelope
from billing_events.db import Database
from billing_events.logging import get_logger

from ledger import domain, store
from ledger.context import LedgerContext
from ledger.domain import GENESIS_HASH, AuditReport, Finding, Seal

log = get_logger(__name__)
Progress = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    """No progress display."""


async def _total(conn: AsyncConnection, progress: Progress) -> int:
    """The postings a pass will read, for a progress display: counting them is a scan of its
    own, skipped when nobody watches."""
    return 0 if progress is _quiet else await store.count_postings(conn)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a pass over the whole journal. The pass
    allocates millions of tuples (rows, postings, records) that reference counting frees, none in
    a cycle; the collector would still walk the live ones at every collection: about half the
    CPU of a verify and of a rebuild."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _audit(conn: AsyncConnection, seals: Iterable[Seal], progress: Progress) -> AuditReport:
    total = await _total(conn, progress)
    audit = domain.Audit(seals)
    feed = audit.feed
    with _collector_paused():
        async for chunk in store.raw_journal_chunks(conn):
            for record in chunk:
                feed(record)
            progress(audit.entries, total)
    progress(audit.entries, total)
    return audit.finish(await store.head(conn), *await store.stored_projections(conn))


async def verify(ctx: LedgerContext, seals: Iterable[Seal] = (), progress: Progress = _quiet,
                 workers: int | None = None) -> AuditReport:
    """The journal's integrity in one report, read in one snapshot beside live traffic: double
    entry, the hash chain, the chain head, the given seals, the projections against replay.

    On PostgreSQL the journal is cut into spans audited in ``workers`` processes at once (by
    default the context's ``verify_workers``, else one per core), each reading the same snapshot
    through its own connection; the findings are those of one pass. SQLite, or one worker: one
    pass in this process."""
    workers = workers or ctx.verify_workers or os.cpu_count() or 1
    seals = tuple(seals)
    async with ctx.db.transaction() as conn:
        await store.consistent_snapshot(conn)
        if workers < 2 or not store.shares_snapshots(conn):
            return await _audit(conn, seals, progress)
        total = await _total(conn, progress)
        spans = await store.journal_spans(conn, workers)
        audit, (head, balances, settings) = await asyncio.gather(  # this connection reads while the workers do
            _audit_spans(ctx.db.url, await store.export_snapshot(conn), spans, seals, lambda done: progress(done, total)),
            _head_and_projections(conn))
        return audit.finish(head, balances, settings)


async def _head_and_projections(conn: AsyncConnection) -> tuple[domain.ChainHead | None, domain.Balances,
                                                                       dict[str, domain.AccountSettings]]:
    return await store.head(conn), *await store.stored_projections(conn)


async def _audit_spans(url: str, snapshot: str, spans: list[store.JournalSpan], seals: tuple[Seal, ...],
                       progress: Callable[[int], None]) -> domain.Audit:
    """Every span audited in a worker process of its own, from the hash its first row says it
    follows; a span that does not join the one before it is audited again from the hash that
    one ends with (its first link then checked as one pass checks it). The spans' audits joined
    in order: the whole journal's."""
    audit = domain.Audit(seals)
    if not spans:
        return audit
    loop = asyncio.get_running_loop()
    done = 0

    def audit_span(span: store.JournalSpan, previous: bytes | None) -> asyncio.Future[domain.Audit]:
        return loop.run_in_executor(pool, _audit_span_in_worker, url, snapshot, span, seals, previous)

    def count(future: asyncio.Future[domain.Audit]) -> None:
        nonlocal done
        if not future.cancelled() and future.exception() is None:
            done += future.result().entries
            progress(done)

    with ProcessPoolExecutor(len(spans), mp_context=_worker_start()) as pool:
        pending = [audit_span(span, GENESIS_HASH if span.start == 0 else None) for span in spans]
        for future in pending:
            future.add_done_callback(count)
        audits = list(await asyncio.gather(*pending))
        rejoined = {index: audit_span(spans[index], audits[index - 1].ends_with)
                    for index in range(1, len(audits)) if not audits[index - 1].joins(audits[index])}
        for index, future in rejoined.items():
            audits[index] = await future
    for span_audit in audits:
        audit.join(span_audit)
    return audit


def _worker_start() -> multiprocessing.context.BaseContext:
    """Forked workers where the system has fork: they start with the ledger's modules imported,
    where a spawned one spends about a second importing them."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _audit_span_in_worker(url: str, snapshot: str, span: store.JournalSpan, seals: tuple[Seal, ...],
                          previous: bytes | None) -> domain.Audit:
    return asyncio.run(_audit_span(url, snapshot, span, seals, previous))


async def _audit_span(url: str, snapshot: str, span: store.JournalSpan, seals: tuple[Seal, ...],
                      previous: bytes | None) -> domain.Audit:
    """One span's audit, read in ``snapshot`` through a connection of its own, its first link
    checked against ``previous`` (None: the predecessor's hash the first row stores)."""
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.transaction() as conn:
            await store.adopt_snapshot(conn, snapshot)
            if previous is None:
                previous = await store.span_prev_hash(conn, span)
            audit = domain.Audit(seals, start=span.start, previous=previous)
            await _feed(conn, audit, span)
    finally:
        await db.dispose()
    return audit


async def _feed(conn: AsyncConnection, audit: domain.Audit, span: store.JournalSpan) -> None:
    feed = audit.feed
    with _collector_paused():
        async for chunk in store.raw_journal_chunks(conn, span=span):
            for record in chunk:
                feed(record)


@dataclass(frozen=True)
class RebuildReport:
    entries: int
    accounts: int
    """Balances replayed: one per account and currency."""
    mismatches: list[domain.BalanceMismatch]
    settings_mismatches: list[domain.SettingsMismatch]
    repaired: bool
    refused: list[Finding]
    """Repair asked for, and refused: what is wrong with the journal itself."""
    trusted: list[Finding]
    """Repair done although the journal has these findings, because the operator trusted it."""
    seals_checked: int = 0
    """Seals the repair's audit checked the journal against."""

    @property
    def drifted(self) -> bool:
        return bool(self.mismatches or self.settings_mismatches)


async def rebuild(ctx: LedgerContext, *, repair: bool = False, seals: Iterable[Seal] = (), trust_journal: bool = False,
                  operator: str | None = None, progress: Progress = _quiet) -> RebuildReport:
    """Replay the whole journal into balances and settings and report every projection that
    differs: the drift :func:`verify` reports.

    ``repair``: also overwrite those projections, with writers held off, after an audit of the
    journal against ``seals``; refused (nothing written, ``refused`` says why) while the journal
    has any finding of its own, a seal it does not reproduce included, unless ``trust_journal``
    (then logged as ``operator``'s act)."""
    if not repair:
        return await _check(ctx, progress)
    async with ctx.db.transaction() as conn:
        await store.lock_out_writers(conn)
        audit = await _audit(conn, seals, progress)
        report = RebuildReport(audit.entries, len(audit.replayed), audit.mismatches, audit.settings_mismatches,
                               False, [], [], audit.seals_checked)
        damage = audit.journal_findings
        if damage and not trust_journal:
            return replace(report, refused=damage)
        if damage:
            log.warning("operator repairs the projections from a journal that fails verification",
                        operator=operator or "unknown", findings=len(damage),
                        kinds=sorted({f.kind.value for f in damage}))
        if report.drifted:
            await store.overwrite_projections(conn, audit.replayed, audit.settings, audit.opened_at)
    _log_drift(report, repaired=True)
    return replace(report, repaired=report.drifted, trusted=damage)


async def _check(ctx: LedgerContext, progress: Progress) -> RebuildReport:
    async with ctx.db.transaction() as conn:
        await store.consistent_snapshot(conn)
        replayed, done = await store.posted_balances(conn)
        progress(done, done)
        stored_balances, stored_settings = await store.stored_projections(conn)
        mismatches = domain.find_mismatches(stored_balances, replayed)
        settings = domain.find_settings_mismatches(
            stored_settings, domain.settings_of_facts(await store.journaled_settings(conn)))
    report = RebuildReport(done, len(replayed), mismatches, settings, False, [], [])
    _log_drift(report, repaired=False)
    return report


def _log_drift(report: RebuildReport, *, repaired: bool) -> None:
    for mismatch in report.mismatches:
        log.warning("projection differs from the journal", account=mismatch.account, currency=mismatch.currency,
                    stored=mismatch.stored, replayed=mismatch.replayed, repaired=repaired)
    for differs in report.settings_mismatches:
        log.warning("account settings differ from the journal", account=differs.account,
                    stored=domain.describe_settings(differs.stored),
                    journaled=domain.describe_settings(differs.journaled), repaired=repaired)


# --- seals ----------------------------------------------------------------------------------


async def seal(ctx: LedgerContext) -> Envelope[JournalSealed] | None:
    """Stage the current chain head as ``JournalSealed`` (None while the journal is empty)."""

    async def work(conn: AsyncConnection) -> Envelope[JournalSealed] | None:
        head = (await conn.execute(
            select(store.chain_head.c.length, store.chain_head.c.hash)
            .where(store.chain_head.c.id == 1).with_for_update(read=True)  # no append until we read the last id
        )).first()
        if head is None:
            return None
        last = await conn.scalar(select(store.journal.c.txn_id).order_by(store.journal.c.seq.desc()).limit(1))
        payload = JournalSealed(length=head.length, hash=head.hash.hex(), last_transaction_id=last,
                                sealed_at=ctx.clock.now())
        envelope = Envelope.new(payload, account=JOURNAL_KEY, producer="ledger", clock=ctx.clock)
        await event_log.append(conn, [envelope], topics=ctx.topics, clock=ctx.clock)
        return envelope

    async with ctx.db.transaction() as conn:
        sealed = await work(conn)
    ctx.wake_relay()
    return sealed


async def _length(ctx: LedgerContext) -> int:
    async with ctx.db.connect() as conn:
        return await conn.scalar(select(store.chain_head.c.length).where(store.chain_head.c.id == 1)) or 0


async def keep_sealing(ctx: LedgerContext, *, every_seconds: float, every_transactions: int) -> None:
    """Seal the chain head whenever ``every_transactions`` more were appended, and at least every
    ``every_seconds`` while the journal grows; once more when the service stops. Counted from an
    empty journal, so the first seal comes after ``every_transactions``, not one earlier."""
    tick, waited, sealed = min(1.0, every_seconds), 0.0, 0
    try:
        while True:
            await asyncio.sleep(tick)
            waited += tick
            length = await _length(ctx)
            if length != sealed and (waited >= every_seconds or length - sealed >= every_transactions):
                sealed, waited = await _seal_length(ctx), 0.0
    except asyncio.CancelledError:
        if await _length(ctx) != sealed:
            await _seal_length(ctx)
        raise


async def _seal_length(ctx: LedgerContext) -> int:
    envelope: Any = await seal(ctx)
    return envelope.payload.length if envelope else 0
