"""How the CLI speaks: tables for people, JSON for scripts, one line per error, meaningful exits."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from rich.console import Console

from billing_events.exits import CommandLineError, Exit
from billing_events.exits import fail as fail  # the command line's modules fail through this one
from billing_contracts.money import DEFAULT_CURRENCY, format_amount

# Piped output (a file, a pager, a script) gets wide lines instead of an 80-column wrap.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def reported() -> Iterator[None]:
    """Turn every expected failure into one clear line and an exit code; never a traceback."""
    try:
        yield
    except CommandLineError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(exc.code) from None
    except (FileNotFoundError, IsADirectoryError) as exc:  # a path the operator gave: a wrong argument
        errors.print(f"[red]error:[/red] no such file: {exc.filename}")
        raise typer.Exit(Exit.USAGE) from None
    except (KafkaConnectionError, KafkaTimeoutError) as exc:  # aiokafka's are not OSErrors
        errors.print(f"[red]error:[/red] the broker is not reachable: {exc}")
        raise typer.Exit(Exit.UNREACHABLE) from None
    except (ConnectionError, OSError, TimeoutError) as exc:
        errors.print(f"[red]error:[/red] not reachable: {exc}")
        raise typer.Exit(Exit.UNREACHABLE) from None
    except Exception as exc:
        if os.environ.get("BILLING_DEBUG"):
            raise
        errors.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {exc} (BILLING_DEBUG=1 shows the trace)")
        raise typer.Exit(Exit.INTERNAL) from None


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def money(minor: int, currency: str = DEFAULT_CURRENCY) -> str:
    """Money in a table: ``1 234.50 RUB``."""
    return format_amount(minor, currency, thousands=" ")


def with_money_shown(value: Any) -> Any:
    """An answer as people read it: every money object (``{"minor": ..., "currency": ...}``)
    becomes money with its currency; ``--json`` keeps the answer as the service gave it."""
    if isinstance(value, dict):
        if value.keys() == {"minor", "currency"} and isinstance(value["minor"], int):
            return money(value["minor"], value["currency"])
        return {name: with_money_shown(item) for name, item in value.items()}
    if isinstance(value, list):
        return [with_money_shown(item) for item in value]
    return value
