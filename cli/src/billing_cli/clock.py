"""Time under `billing up`: move the embedded suite's shared clock, and close billing days.

``billing clock advance 3d`` / ``billing clock set 2027-01-15`` move the clock every service of
the embedded suite reads (the file ``billing up`` names in ``BILLING_CLOCK_FILE``), then ask the
tariff service to close the days that ended, in order, as its midnight would. Production runs on
the wall clock and has no clock file: there ``billing tariff close-days`` is the operator's
catch-up for days missed while the tariff service was down.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, cast

import typer

from billing_cli.actions import call_service, moment
from billing_cli.config import CliSettings
from billing_cli.output import Exit, console, emit_json, errors, fail, money, reported
from billing_events.clock import FileClock

app = typer.Typer(help="The embedded suite's clock (`billing up` only): move time forward.", no_args_is_help=True)
tariff_app = typer.Typer(help="Tariff operations: the billing days' catch-up.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
STEP = re.compile(r"(\d+)([dhm])")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(value: str) -> timedelta:
    """``3d``, ``12h``, ``90m`` or a sum such as ``1d12h``."""
    steps = STEP.findall(value)
    if not steps or "".join(f"{n}{u}" for n, u in steps) != value:
        fail(f"{value!r} is not a duration (e.g. 3d, 12h, 1d12h)", Exit.USAGE)
    return sum((timedelta(**{UNITS[unit]: int(n)}) for n, unit in steps), timedelta(0))


def shared_clock() -> FileClock:
    path = CliSettings().shared_clock_file()
    if path is None:
        fail("this suite runs on the wall clock: only the embedded suite (`make run`, `billing up`) has a clock"
             " to move; in production close missed days with `billing tariff close-days`", Exit.USAGE)
    return FileClock(path)


def close_days(until: str | None) -> dict[str, Any]:
    """The tariff service closes every day that ended (up to ``until``), as its midnight does."""
    return call_service("tariff", "POST", "/tariff/billing-days/close", {"until": until})


def report(now: datetime | None, closed: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json({"now": now, "closed": closed})
        return
    if now is not None:
        console.print(f"clock: {now:%Y-%m-%d %H:%M} UTC")
    console.print(f"days closed through {closed['until']}: {closed['days_closed']} account-days,"
                  f" {closed['charges']} charges, {money(closed['charged_minor'], closed['currency'])}"
                  + (f"; left for the next run: {', '.join(closed['failed'])}" if closed["failed"] else ""))


def move(target: datetime, as_json: bool) -> None:
    clock = shared_clock()
    if target < clock.now():
        errors.print("[yellow]warning:[/yellow] the clock goes back; days already closed stay closed and"
                     " are not charged again")
    with reported():
        report(clock.move_to(target), close_days(None), as_json)


@app.command("show")
def show(as_json: JsonOpt = False) -> None:
    """The suite's time, and how far it is from the wall clock."""
    clock = shared_clock()
    now, ahead = clock.now(), clock.offset()
    if as_json:
        emit_json({"now": now, "ahead_seconds": ahead.total_seconds()})
    else:
        hours = round(abs(ahead).total_seconds() / 3600)
        console.print(f"clock: {now:%Y-%m-%d %H:%M} UTC ({hours // 24} days {hours % 24} hours"
                      f" {'ahead of' if ahead >= timedelta(0) else 'behind'} the wall clock)")


@app.command("advance")
def advance(by: Annotated[str, typer.Argument(help="How far: 3d, 12h, 90m, 1d12h")], as_json: JsonOpt = False) -> None:
    """Move every service's clock forward, then close the days that passed, in order."""
    step = duration(by)
    move(shared_clock().now() + step, as_json)


@app.command("set")
def set_clock(to: Annotated[str, typer.Argument(help="ISO date or time; a date alone is its midnight UTC")],
              as_json: JsonOpt = False) -> None:
    """Move every service's clock to a moment, then close the days that ended. Back is allowed (a
    fresh suite set to the walkthrough's date); days already closed stay closed."""
    move(cast(datetime, moment(to)).astimezone(UTC), as_json)


@tariff_app.command("close-days")
def close_days_command(
    until: Annotated[str | None, typer.Option(help="Last day to close (YYYY-MM-DD); default and at most: yesterday")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the billing days missed while the tariff service was down (idempotent: a day already
    closed is not charged again)."""
    if until is not None:
        try:
            date.fromisoformat(until)
        except ValueError:
            fail(f"{until!r} is not a day (YYYY-MM-DD)", Exit.USAGE)
    with reported():
        report(None, close_days(until), as_json)
