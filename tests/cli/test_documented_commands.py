"""Every `billing` command the README and docs/*.md show parses against the CLI as printed: the
command exists, and so do its flags, with values of the right shape. A command line in a code
block is complete (every required argument given); a command named in the prose may leave them
out ("`billing do pay` refuses it"), but what it shows must exist. A documented flag that does
not exist fails here (it once did: `billing rebuild --repair` was documented before it existed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer._click.core import Command, Context  # typer carries its own click
from typer._click.exceptions import MissingParameter, UsageError
from typer.core import TyperGroup

from billing_cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
# Where `billing` is the command being run: a line's start, or after `uv run`, `--`, `exec <where>`,
# `--no-deps <service>` (not `kubectl -n billing`, the namespace), with at least one argument.
IN_BLOCK = re.compile(r"(?:^\$?\s*|\buv run |-- |\bexec \S+ |--no-deps \S+ )billing( [^#\n]+)", re.MULTILINE)


def documented_commands() -> list[tuple[str, str, bool]]:
    """(document, command line, whether it is a complete command line)."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for block in FENCE.findall(text):  # then the inline code of the prose
            found += [(document.name, "billing" + m.group(1).rstrip(), True) for m in IN_BLOCK.finditer(block)]
        for span in INLINE.findall(FENCE.sub("", text)):
            found += [(document.name, "billing" + m.group(1).rstrip(), False) for m in IN_BLOCK.finditer(span)]
    return found


def parse(line: str, *, complete: bool = True) -> None:
    """Resolve the command through the groups and parse its arguments; nothing runs."""
    args = shlex.split(line)[1:]
    command: Command = typer.main.get_command(app)
    path = ["billing"]
    while isinstance(command, TyperGroup) and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = command.get_command(Context(command), name)
        assert sub is not None, f"no command {' '.join([*path, name])!r}"
        command, path = sub, [*path, name]
    try:
        command.make_context(" ".join(path), args)
    except typer.Exit as exit_:  # --help
        assert exit_.exit_code == 0
    except MissingParameter:
        if complete:
            raise


COMMANDS = documented_commands()


def test_the_documents_show_the_operations_commands() -> None:
    shown = {line.split()[1] for _, line, _ in COMMANDS if len(line.split()) > 1}
    assert {"verify", "rebuild", "replay", "statement", "history", "do", "dlq", "events", "token"} <= shown


@pytest.mark.parametrize(("document", "line", "complete"), COMMANDS, ids=[f"{d}: {c}" for d, c, _ in COMMANDS])
def test_a_documented_command_parses(document: str, line: str, complete: bool) -> None:
    try:
        parse(line, complete=complete)
    except UsageError as exc:
        pytest.fail(f"{document} shows `{line}`, which the CLI refuses: {exc.format_message()}")


def test_a_flag_that_does_not_exist_is_refused() -> None:
    with pytest.raises(UsageError, match="--verify-only"):
        parse("billing rebuild --verify-only")
    with pytest.raises(AssertionError, match="no command"):
        parse("billing reconcile")
    with pytest.raises(UsageError, match="--no-such-flag"):
        parse("billing do pay --no-such-flag", complete=False)
    with pytest.raises(MissingParameter):
        parse("billing do pay")
