"""The README's and the documents' `billing` commands run as printed on a fresh machine.

`make` installs uv into ~/.local/bin, which is not on a fresh machine's PATH, so the documents'
shell commands use the top-level `./billing` launcher (the project environment's entry point),
and every `billing ...` they show names commands and options the command line has: a documented
flag that does not exist fails here (it once did: `billing rebuild --repair` was documented
before it existed)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from billing_cli.main import app

REPOSITORY = Path(__file__).parents[2]
DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL = {"", "sh", "bash", "console"}
SPAN = re.compile(r"`([^`\n]+)`")
LAUNCHERS = {"./billing", "billing"}
BARE_PATH = "/usr/bin:/bin"  # a fresh machine's: neither uv nor the project's environment on it


def _invocations(words: list[str]) -> list[list[str]]:
    """The `billing` calls in one command line (also after `exec SERVICE` or `--`), up to `#`."""
    found = []
    for at, word in enumerate(words):
        if word in LAUNCHERS and (at == 0 or words[at - 1] not in ("-n", "--namespace")):
            args = words[at + 1:]
            args = args[:next((i for i, a in enumerate(args) if a in ("|", ";", "&&", ">")), len(args))]
            if args:
                found.append(args)
    return found


def documented() -> list[tuple[str, bool, list[str]]]:
    """(where, launched as a fresh machine can, arguments) of every `billing` call shown. A code
    block's shell line starting with a bare `billing` is not launched so; prose (`billing replay`) is."""
    calls = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for language, block in FENCE.findall(text):
            if language not in SHELL:
                continue
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True) if line.strip() else []
                # inside a container (`kubectl exec ... -- billing`) the image has it on its PATH
                calls += [(f"{document.name}: {line.strip()}", words[0] != "billing", args)
                          for args in _invocations(words)]
        for span in SPAN.findall(FENCE.sub("", text)):
            calls += [(f"{document.name}: `{span}`", True, args) for args in _invocations(shlex.split(span))]
    return calls


def parse(args: list[str]) -> str | None:
    """Parse the arguments with the real command line, down to the command, as a run would;
    the problem a run would report, or None. (Typer carries its own click: its errors are told
    apart by their ``format_message``.)"""
    command = typer.main.get_command(app)
    try:
        context = command.make_context("billing", list(args))
        while hasattr(command, "resolve_command"):  # a group leaves its command's words unparsed
            name, sub, rest = command.resolve_command(context, [*context._protected_args, *context.args])
            context, command = sub.make_context(name, rest, parent=context), sub
    except typer.Exit as done:  # --help: printed, and the run ends there
        return None if done.exit_code == 0 else f"exit {done.exit_code}"
    except Exception as exc:
        if not hasattr(exc, "format_message"):
            raise
        return str(exc.format_message())
    return None


def test_the_documents_show_billing_commands() -> None:
    shown = {" ".join(args[:1]) for _, _, args in documented()}
    assert {"do", "clock", "catalog", "tariff", "replay", "history", "statement", "verify", "rebuild", "dlq",
            "events", "token"} <= shown


@pytest.mark.parametrize(("where", "launched", "args"), documented(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_documented_billing_command_exists(where: str, launched: bool, args: list[str]) -> None:
    del launched
    problem = parse(args)
    if where.endswith("`"):  # prose may name a command without its arguments: `billing replay`
        assert problem is None or problem == "" or problem.startswith(("Missing argument", "Missing option")), \
            f"{where}: {problem}"
    else:
        assert problem is None, f"{where}: {problem}"


def test_the_check_catches_a_wrong_command_or_flag() -> None:
    assert "No such command" in str(parse(["do", "pai", "100000000016", "1"]))
    assert "--verify-only" in str(parse(["rebuild", "--verify-only"]))
    assert "Missing argument" in str(parse(["do", "pay", "100000000016"]))
    assert parse(["clock", "advance", "3d"]) is None


def test_shell_lines_of_the_documents_use_the_launcher() -> None:
    """A bare `billing` at the start of a documented shell line is not on a fresh machine's PATH."""
    bare = [where for where, launched, _ in documented() if not launched]
    assert bare == []


def test_the_launcher_runs_without_uv_on_the_path() -> None:
    ran = subprocess.run([REPOSITORY / "billing", "clock", "--help"], cwd=REPOSITORY, capture_output=True,
                         text=True, env={"PATH": BARE_PATH, "HOME": os.environ.get("HOME", "/tmp")}, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "Usage: billing clock" in ran.stdout


def test_the_launcher_says_what_to_do_before_make_has_run(tmp_path: Path) -> None:
    shutil.copy(REPOSITORY / "billing", tmp_path / "billing")  # a clone without its .venv yet
    ran = subprocess.run([tmp_path / "billing", "--help"], capture_output=True, text=True,
                         env={"PATH": BARE_PATH}, timeout=60)
    assert ran.returncode == 5
    assert "run `make install`" in ran.stderr
