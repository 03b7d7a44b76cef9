"""docs/walkthrough.md runs as printed: every `./billing` command of it, in order, against the
four services under one movable clock, and each output block it shows is found in what the
command printed.

An output block's lines must appear in order (spaces collapsed, so table padding does not
matter); ``...`` in a line stands for anything (an event id, a reference), and a line of only
``...`` for lines the document leaves out. Reads (``replay``, ``history``, ``catalog``) are asked
again until they show what the document shows, as a person would look again a second later: the
services answer each other through the broker, not at once. Every other command runs once and
must succeed."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from billing_events.testing.plugin import eventually

WALKTHROUGH = Path(__file__).parents[2] / "docs" / "walkthrough.md"
READS = {"replay", "history", "catalog"}
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


@dataclass
class Step:
    args: list[str]
    shown: list[str]


def steps(text: str) -> list[Step]:
    """Each ```sh block holds one `./billing` command; a ```text block right after it is what it prints."""
    found: list[Step] = []
    for block in BLOCK.finditer(text):
        language, body = block.groups()
        if language == "sh":
            (line,) = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
            words = shlex.split(line, comments=True)
            assert words[0] == "./billing", line
            found.append(Step(words[1:], []))
        elif language == "text" and found and text[:block.start()].rstrip().endswith("```"):
            found[-1].shown = [line for line in body.splitlines() if line.strip()]
    return found


def _flat(line: str) -> str:
    return " ".join(line.split())


def shows(output: str, shown: list[str]) -> bool:
    """The document's lines appear in the output, in order."""
    lines = iter(_flat(line) for line in output.splitlines())
    for expected in shown:
        if expected.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in _flat(expected).split("...")))
        if not any(pattern.search(line) for line in lines):
            return False
    return True


async def _settled(suite: Any, accounts: set[str]) -> bool:
    """The tariff has heard the ledger's last word on every account (what a block's price is checked against)."""
    return all([await suite.ledger_balance(n) == await suite.tariff_balance(n) for n in accounts])


async def test_the_walkthrough_runs_as_printed(shared_clock_suite: Any) -> None:
    suite, accounts = shared_clock_suite, set[str]()
    walk = steps(WALKTHROUGH.read_text(encoding="utf-8"))
    assert len(walk) >= 15 and all(step.shown for step in walk)
    for step in walk:
        named = {arg for arg in step.args if re.fullmatch(r"\d{12}", arg)}
        for number in named - accounts:  # registered by an earlier step: the ledger hears of it on its topic
            await eventually(lambda: suite.ledger_account_open(number), what=f"the ledger opened {number}")
        accounts |= named
        await eventually(lambda: _settled(suite, accounts), what="the services agreeing on balances")
        last: list[str] = []

        async def ran() -> bool:
            code, out, err = await suite.billing(*step.args)
            last[:] = [str(code), out, err]
            return code == 0 and shows(out, step.shown)

        if step.args[0] in READS:
            await eventually(ran, interval=0.5, what=f"`billing {shlex.join(step.args)}` to show {step.shown}")
        else:
            assert await ran(), f"billing {shlex.join(step.args)} printed:\n{last[1]}{last[2]}\nnot:\n" + "\n".join(step.shown)
