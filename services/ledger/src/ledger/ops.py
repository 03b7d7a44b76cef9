"""The ledger's operations on its own journal, as a library: verify, rebuild (and repair), replay,
statement and receipt, each a function of a :class:`LedgerContext` returning a typed report. The
`billing` command line calls them in its own process and draws the reports (tables for people,
``as_json()`` for ``--json``); `billing verify` is :func:`verify` drawn.

:func:`ledger_context` opens the ledger's own database, found as the ledger finds it:
BILLING_LEDGER_DATABASE_URL, else BILLING_DATA_DIR/ledger/ledger.db. A failure a person can act
on is a :class:`~billing_events.exits.CommandLineError` with its exit code: 2 a wrong argument,
3 nothing by that number or id, 4 refused, 5 the database not reachable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from billing_events.db import Database
from billing_events.errors import DomainError, ErrorKind
from billing_events.exits import Exit, fail
from billing_contracts.topics import TopicNames

from ledger import domain, integrity, service, store
from ledger.context import LedgerContext
from ledger.domain import FindingKind, Seal
from ledger.settings import LedgerSettings

__all__ = ["LedgerContext", "ProjectionReport", "Progress", "ReceiptReport", "ReplayReport", "Seal", "SealsChecked",
           "StatementReport", "VerificationReport", "describe_settings_drift", "ledger_context", "parse_seal",
           "rebuild", "receipt", "repair", "replay", "statement", "verify"]

SEAL_ARGUMENT = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")
Progress = integrity.Progress
Report = dict[str, Any]
T = TypeVar("T")

DOUBLE_ENTRY_FINDINGS = frozenset({FindingKind.UNBALANCED, FindingKind.TOO_FEW_POSTINGS})
CHAIN_HEAD_FINDINGS = frozenset({FindingKind.JOURNAL_SHORTER_THAN_HEAD, FindingKind.JOURNAL_LONGER_THAN_HEAD,
                                 FindingKind.HEAD_HASH_DIFFERS})


@asynccontextmanager
async def ledger_context() -> AsyncIterator[LedgerContext]:
    """The service layer's context over the ledger's database, which must answer first."""
    settings = LedgerSettings()
    url = settings.resolved_database_url()
    db = Database(url)
    try:
        try:
            async with db.connect() as conn:
                await conn.execute(select(func.count()).select_from(store.journal))
        except (OperationalError, DBAPIError, OSError) as exc:
            fail(f"cannot reach the ledger database ({_safe(url)}): {type(exc).__name__}", Exit.UNREACHABLE)
        yield LedgerContext(db=db, clock=settings.clock(), topics=TopicNames(settings.kafka.topic_prefix),
                            verify_workers=settings.verify_workers)
    finally:
        await db.dispose()


def _safe(url: str) -> str:
    """The URL without a password."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}@{host}" if at else url


def parse_seal(value: str) -> Seal:
    """``LENGTH:HASHHEX``, as a verification report prints its chain head."""
    match = SEAL_ARGUMENT.match(value.strip())
    if match is None or int(match.group(1)) < 1:
        fail(f"{value!r} is not a seal: give LENGTH:HASH, e.g. 1200:{'ab' * 32}", Exit.USAGE)
    return Seal(int(match.group(1)), bytes.fromhex(match.group(2)), "the seal given on the command line")


# --- the reports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SealsChecked:
    given: int
    """Written down by an auditor and given on the command line."""
    from_broker: int | None
    """Read from the ledger's seal topic; None: not asked for."""
    checked: int

    def as_json(self) -> Report:
        return {"from_broker": self.from_broker, "given": self.given, "checked": self.checked}


def _checked_against(given: Sequence[Seal], published: Sequence[Seal] | None, checked: int) -> SealsChecked:
    return SealsChecked(len(given), None if published is None else len(published), checked)


