"""A service as a separate process, the way ``billing up`` runs it: started, waited for, killed.

Fault tests need what an in-process runtime cannot give: a SIGKILL (no ``finally``, no graceful
stop, the database connections cut mid-transaction) and a SIGTERM handled by the service's own
signal handlers. :class:`ServiceProcess` starts ``python -m <module>`` with an environment,
appends everything the process prints to one log file (one section per start), and knows when
the service is up from its ``service started`` log line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from billing_events.testing.clock import CLOCK_FILE_SETTING

READY_MARK = "service started"


class ServiceProcessError(RuntimeError):
    pass


class ServiceProcess:
    """``python -m <module>`` with ``env`` added to this process's environment.

    ``await start()`` returns once the service logged that it started; ``kill()`` is a SIGKILL;
    ``await stop()`` is a SIGTERM (what Ctrl-C in ``billing up`` sends) and waits for the exit.
    The same object can be started again after it ended. ``env`` must name a clock file
    (:func:`billing_events.testing.clock.clock_file`): a service a test starts never runs on the
    wall clock.
    """

    def __init__(self, module: str, env: Mapping[str, str], *, log_path: Path, name: str | None = None) -> None:
        if CLOCK_FILE_SETTING not in env:
            raise ServiceProcessError(f"{name or module} would run on the wall clock: give it {CLOCK_FILE_SETTING} "
                                      "(billing_events.testing.clock.clock_file)")
        self.module = module
        self.name = name or module
        self.env = dict(env)
        self.log_path = log_path
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        if self.running:
            raise ServiceProcessError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed when the process ends)
        self._log.write(f"\n===== {self.name}: start #{self.starts} =====\n".encode())
        self._log.flush()
        self._log_offset = self._log.tell()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )

    async def start(self, timeout: float = 60.0) -> ServiceProcess:
        """Start and wait until the service logged that it started."""
        self.spawn()
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if READY_MARK in self.output():
                return
            if not self.running:
                raise ServiceProcessError(
                    f"{self.name} exited with code {self.returncode} before it started:\n{self.tail()}"
                )
            await asyncio.sleep(0.05)
        raise ServiceProcessError(f"{self.name} did not start within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when the machine or the OOM killer takes it."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._close_log()

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for the exit (a SIGKILL after ``timeout``); returns the exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while self._process.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if self._process.poll() is None:
                self.kill()
        self._close_log()
        return self._process.returncode

    def output(self) -> str:
        """What the current (or last) run printed so far."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def all_output(self) -> str:
        """What every run printed, with a header per start."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
