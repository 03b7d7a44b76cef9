"""The ``billing`` command line: one entry point for operations.

Reads answer in tables (``--json`` for scripts); errors are one line with a meaningful exit code
(see :class:`billing_cli.output.Exit`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.table import Table

from billing_cli import actions, catalog, chart, clock, history
from billing_cli.actions import account_number, moment
from billing_cli.config import CliSettings
from billing_cli.launcher import SERVICES, run_suite
from billing_cli.ledger_ops import on_journal, on_whole_journal, published_seals
from billing_cli.output import Exit, console, emit_json, fail, money, reported
from billing_events.logging import configure_logging
from ledger import ops

T = TypeVar("T")
app = typer.Typer(help="Operations tools of the billing suite.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
app.add_typer(actions.app, name="do", help="Act as the channels and the cabinet would: pay, register, block...")
events_app = typer.Typer(help="Watch what flows through the broker.", no_args_is_help=True)
operator_app = typer.Typer(help="Operators' own keys.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: what the services refused, why, and sending it back.", no_args_is_help=True)
app.command("catalog")(catalog.catalog)
app.add_typer(clock.app, name="clock")
app.add_typer(clock.tariff_app, name="tariff")
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
app.add_typer(operator_app, name="operator")

AccountArg = Annotated[str, typer.Argument(help="12-digit personal account number")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with reported():
        return asyncio.run(coroutine)


@app.callback()
def _root() -> None:
    """Operations tools of the billing suite."""
    # Log lines go to stderr, so --json output on stdout stays machine-readable.
    configure_logging("cli", level="WARNING")
    # A broker that does not answer is reported once, as an error line and exit 5 (see `reported`).
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Folder for the services' SQLite files and logs")] = Path("var"),
    service: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable)")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Use this Kafka broker instead of starting the embedded one")
    ] = None,
    cabinet: Annotated[bool, typer.Option(
        help="Serve the subscriber's web cabinet beside the four services (port BILLING_CABINET_PORT, 8090)")] = True,
) -> None:
    """Start the embedded broker, the four services and the subscriber's web cabinet; Ctrl-C stops
    them (services first)."""
    chosen = service or list(SERVICES)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    raise typer.Exit(run_suite(data_dir, chosen, bootstrap_servers, cabinet=cabinet))


@app.command()
def migrate(
    service: Annotated[list[str] | None, typer.Option(help="Only these services (repeatable)")] = None,
    downgrade: Annotated[str | None, typer.Option(
        help="Undo steps instead, down to this revision (-1: the last step), where the steps can be undone")] = None,
) -> None:
    """Upgrade each service's database to this version's schema: production runs it once before the
    services start (`billing up` and the services of the embedded suite do it at start). A service's
    database is BILLING_<SERVICE>_DATABASE_URL, or its SQLite file under BILLING_DATA_DIR (var)."""
    from billing_events import migrations

    chosen = service or list(SERVICES)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")

    async def go(name: str) -> migrations.Migrated:
        db = migrations.database_of(name)
        try:
            if downgrade is None:
                return await migrations.upgrade(db, name)
            return await migrations.downgrade(db, name, downgrade)
        finally:
            await db.dispose()

    for name in chosen:
        done = run(go(name))
        change = "already at" if done.before == done.after else f"{done.before or 'empty'} ->"
        console.print(f"{name}: {change} {done.after or 'empty'} (head {migrations.head(name)})")


@app.command("history")
def history_command(
    account: AccountArg,
    as_json: JsonOpt = False,
    chart_: Annotated[bool, typer.Option("--chart", help="Draw the main and bonus balance over time, "
                                                            "blocks and payments marked")] = False,
    svg: Annotated[Path | None, typer.Option("--svg", help="Write that picture to this SVG file")] = None,
) -> None:
    """The whole life of one account, merged from every service's events, with the balance."""
    number = account_number(account)
    settings = CliSettings()

    async def read() -> list[history.HistoryLine]:
        found = await history.read_account({name: settings.url(name) for name in SERVICES},
                                           settings.operator_token(*SERVICES), number)
        return history.timeline(found)

    lines = run(read())
    if not lines:
        fail(f"no events for account {number}", Exit.NOT_FOUND)
    if chart_ or svg is not None:
        drawn = chart.picture(lines)
        if not drawn.points:
            fail(f"account {number} has no balance changes to draw", Exit.NOT_FOUND)
        if svg is not None:
            with reported():
                svg.write_text(chart.svg(drawn, f"Account {number}: balance over time"))
            console.print(f"written to {svg}")
        if chart_:
            console.print(f"Account {number}: balance over time", markup=False)
            console.print("\n".join(chart.terminal(drawn)), markup=False)
        return
    if as_json:
        emit_json([{**line.envelope.model_dump(mode="json"), "balance_after": line.balance} for line in lines])
        return
    table = Table(title=f"History of {number}")
    for column in ("when (UTC)", "service", "event", "details", "balance"):
        table.add_column(column, justify="right" if column == "balance" else "left")
    for line in lines:
        e = line.envelope
        table.add_row(e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), e.producer, e.event_type,
                      history.summary(e, number), money(line.balance) if line.balance is not None else "")
    console.print(table)


