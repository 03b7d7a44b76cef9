"""The embedded broker dies with the process that started it, however that process ends: a
broker left behind keeps its port and its memory, and nobody knows to stop it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STARTER = """
import signal, sys, time
# Ctrl-C must reach the starter even when the test run was started as a background job, which
# starts every process in it with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
from billing_events.embedded import EmbeddedBroker
broker = EmbeddedBroker().start()  # never stopped by this process
print(broker.pid, flush=True)
if sys.argv[1] == "fail":
    raise RuntimeError("a start that failed after the broker was up")
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by init has ended)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's")
@pytest.mark.parametrize("ending", ["fail", "SIGINT", "SIGTERM", "SIGKILL"])
def test_the_broker_ends_with_the_process_that_started_it(ending: str) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, ending], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    broker = int(starter.stdout.readline())
    assert alive(broker)
    if ending != "fail":
        starter.send_signal(getattr(signal, ending))
    starter.wait(timeout=30)
    deadline = time.monotonic() + 10
    while alive(broker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(broker), f"the broker outlived its starter ({ending})"
