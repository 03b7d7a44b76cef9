"""The plain-aiokafka example consumer in docs/ keeps working against the suite's events."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "balance_watcher.py"


async def test_example_consumer_prints_balances(ledger: Any) -> None:
    a = "100000000008"
    await ledger.register(a)
    await ledger.pay(a, 123_450, "EX-1")
    await ledger.charge(a, 450, "EX-charge")
    await ledger.balance_becomes(a, 123_000)
    settings = ledger.runtime.settings.kafka
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--bootstrap", settings.bootstrap_servers,
        "--topic-prefix", settings.topic_prefix, "--max-events", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    # the payment and the charge come on different topics, so either may be posted first
    assert lines[-1] == f"{a} 1230.00 RUB"
    assert lines[0] in (f"{a} 1234.50 RUB", f"{a} -4.50 RUB") and len(lines) == 2
    assert "import billing" not in EXAMPLE.read_text() and "from billing" not in EXAMPLE.read_text()