@app.command()
def replay(account: AccountArg, as_of: Annotated[str | None, typer.Option(help="Balance as of this moment")] = None,
           as_json: JsonOpt = False) -> None:
    """Rebuild one account's balance from the journal, entry by entry, and compare it with the
    stored projection."""
    number, when = account_number(account), moment(as_of)
    report = run(on_journal(lambda ledger: ops.replay(ledger, number, when)))
    if as_json:
        emit_json(report.as_json())
        return
    result = report.result
    table = Table(title=f"Replay of {number}" + (f" as of {when}" if when else ""))
    for column in ("when", "kind", "balance", "amount", "before", "after"):
        table.add_column(column)
    for step in result.steps:
        entry = step.entry
        table.add_row(f"{entry.occurred_at:%Y-%m-%d %H:%M:%S}", entry.kind.value, entry.account.rsplit(":", 1)[-1],
                      money(entry.amount), money(step.before), money(step.after))
    console.print(table)
    console.print(f"replayed: main {money(result.replayed_main)}, bonus {money(result.replayed_bonus)}")
    if report.matches is True:
        console.print("[green]equals the stored projection[/green]")
    elif report.matches is False:
        console.print(f"[red]differs from the stored projection[/red]: main {money(result.stored.main)},"
                      f" bonus {money(result.stored.bonus)}")
        raise typer.Exit(Exit.CHECK_FAILED)


LEDGER_DATABASE_HELP = (
    "It reads the ledger's own database, found as the ledger finds it: BILLING_LEDGER_DATABASE_URL"
    " (PostgreSQL: postgresql+asyncpg://USER:PASSWORD@HOST:5432/ledger), else the SQLite file"
    " BILLING_DATA_DIR/ledger/ledger.db (BILLING_DATA_DIR defaults to var)."
)


SealOpt = Annotated[list[str] | None, typer.Option(
    "--seal", help="A chain head written down earlier, LENGTH:HASH (hex); repeatable")]
SealsFromBrokerOpt = Annotated[bool | None, typer.Option(
    "--seals-from-broker/--no-seals-from-broker",
    help="Check the seals on the broker's seal topic [default: when a broker is configured]")]


