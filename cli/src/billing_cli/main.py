"""The ``billing`` command line: one entry point for operations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from billing_cli.launcher import SERVICES, run_suite

app = typer.Typer(help="Operations tools of the billing suite.", no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """Operations tools of the billing suite."""


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Folder for the services' SQLite files and logs")] = Path("var"),
    service: Annotated[list[str] | None, typer.Option(help="Start only these services (repeatable)")] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Use this Kafka broker instead of starting the embedded one")
    ] = None,
) -> None:
    """Start the embedded broker and the four services; Ctrl-C stops them (services first)."""
    chosen = service or list(SERVICES)
    unknown = sorted(set(chosen) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    raise typer.Exit(run_suite(data_dir, chosen, bootstrap_servers))
