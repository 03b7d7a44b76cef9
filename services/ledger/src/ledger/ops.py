"""The ledger's operations on its own journal: verify, rebuild (and repair), replay, statement
and receipt, each printing its report as JSON on stdout. The `billing` command line runs them
(`billing verify` is `python -m ledger ops verify` drawn for people); an operator may too.

They read the ledger's own database, found as the ledger finds it: BILLING_LEDGER_DATABASE_URL,
else BILLING_DATA_DIR/ledger/ledger.db. An error is one line ``error: ...`` on stderr. Exit
codes: 0 done, 1 the report found a problem (verify, rebuild, replay), 2 a wrong argument,
3 nothing by that number or id, 5 the database not reachable, 70 a bug (BILLING_DEBUG=1 prints
its trace). ``--progress`` writes ``progress DONE TOTAL`` lines on stderr during the long reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from billing_events.db import Database
from billing_events.errors import DomainError, ErrorKind
from billing_events.exits import CommandLineError, Exit, fail
from billing_events.logging import configure_logging
from billing_events.topics import TopicNames

from ledger import domain, integrity, service, store
from ledger.context import LedgerContext
from ledger.settings import LedgerSettings

PROG = "python -m ledger ops"
SEAL_ARGUMENT = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")
Report = dict[str, Any]


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
        yield LedgerContext(db=db, clock=settings.clock(), topics=TopicNames(settings.kafka.topic_prefix))
    finally:
        await db.dispose()


def _safe(url: str) -> str:
    """The URL without a password."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}@{host}" if at else url


def _progress(shown: bool) -> integrity.Progress:
    def report(done: int, total: int) -> None:
        if shown:
            print(f"progress {done} {total}", file=sys.stderr, flush=True)
    return report


# --- the reports ---------------------------------------------------------------------------


def parse_seal(value: str) -> domain.Seal:
    """``LENGTH:HASHHEX``, as a verification report prints its chain head."""
    match = SEAL_ARGUMENT.match(value.strip())
    if match is None or int(match.group(1)) < 1:
        fail(f"{value!r} is not a seal: give LENGTH:HASH, e.g. 1200:{'ab' * 32}", Exit.USAGE)
    return domain.Seal(int(match.group(1)), bytes.fromhex(match.group(2)), "the seal given on the command line")


def _published_seals(text: str) -> list[domain.Seal]:
    """Seals as JSON (``[{"length", "hash", "source", "last_transaction_id"}]``): those the
    ledger published on its seal topic, as a reader of the topic found them."""
    try:
        return [domain.Seal(int(item["length"]), bytes.fromhex(item["hash"]), str(item["source"]),
                            UUID(item["last_transaction_id"]) if item.get("last_transaction_id") else None)
                for item in json.loads(text)]
    except (ValueError, TypeError, KeyError) as exc:
        fail(f"the seals given are not a JSON list of seals: {exc}", Exit.USAGE)


def _drift(mismatches: Sequence[domain.BalanceMismatch]) -> list[Report]:
    return [{"account": m.account, "currency": m.currency, "stored": m.stored, "replayed": m.replayed}
            for m in mismatches]


def _settings_drift(mismatches: Sequence[domain.SettingsMismatch]) -> list[Report]:
    return [{"account": m.account, "stored": _settings(m.stored), "journal": _settings(m.journaled),
             "detail": f"stored {domain.describe_settings(m.stored)}, the journal says"
                       f" {domain.describe_settings(m.journaled)}"} for m in mismatches]


def _settings(settings: domain.AccountSettings | None) -> Report | None:
    return None if settings is None else {
        "currency": settings.currency, "payment_type": settings.payment_type.value,
        "credit_limit": settings.credit_limit, "is_open": settings.is_open}


def _finding(finding: domain.Finding) -> Report:
    return {"kind": finding.kind.value, "transaction_id": finding.transaction_id, "position": finding.position,
            "seq": finding.seq, "accounts": list(finding.accounts), "detail": finding.detail}


async def verify(seals: Sequence[domain.Seal], progress: integrity.Progress) -> tuple[Report, bool]:
    async with ledger_context() as ctx:
        report = await integrity.verify(ctx, seals, progress=progress)
    link, head = report.broken_link, report.head
    return {
        "ok": report.ok, "transactions": report.transactions, "account_facts": report.facts,
        "entries": report.entries, "totals": report.totals,
        "chain_head": None if head is None else {"length": head.length, "hash": head.hash.hex()},
        "seals": {"given": len(seals), "checked": report.seals_checked},
        "findings": [_finding(f) for f in report.findings],
        "unbalanced_transactions": [str(t) for t in report.unbalanced],
        "first_broken_link": None if link is None else {"position": link.position,
                                                       "transaction_id": str(link.transaction_id)},
        "projection_drift": _drift(report.mismatches),
        "settings_drift": _settings_drift(report.settings_mismatches),
    }, report.ok


async def rebuild(*, repair: bool, seals: Sequence[domain.Seal], trust_journal: bool, operator: str | None,
                  progress: integrity.Progress) -> tuple[Report, bool]:
    if trust_journal and not repair:
        fail("--trust-journal only applies to --repair", Exit.USAGE)
    if seals and not repair:
        fail("seals only apply to --repair (`verify` checks them)", Exit.USAGE)
    async with ledger_context() as ctx:
        report = await integrity.rebuild(ctx, repair=repair, seals=seals, trust_journal=trust_journal,
                                         operator=operator, progress=progress)
    return {"entries": report.entries, "accounts": report.accounts, "drift": _drift(report.mismatches),
            "settings_drift": _settings_drift(report.settings_mismatches), "repaired": report.repaired,
            "seals": {"given": len(seals), "checked": report.seals_checked},
            "repair_refused_because": [_finding(f) for f in report.refused],
            "journal_trusted_despite": [_finding(f) for f in report.trusted]}, \
        not report.refused and not (report.drifted and not report.repaired)