@app.command(help=f"""Replay every balance (per account and currency) and every account's settings
from the journal and report the projections that differ: the drift `billing verify` reports (exit 1
if any). With --repair, overwrite them: writers wait while the journal is audited, replayed and
written in one transaction, and the repair is refused while the journal itself fails verification
(see `billing verify`), against the seals too (read from the broker as verify reads them, and
--seal), unless --trust-journal is given, which is logged as your act (BILLING_OPERATOR names you).
One repair leaves nothing for `billing verify` to report about the projections. {LEDGER_DATABASE_HELP}""")
def rebuild(
    repair: Annotated[bool, typer.Option("--repair", help="Overwrite the projections that differ")] = False,
    trust_journal: Annotated[bool, typer.Option(
        "--trust-journal", help="With --repair: repair even though the journal fails verification")] = False,
    seal: SealOpt = None,
    seals_from_broker: SealsFromBrokerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    if trust_journal and not repair:
        fail("--trust-journal only applies to --repair", Exit.USAGE)
    if (seal or seals_from_broker) and not repair:
        fail("seals only apply to --repair (`billing verify` checks them)", Exit.USAGE)
    operator = CliSettings().operator

    async def replay_projections() -> ops.ProjectionReport:
        if not repair:
            return await on_whole_journal("replaying", as_json, lambda ledger, shown: ops.rebuild(ledger, shown))
        given = [ops.parse_seal(value) for value in seal or []]
        published = await published_seals(seals_from_broker)
        return await on_whole_journal("repairing", as_json, lambda ledger, shown: ops.repair(
            ledger, given, published, trust_journal=trust_journal, operator=operator, progress=shown))

    report = run(replay_projections())
    result = report.result
    if as_json:
        emit_json(report.as_json())
    else:
        repaired = " (repaired)" if result.repaired else ""
        console.print(f"{result.entries:,} entries, {result.accounts:,} balances replayed")
        for item in result.mismatches:
            console.print(f"[red]drift[/red] {item.account} in {item.currency}: stored"
                          f" {money(item.stored, item.currency)}, journal says"
                          f" {money(item.replayed, item.currency)}{repaired}")
        for differs in result.settings_mismatches:
            console.print(f"[red]drift[/red] {differs.account} settings: {ops.describe_settings_drift(differs)}"
                          f"{repaired}")
        if not result.drifted:
            console.print("[green]every projection equals the journal[/green]")
        if result.refused:
            console.print(f"[red]repair refused[/red]: the journal fails verification ({len(result.refused)}"
                          " finding(s), `billing verify` lists them); nothing was changed")
        if result.trusted:
            console.print(f"[yellow]repaired from a journal with {len(result.trusted)} finding(s)[/yellow],"
                          f" trusted by {operator}")
    if not report.clean:
        raise typer.Exit(Exit.CHECK_FAILED)


@app.command(help=f"""The journal's integrity in one report: double entry (every transaction has two
postings or more and sums to zero), the hash chain, the chain head (the journal is neither shorter nor
longer than it says), the seals of the chain head (published by the ledger on the broker, or given
with --seal), and every projection against the replay. Exit 0 clean, 1 any finding; --json prints
the complete report either way. Seals are read from the broker by default when one is configured
(BILLING_KAFKA__BOOTSTRAP_SERVERS, or `billing up`'s suite). {LEDGER_DATABASE_HELP}""")
def verify(seal: SealOpt = None, seals_from_broker: SealsFromBrokerOpt = None, as_json: JsonOpt = False) -> None:
    async def check() -> ops.VerificationReport:
        given = [ops.parse_seal(value) for value in seal or []]
        published = await published_seals(seals_from_broker)
        return await on_whole_journal("verifying", as_json,
                                      lambda ledger, shown: ops.verify(ledger, given, published, shown))

    report = run(check())
    if as_json:
        emit_json(report.as_json())
    else:
        _print_verification(report)
    if not report.ok:
        raise typer.Exit(Exit.CHECK_FAILED)


def _print_verification(report: ops.VerificationReport) -> None:
    """The verification report for people: one line per check, then every finding."""
    audit, seals = report.audit, report.seals
    mark = {True: "[green]ok[/green]", False: "[red]FAILED[/red]"}
    totals = ", ".join(money(total, currency) for currency, total in audit.totals.items()) or "none"
    console.print(f"double entry: {mark[report.double_entry_ok]} (totals {totals},"
                  f" unbalanced transactions: {len(audit.unbalanced)})")
    link = audit.broken_link
    console.print(f"hash chain:   {mark[link is None]} ({audit.transactions:,} transactions,"
                  f" {audit.facts:,} account facts)"
                  + ("" if link is None else f"; first broken link at #{link.position}: {link.transaction_id}"))
    head = audit.head
    console.print(f"chain head:   {mark[report.chain_head_ok]} " + (
        f"(length {head.length}, seal it as {head.length}:{head.hash.hex()})" if head else "(empty)"))
    console.print(f"seals:        {mark[report.seals_ok]} ({seals.checked} checked"
                  + ("" if seals.from_broker is None else f", {seals.from_broker} read from the broker") + ")")
    console.print(f"projections:  {mark[report.projections_ok]} ({len(audit.mismatches)} balances and"
                  f" {len(audit.settings_mismatches)} accounts' settings differ)")
    for finding in audit.findings:
        where = "" if finding.position is None else f" #{finding.position} (seq {finding.seq}) {finding.transaction_id}"
        accounts = f" [{', '.join(finding.accounts)}]" if finding.accounts else ""
        console.print(f"[red]{finding.kind.value}[/red]{where}{accounts}: {finding.detail}", markup=True)


@app.command()
def statement(
    account: AccountArg,
    start: Annotated[str, typer.Option("--from", help="First moment (ISO date/time)")],
    end: Annotated[str, typer.Option("--to", help="End moment, exclusive (ISO date/time)")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Every entry of an account over a period with a running balance, and totals."""
    number, period_start, period_end = account_number(account), moment(start), moment(end)
    if fmt not in ("table", "csv", "json"):
        fail(f"unknown format {fmt!r}: use table, csv or json", Exit.USAGE)

    report = run(on_journal(lambda ledger: ops.statement(ledger, number, period_start, period_end)))
    result, rows = report.result, report.rows
    currency = result.currency
    if fmt == "json":
        emit_json(report.as_json())
    elif fmt == "csv":
        # Amounts in minor units (kopecks) with their currency; the first and last rows make the
        # file reconcile on its own: opening + the amounts = closing.
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["occurred_at", "kind", "billing_day", "charged_for",
                                                    "transaction_id", "amount", "currency", "balance_after"],
                                restval="")
        writer.writeheader()
        writer.writerow({"occurred_at": period_start.isoformat(), "kind": "opening balance", "amount": 0,
                         "currency": currency, "balance_after": result.opening_balance})
        writer.writerows(rows)
        writer.writerow({"occurred_at": period_end.isoformat(), "kind": "total", "currency": currency,
                         "amount": result.total_in - result.total_out, "balance_after": result.closing_balance})
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title=f"Statement of {number}, {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}")
        for column in ("when", "what", "for", "amount", "balance"):
            table.add_column(column, justify="right" if column in ("amount", "balance") else "left")
        for row in rows:
            charged = f"{row['charged_for']}, {row['billing_day']}" if row["charged_for"] else ""
            table.add_row(row["occurred_at"][:19], row["kind"], charged, money(row["amount"], currency),
                          money(row["balance_after"], currency))
        console.print(table)
        console.print(f"opening {money(result.opening_balance, currency)}  in {money(result.total_in, currency)}"
                      f"  out {money(result.total_out, currency)}  closing {money(result.closing_balance, currency)}")


@app.command()
def receipt(transaction_id: Annotated[str, typer.Argument(help="The payment's transaction id")], as_json: JsonOpt = False) -> None:
    """A receipt confirming that one payment was credited (also one operations placed from suspense)."""
    try:
        txn = UUID(transaction_id)
    except ValueError:
        fail(f"{transaction_id!r} is not a transaction id", Exit.USAGE)

    report = run(on_journal(lambda ledger: ops.receipt(ledger, txn)))
    if as_json:
        emit_json(report.as_json())
        return
    paid = report.result
    currency = paid.currency
    console.print(f"[bold]Payment receipt[/bold] {paid.transaction_id}")
    console.print(f"account {paid.account_number}; {money(paid.amount, currency)} via"
                  f" {paid.channel.value} (ref {paid.reference}) credited {paid.credited_at:%Y-%m-%d %H:%M:%S} UTC",
                  markup=False)
    if paid.placed_from is not None:
        console.print(f"placed from suspense: the payer typed {paid.placed_from}", markup=False)
    console.print(f"balance after: {money(paid.balance_after, currency)};"
                  f" bonus: {money(paid.bonus_accrued, currency)}")


@app.command()
def token(
    service_name: Annotated[str | None, typer.Option("--service", help="A platform service's token, for this caller")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="What the service token may do (repeat), e.g."
                                                           " identity:register; its audience follows")] = None,
    account: Annotated[str | None, typer.Option("--account", help="A subscriber token for this account")] = None,
    minutes: Annotated[int, typer.Option(help="Lifetime in minutes (1 to 1440)")] = 15,
) -> None:
    """Mint a token with identity's private key: a platform service's scoped token.

    Where identity's key is kept (or a subscriber's token, for tests). Operators never need it:
    their commands sign with their own key (`billing operator keygen`)."""
    from datetime import timedelta

    from billing_events.auth import MAX_TOKEN_LIFETIME, SCOPES

    if (service_name is None) == (account is None):
        fail("give exactly one of --service NAME or --account NUMBER", Exit.USAGE)
    if (service_name is None) != (not scope):
        fail("a service token needs at least one --scope (see docs/security.md); a subscriber token takes none",
             Exit.USAGE)
    if not timedelta(0) < timedelta(minutes=minutes) <= MAX_TOKEN_LIFETIME:
        fail(f"--minutes must be from 1 to {MAX_TOKEN_LIFETIME // timedelta(minutes=1)}", Exit.USAGE)
    scopes = scope or []
    if unknown := sorted(set(scopes) - set(SCOPES)):
        fail(f"unknown scope {', '.join(unknown)}: one of {', '.join(SCOPES)}", Exit.USAGE)
    with reported():
        try:
            issued, _ = CliSettings().tokens().issue(
                "service" if service_name else "subscriber", service_name or account_number(account or ""),
                timedelta(minutes=minutes), audience={name.partition(":")[0] for name in scopes}, scopes=scopes)
        except ValueError as exc:
            fail(str(exc), Exit.USAGE)
    sys.stdout.write(issued + "\n")


@operator_app.command("keygen")
def operator_keygen(
    name: Annotated[str, typer.Option(help="The operator's name, as BILLING_OPERATOR will say it")],
    key_file: Annotated[Path, typer.Option(help="Where to write the private key (mode 600; never shared)")],
) -> None:
    """Make an operator's own key pair and print its entry for the services' key ring.

    The private key goes to --key-file (point BILLING_OPERATOR_KEY_FILE at it); the line printed,
    <name>=<public key>, is added to BILLING_OPERATOR_KEYS of every service."""
    from billing_events.keys import generate_token_keypair, is_operator_name

    if not is_operator_name(name):
        fail("an operator's name is letters, digits, . _ - (at most 48)", Exit.USAGE)
    if key_file.exists():
        fail(f"{key_file} exists: an operator key is never overwritten", Exit.USAGE)
    public, private = generate_token_keypair()
    key_file.touch(mode=0o600)
    key_file.write_text(private + "\n")
    sys.stdout.write(f"{name}={public}\n")


@app.command()
def revoke(
    reason: Annotated[str, typer.Option(help="Why (kept in identity's list and its event)")],
    jti: Annotated[str | None, typer.Option(help="One service or operator token, by its jti claim")] = None,
    operator: Annotated[str | None, typer.Option(help="Every token of this operator, for good")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a service or operator token, or an operator, in every service.

    Identity refuses it at once, every other service as soon as its TokenRevoked arrives."""
    if (jti is None) == (operator is None):
        fail("give exactly one of --jti or --operator", Exit.USAGE)
    target = {"jti": jti} if jti is not None else {"operator": operator}
    with reported():
        result = actions.call_service("identity", "POST", "/identity/revocations", {**target, "reason": reason})
    if as_json:
        emit_json(result)
    else:
        console.print(f"revoked {result['kind']} {result['value']}", markup=False)


@events_app.command("tail")
def events_tail(
    topic: Annotated[list[str] | None, typer.Option(help="Topic(s) to watch; default: every event topic")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's events")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest event")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print events as they flow (Ctrl-C stops)."""
    from billing_cli import watch

    settings = CliSettings()
    number = account_number(account) if account else None
    try:
        run(watch.tail(settings, topic or list(history.HISTORY_TOPICS), number, from_beginning, limit, as_json))
    except KeyboardInterrupt:
        pass


@dlq_app.command("list")
def dlq_list(service: Annotated[str | None, typer.Option(help="Only this consumer's dead letters")] = None,
             as_json: JsonOpt = False) -> None:
    """Dead letters on the dead-letter topics, newest last."""
    from billing_cli import watch

    letters = run(watch.dead_letters(CliSettings(), service))
    if as_json:
        emit_json([letter.summary() for letter in letters])
        return
    table = Table(title="Dead letters")
    for column in ("id", "consumer", "when", "source", "event", "code", "reason"):
        table.add_column(column)
    for letter in letters:
        table.add_row(letter.ref, letter.consumer, letter.when[:19], letter.source, letter.event_type or "-",
                      letter.code, letter.reason)
    console.print(table)


@dlq_app.command("show")
def dlq_show(ref: Annotated[str, typer.Argument(help="consumer/offset, as `dlq list` shows")], as_json: JsonOpt = False) -> None:
    """One dead letter: its code, its reason and the original bytes."""
    from billing_cli import watch

    letter = run(watch.dead_letter(CliSettings(), ref))
    if as_json:
        emit_json({**letter.summary(), "original": letter.original.decode("utf-8", errors="replace")})
        return
    console.print(f"[bold]{letter.ref}[/bold] from {letter.source} at {letter.when}")
    console.print(f"code: {letter.code}")
    console.print(f"reason: {letter.reason}")
    console.print("original bytes:")
    console.print(letter.original.decode("utf-8", errors="replace"), markup=False)


@dlq_app.command("retry")
def dlq_retry(
    ref: Annotated[str, typer.Argument(help="consumer/offset, as `dlq list` shows")],
    replacement: Annotated[Path | None, typer.Option("--with", help="Send this file's bytes instead (the fixed message, signed by the "
                                                         "CLI's key: its envelope names producer `cli`)")] = None,
) -> None:
    """Send a dead letter back to the topic it came from (as it was, with its producer's signature; or fixed)."""
    from billing_cli import watch

    body = replacement.read_bytes() if replacement else None
    topic = run(watch.retry(CliSettings(), ref, body))
    console.print(f"sent back to {topic}")


def main() -> None:
    """The ``billing`` entry point: every expected failure is one line and an exit code."""
    try:
        with reported():
            app(prog_name="billing")
    except typer.Exit as exit_:  # raised by `reported` outside Typer's own handling
        sys.exit(exit_.exit_code)
