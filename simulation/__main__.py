"""``python -m simulation``: seeded runs of the whole suite against the reference model.

    python -m simulation --seed 7 --steps 200            one seed
    python -m simulation --seeds 1-20 --steps 200        several
    python -m simulation --duration 3600 --steps 200     seeds one after another for an hour
    python -m simulation --replay var/simulation/failure-seed7.json

A failure prints the seed, the step and the shrunk steps that still fail, and writes them to a
file that ``--replay`` runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

from billing_events.logging import configure_logging

from simulation.actions import CI_SEEDS, CI_STEPS, generate
from simulation.driver import Outcome, execute
from simulation.shrink import shrink

OUT = Path("var/simulation")


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",")]


async def _one(seed: int, steps: int, database: str, fault_rate: float, shrink_seconds: float,
               verbose: bool = False, known: tuple[str, ...] = (), stop_at: float | None = None) -> Outcome:
    run = generate(seed, steps, fault_rate=fault_rate)
    began = time.monotonic()
    outcome = await execute(run, database=database, verbose=verbose, known=known, stop_at=stop_at)
    faults = ", ".join(f"{k} {v}" for k, v in sorted(outcome.faults.items()))
    if outcome.failure is None:
        print(f"seed {seed}: {outcome.steps_run} steps clean on {database} in {time.monotonic() - began:.0f} s"
              f" (faults: {faults or 'none'})", flush=True)
        return outcome
    failure = outcome.failure
    print(f"seed {seed}: FAILED after step {failure.step} on {database}: {failure.what}\n  {failure.detail[:1500]}",
          flush=True)
    failing = run[: failure.step + 1]
    if shrink_seconds > 0:
        async def still_fails(candidate: list[dict]) -> bool:
            again = await execute(candidate, database=database, known=known)
            return again.failure is not None and failure.kind() in again.failure.what.split(" + ")
        print(f"seed {seed}: shrinking {len(failing)} steps (at most {shrink_seconds:.0f} s)", flush=True)
        failing = await shrink(failing, still_fails, seconds=shrink_seconds)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"failure-seed{seed}-{database}.json"
    path.write_text(json.dumps({"seed": seed, "database": database, "step": failure.step, "what": failure.what,
                                "detail": failure.detail, "steps": failing}, indent=1, ensure_ascii=False))
    print(f"seed {seed}: {len(failing)} steps still fail ({failure.what}); replay with"
          f" `python -m simulation --replay {path}`", flush=True)
    for step in failing:
        print(f"    {json.dumps(step, ensure_ascii=False)}")
    return outcome


async def run(args: argparse.Namespace) -> int:
    if args.replay:
        recorded = json.loads(Path(args.replay).read_text())
        outcome = await execute(recorded["steps"], database=args.database or recorded["database"],
                                verbose=args.verbose, known=tuple(args.known))
        if outcome.failure is None:
            print(f"replay of {args.replay}: {outcome.steps_run} steps, no failure")
            return 0
        print(f"replay of {args.replay}: failed after step {outcome.failure.step}: {outcome.failure.what}\n"
              f"  {outcome.failure.detail[:3000]}")
        return 1
    database = args.database or "sqlite"
    seeds = _seeds(args.seeds) if args.seeds else [args.seed]
    if args.ci:
        seeds, args.steps = list(CI_SEEDS[database]), CI_STEPS
    began, ran, steps, faults, failures = time.monotonic(), [], 0, Counter(), []
    index = 0
    while True:
        if args.duration:
            if time.monotonic() - began >= args.duration:
                break
            seed = seeds[0] + index
        elif index < len(seeds):
            seed = seeds[index]
        else:
            break
        index += 1
        outcome = await _one(seed, args.steps, database, args.fault_rate, args.shrink_seconds, args.verbose,
                             tuple(args.known), began + args.duration if args.duration else None)
        ran.append(seed)
        steps += outcome.steps_run
        faults += outcome.faults
        if outcome.failure is not None:
            failures.append(seed)
    print(f"\nseeds run: {len(ran)} ({ran[0]}..{ran[-1]}) on {database}; steps: {steps};"
          f" faults injected: {dict(sorted(faults.items()))}; failures: {len(failures)} {failures};"
          f" {time.monotonic() - began:.0f} s")
    return 1 if failures else 0


def command_line() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", help="a range 1-20 or a list 3,5,8 (with --duration: the first seed)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--ci", action="store_true", help="CI's budget: its seeds and steps for the database")
    parser.add_argument("--duration", type=float, help="seconds: run seeds one after another for this long")
    parser.add_argument("--database", choices=["sqlite", "postgresql"])
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--shrink-seconds", type=float, default=900,
                        help="how long a failure's shrinking may take (0: write the failing run unshrunk)")
    parser.add_argument("--replay", help="a failure file written by an earlier run")
    parser.add_argument("--known", action="append", default=[],
                        help="words of an invariant's name not to check (a known break, to look past it)")
    parser.add_argument("--verbose", action="store_true", help="print each step as it runs")
    parser.add_argument("--log-level", default="ERROR", help="the services' log level (their lines go to stderr)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    configure_logging("simulation", level=args.log_level)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
