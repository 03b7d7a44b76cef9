"""The ledger's operations on its journal, called in this process as the ledger's library
(:mod:`ledger.ops`): each opens the ledger's own database with the ledger's own settings and
returns a typed report, which the command line draws (a progress bar, tables; ``--json``). A
failure the ledger reports (a wrong seal, no such account, its database not reachable) is this
command line's, with its exit code. Commands that change money go through the ledger's API like
every other command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from billing_cli.config import CliSettings
from billing_cli.output import console
from billing_contracts.topics import TopicNames
from ledger import ops

T = TypeVar("T")


async def on_journal(operation: Callable[[ops.LedgerContext], Awaitable[T]]) -> T:
    """The report of one of the ledger's operations, over the ledger's own database."""
    async with ops.ledger_context() as ledger:
        return await operation(ledger)


async def on_whole_journal(label: str, as_json: bool,
                           operation: Callable[[ops.LedgerContext, ops.Progress | None], Awaitable[T]]) -> T:
    """:func:`on_journal` for an operation that reads the whole journal: a progress bar shows
    how far it is (none for ``--json``: the output is for a script)."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("entries"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, disable=as_json) as bar:
        task = bar.add_task(label, total=None)
        shown = None if as_json else (lambda done, total: bar.update(task, completed=done, total=total))
        return await on_journal(lambda ledger: operation(ledger, shown))


async def published_seals(from_broker: bool | None) -> list[ops.Seal] | None:
    """The seals the ledger published on its seal topic, ``from_broker`` (by default when a
    broker is configured); None when not asked. Read before the journal: each one read is older
    than the snapshot the journal is then read in."""
    from billing_cli import seals

    settings = CliSettings()
    if from_broker is None:
        from_broker = settings.bootstrap_servers is not None or "bootstrap_servers" in settings.suite()
    if not from_broker:
        return None
    return await seals.read_from_broker(settings.broker_options(), TopicNames(settings.topic_prefix))