@dataclass(frozen=True)
class VerificationReport:
    """The journal's integrity: every check of :func:`ledger.integrity.verify`, and the seals."""

    audit: domain.AuditReport
    seals: SealsChecked

    @property
    def ok(self) -> bool:
        return self.audit.ok

    @property
    def _kinds(self) -> set[FindingKind]:
        return {finding.kind for finding in self.audit.findings}

    @property
    def double_entry_ok(self) -> bool:
        return not self._kinds & DOUBLE_ENTRY_FINDINGS and not any(self.audit.totals.values())

    @property
    def chain_head_ok(self) -> bool:
        return not self._kinds & CHAIN_HEAD_FINDINGS

    @property
    def seals_ok(self) -> bool:
        return FindingKind.SEAL_NOT_REPRODUCED not in self._kinds

    @property
    def projections_ok(self) -> bool:
        return not self.audit.mismatches and not self.audit.settings_mismatches

    def as_json(self) -> Report:
        audit, link, head = self.audit, self.audit.broken_link, self.audit.head
        return {
            "ok": audit.ok, "transactions": audit.transactions, "account_facts": audit.facts,
            "entries": audit.entries, "totals": audit.totals,
            "chain_head": None if head is None else {"length": head.length, "hash": head.hash.hex()},
            "seals": self.seals.as_json(),
            "findings": [_finding(f) for f in audit.findings],
            "unbalanced_transactions": [str(t) for t in audit.unbalanced],
            "first_broken_link": None if link is None else {"position": link.position,
                                                           "transaction_id": str(link.transaction_id)},
            "projection_drift": _drift(audit.mismatches),
            "settings_drift": _settings_drift(audit.settings_mismatches),
        }


@dataclass(frozen=True)
class ProjectionReport:
    """Every projection replayed from the journal: the drift, and what a repair did about it."""

    result: integrity.RebuildReport
    seals: SealsChecked | None
    """None: a rebuild without repair, which audits nothing against seals."""

    @property
    def clean(self) -> bool:
        """Nothing refused, and nothing drifted that is not repaired now."""
        return not self.result.refused and not (self.result.drifted and not self.result.repaired)

    def as_json(self) -> Report:
        result = self.result
        return {"entries": result.entries, "accounts": result.accounts, "drift": _drift(result.mismatches),
                "settings_drift": _settings_drift(result.settings_mismatches), "repaired": result.repaired,
                "seals": {"given": 0, "checked": 0} if self.seals is None else self.seals.as_json(),
                "repair_refused_because": [_finding(f) for f in result.refused],
                "journal_trusted_despite": [_finding(f) for f in result.trusted]}


@dataclass(frozen=True)
class ReplayReport:
    """One account rebuilt from the journal step by step, as of a moment or now."""

    account: str
    as_of: datetime | None
    result: service.AccountReplay

    @property
    def matches(self) -> bool | None:
        """Whether the replay equals the stored projection; None for a replay as of a moment."""
        return self.result.matches if self.as_of is None else None

    def as_json(self) -> Report:
        result = self.result
        return {"account": self.account, "as_of": self.as_of, "main": result.replayed_main,
                "bonus": result.replayed_bonus, "stored_main": result.stored.main, "stored_bonus": result.stored.bonus,
                "matches": self.matches,
                "steps": [{"transaction_id": s.entry.transaction_id, "kind": s.entry.kind.value,
                           "account": s.entry.account, "amount": s.entry.amount, "before": s.before,
                           "after": s.after, "occurred_at": s.entry.occurred_at} for s in result.steps]}


@dataclass(frozen=True)
class StatementReport:
    """An account's entries over a period, with a running balance (:class:`domain.Statement`)."""

    result: domain.Statement

    @property
    def rows(self) -> list[Report]:
        """The lines as the CSV and the tables show them (columns ``domain.STATEMENT_COLUMNS``)."""
        return [line.row(self.result.currency) for line in self.result.lines]

    def as_json(self) -> Report:
        result = self.result
        return {"account": result.account, "from": result.period_start, "to": result.period_end,
                "opening": result.opening_balance, "closing": result.closing_balance, "total_in": result.total_in,
                "total_out": result.total_out, "currency": result.currency, "lines": self.rows}