async def _answer(ask: Callable[[LedgerContext], Any]) -> Any:
    async with ledger_context() as ctx:
        try:
            return await ask(ctx)
        except DomainError as exc:
            fail(exc.message, Exit.NOT_FOUND if exc.kind is ErrorKind.NOT_FOUND else Exit.REFUSED)


async def replay(number: str, as_of: datetime | None) -> tuple[Report, bool]:
    result = await _answer(lambda ctx: service.replay_account(ctx, number, as_of))
    return {"account": number, "as_of": as_of, "main": result.replayed_main, "bonus": result.replayed_bonus,
            "stored_main": result.stored.main, "stored_bonus": result.stored.bonus,
            "matches": result.matches if as_of is None else None,
            "steps": [{"transaction_id": s.entry.transaction_id, "kind": s.entry.kind.value,
                       "account": s.entry.account, "amount": s.entry.amount, "before": s.before,
                       "after": s.after, "occurred_at": s.entry.occurred_at} for s in result.steps]}, \
        as_of is not None or result.matches


async def statement(number: str, period_start: datetime, period_end: datetime) -> tuple[Report, bool]:
    result = await _answer(lambda ctx: service.statement(ctx, number, period_start, period_end))
    currency = result.currency
    lines = [line.row(currency) for line in result.lines]
    return {"account": number, "from": period_start, "to": period_end, "opening": result.opening_balance,
            "closing": result.closing_balance, "total_in": result.total_in, "total_out": result.total_out,
            "currency": currency, "lines": lines}, True


async def receipt(transaction_id: UUID) -> tuple[Report, bool]:
    result = await _answer(lambda ctx: service.receipt(ctx, transaction_id))
    return result.as_dict(), True


# --- the command line ----------------------------------------------------------------------


def _account(value: str) -> str:
    if not domain.is_account_number(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a 12-digit account number")
    return value


def _moment(value: str) -> datetime:
    """ISO 8601; without a zone it is UTC (a date alone: its midnight UTC), as for `billing`."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date or time (ISO 8601)") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="the journal's integrity: double entry, hash chain, chain head, "
                                               "seals, projections (exit 1: a finding)")
    rebuilding = commands.add_parser("rebuild", help="replay every balance and account setting and report the "
                                                     "projections that differ (exit 1: some do, unless repaired)")
    rebuilding.add_argument("--repair", action="store_true",
                            help="overwrite the projections that differ; refused while the journal fails "
                                 "verification, against the seals given included")
    rebuilding.add_argument("--trust-journal", action="store_true",
                            help="with --repair: repair even though the journal fails verification")
    rebuilding.add_argument("--operator", help="who repairs from a journal that fails verification (logged)")
    for command in (check, rebuilding):
        command.add_argument("--seal", action="append", default=[], metavar="LENGTH:HASH",
                             help="a chain head written down earlier (hex hash); repeatable")
        command.add_argument("--seals-file", metavar="FILE", help="more seals as JSON [{length, hash, source, "
                             "last_transaction_id}], e.g. those read from the seal topic; - reads stdin")
        command.add_argument("--progress", action="store_true", help="progress DONE TOTAL lines on stderr")
    replaying = commands.add_parser("replay", help="one account's balance rebuilt from the journal, step by step "
                                                   "(exit 1: it differs from the stored projection)")
    replaying.add_argument("account", type=_account)
    replaying.add_argument("--as-of", type=_moment, help="balance as of this ISO 8601 moment")
    listing = commands.add_parser("statement", help="an account's entries over a period, with a running balance")
    listing.add_argument("account", type=_account)
    listing.add_argument("--from", dest="start", type=_moment, required=True, help="first moment (ISO 8601)")
    listing.add_argument("--to", dest="end", type=_moment, required=True, help="end moment, exclusive")
    receipting = commands.add_parser("receipt", help="the receipt of one credited payment")
    receipting.add_argument("transaction_id", type=UUID)
    return parser


def _seals(arguments: argparse.Namespace) -> list[domain.Seal]:
    """The seals given as ``--seal`` and in ``--seals-file``."""
    seals = [parse_seal(value) for value in arguments.seal]
    if arguments.seals_file == "-":
        seals += _published_seals(sys.stdin.read())
    elif arguments.seals_file is not None:
        try:
            text = Path(arguments.seals_file).read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {arguments.seals_file}: {exc.strerror}", Exit.USAGE)
        seals += _published_seals(text)
    return seals


async def _run(arguments: argparse.Namespace) -> tuple[Report, bool]:
    match arguments.command:
        case "verify":
            return await verify(_seals(arguments), _progress(arguments.progress))
        case "rebuild":
            return await rebuild(repair=arguments.repair, seals=_seals(arguments),
                                 trust_journal=arguments.trust_journal, operator=arguments.operator,
                                 progress=_progress(arguments.progress))
        case "replay":
            return await replay(arguments.account, arguments.as_of)
        case "statement":
            return await statement(arguments.account, arguments.start, arguments.end)
        case _:
            return await receipt(arguments.transaction_id)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    # Log lines (a repair from a journal trusted by its operator) go to stderr: stdout stays JSON.
    configure_logging("ledger", level="WARNING")
    try:
        report, clean = asyncio.run(_run(arguments))
    except CommandLineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        if os.environ.get("BILLING_DEBUG"):
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (BILLING_DEBUG=1 shows the trace)", file=sys.stderr)
        return Exit.INTERNAL
    sys.stdout.write(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    return Exit.OK if clean else Exit.CHECK_FAILED
