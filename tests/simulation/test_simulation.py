"""CI's budget of the seeded simulation (``make simulate``): the whole suite in one process over
its own embedded broker, on SQLite files and on PostgreSQL, driven by a few seeds' workloads and
faults, holds every invariant and the reference model after every step."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from billing_events.testing.infrastructure import Infrastructure
from simulation.__main__ import command_line, run
from simulation.actions import CI_SEEDS, CI_STEPS, generate
from simulation.driver import execute

REPOSITORY = Path(__file__).parents[2]
REPRODUCTIONS = sorted((Path(__file__).parent / "reproductions").glob("*.json"))
"""Runs the simulation found failing (shrunk), or that hold one of its finds: each fails at 58dbff3."""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_seeded_runs_hold_every_invariant_and_the_model(database: str, infrastructure: Infrastructure,
                                                              tmp_path: Path) -> None:
    faults = 0
    for seed in CI_SEEDS[database]:
        outcome = await execute(generate(seed, CI_STEPS), database=database, workdir=tmp_path,
                                postgres_server=infrastructure.postgres_url)
        assert outcome.failure is None, (
            f"seed {seed} on {database} failed after step {outcome.failure.step}: {outcome.failure.what}\n"
            f"{outcome.failure.detail}\nreproduce: uv run python -m simulation --seed {seed} --steps {CI_STEPS}"
            f" --database {database}")
        assert outcome.steps_run == CI_STEPS + 1
        faults += sum(outcome.faults.values())
    assert faults, "the budget's seeds injected no fault"


@pytest.mark.infrastructure  # the simulation starts its own broker
@pytest.mark.parametrize("reproduction", REPRODUCTIONS, ids=lambda path: path.stem)
async def test_what_the_simulation_found_stays_fixed(reproduction: Path, tmp_path: Path) -> None:
    recorded = json.loads(reproduction.read_text())
    outcome = await execute(recorded["steps"], database=recorded["database"], workdir=tmp_path)
    assert outcome.failure is None, f"{recorded['found']}\n{outcome.failure.what}: {outcome.failure.detail}"
    assert outcome.steps_run == len(recorded["steps"])


@pytest.mark.infrastructure
async def test_a_written_run_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = tmp_path / "run.json"
    steps = [{"do": "start", "at": "2026-12-30T06:00:00+00:00"}, {"do": "register", "label": "A1"},
             {"do": "pay", "key": "card:R-1", "to": "A1", "amount": 60_000, "currency": "RUB"},
             {"fault": "prune"}, {"do": "pay_again", "key": "card:R-1", "how": "same_event"}]
    recorded.write_text(json.dumps({"seed": 0, "database": "sqlite", "steps": steps}))
    assert await run(command_line().parse_args(["--replay", str(recorded)])) == 0
    assert "5 steps, no failure" in capsys.readouterr().out


def test_every_documented_simulation_command_parses() -> None:
    """The documents' `python -m simulation ...` lines name options the command line has."""
    found = 0
    for document in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]:
        for line in re.findall(r"python -m simulation([^\n`]*)", document.read_text(encoding="utf-8")):
            command_line().parse_args(shlex.split(line.split("#")[0]))
            found += 1
    assert found, "the documents show no simulation command"