@dataclass(frozen=True)
class ReceiptReport:
    """The receipt of one credited payment (:class:`domain.Receipt`)."""

    result: domain.Receipt

    def as_json(self) -> Report:
        return self.result.as_dict()


def _drift(mismatches: Sequence[domain.BalanceMismatch]) -> list[Report]:
    return [{"account": m.account, "currency": m.currency, "stored": m.stored, "replayed": m.replayed}
            for m in mismatches]


def _settings_drift(mismatches: Sequence[domain.SettingsMismatch]) -> list[Report]:
    return [{"account": m.account, "stored": _settings(m.stored), "journal": _settings(m.journaled),
             "detail": describe_settings_drift(m)} for m in mismatches]


def describe_settings_drift(mismatch: domain.SettingsMismatch) -> str:
    """How an account's stored settings differ from those its facts in the journal leave."""
    return (f"stored {domain.describe_settings(mismatch.stored)}, the journal says"
            f" {domain.describe_settings(mismatch.journaled)}")


def _settings(settings: domain.AccountSettings | None) -> Report | None:
    return None if settings is None else {
        "currency": settings.currency, "payment_type": settings.payment_type.value,
        "credit_limit": settings.credit_limit, "is_open": settings.is_open}


def _finding(finding: domain.Finding) -> Report:
    return {"kind": finding.kind.value, "transaction_id": finding.transaction_id, "position": finding.position,
            "seq": finding.seq, "accounts": list(finding.accounts), "detail": finding.detail}


# --- the operations --------------------------------------------------------------------------


def _watched(progress: Progress | None) -> dict[str, Progress]:
    """The progress keyword of an integrity pass: none unless someone watches (counting the
    postings for a progress display is a scan of its own)."""
    return {} if progress is None else {"progress": progress}


async def verify(ctx: LedgerContext, given: Sequence[Seal] = (), published: Sequence[Seal] | None = None,
                 progress: Progress | None = None) -> VerificationReport:
    """The journal's integrity in one report, against the seals ``given`` by an auditor and
    those ``published`` on the seal topic (None: not read from it)."""
    audit = await integrity.verify(ctx, [*given, *(published or ())], **_watched(progress))
    return VerificationReport(audit, _checked_against(given, published, audit.seals_checked))


async def rebuild(ctx: LedgerContext, progress: Progress | None = None) -> ProjectionReport:
    """Every balance and account setting replayed from the journal, the projections that differ
    reported (nothing written)."""
    return ProjectionReport(await integrity.rebuild(ctx, **_watched(progress)), None)


async def repair(ctx: LedgerContext, given: Sequence[Seal] = (), published: Sequence[Seal] | None = None, *,
                 trust_journal: bool = False, operator: str | None = None,
                 progress: Progress | None = None) -> ProjectionReport:
    """:func:`rebuild`, overwriting the projections that differ; refused while the journal fails
    verification (against the seals too) unless ``trust_journal`` (logged as ``operator``'s act)."""
    result = await integrity.rebuild(ctx, repair=True, seals=[*given, *(published or ())],
                                     trust_journal=trust_journal, operator=operator, **_watched(progress))
    return ProjectionReport(result, _checked_against(given, published, result.seals_checked))


async def _answer(ask: Awaitable[T]) -> T:
    """The service layer's answer; its refusal becomes the command line's."""
    try:
        return await ask
    except DomainError as exc:
        fail(exc.message, Exit.NOT_FOUND if exc.kind is ErrorKind.NOT_FOUND else Exit.REFUSED)


async def replay(ctx: LedgerContext, number: str, as_of: datetime | None = None) -> ReplayReport:
    return ReplayReport(number, as_of, await _answer(service.replay_account(ctx, number, as_of)))


async def statement(ctx: LedgerContext, number: str, period_start: datetime, period_end: datetime) -> StatementReport:
    return StatementReport(await _answer(service.statement(ctx, number, period_start, period_end)))


async def receipt(ctx: LedgerContext, transaction_id: UUID) -> ReceiptReport:
    return ReceiptReport(await _answer(service.receipt(ctx, transaction_id)))


Operation = Callable[[LedgerContext], Awaitable[T]]
