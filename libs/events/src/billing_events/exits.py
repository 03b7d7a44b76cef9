"""The exit codes of the suite's command line (``billing``, and the ledger's operations it calls): a script
tells a finding from a wrong argument, a missing account and an outage without reading the text."""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn


class Exit(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # verify / rebuild found a problem
    USAGE = 2  # a wrong argument (Typer's and argparse's own code)
    NOT_FOUND = 3
    REFUSED = 4  # the service refused the command (a rule or a field)
    UNREACHABLE = 5  # broker, database or service not reachable
    INTERNAL = 70  # a bug: please report it with BILLING_DEBUG=1 output


class CommandLineError(Exception):
    """An expected failure of a command line: one line for the person, an exit code for the script."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def fail(message: str, code: Exit) -> NoReturn:
    raise CommandLineError(message, code)
