"""No test reads the wall clock: a test that does tests a different program every month (a
campaign window opens, a month has 28 days, a year ends) and fails some day in CI. Services a
test starts get a fixed clock (billing_events.testing.clock); the few places that must read the
machine's time (TLS certificates, the broker's record timestamps) say why on the line."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
WALL_CLOCK = re.compile(r"SystemClock\(|datetime\.now\(|date\.today\(|\btime\.time\(\)")
SAYS_WHY = "# wall clock: "


def test_no_test_reads_the_wall_clock_without_saying_why() -> None:
    readings = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py")) if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if WALL_CLOCK.search(line) and SAYS_WHY not in line
    ]
    assert not readings, "tests reading the wall clock:\n" + "\n".join(readings)


def test_the_check_finds_a_wall_clock_reading() -> None:
    assert WALL_CLOCK.search("received_at=datetime.now(UTC)")
    assert WALL_CLOCK.search("clock = SystemClock()")
    assert not WALL_CLOCK.search("received_at=clock.now()")
