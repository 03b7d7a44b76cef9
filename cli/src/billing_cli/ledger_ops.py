"""The ledger's operations on its journal, run through the entry point the ledger owns
(``python -m ledger ops``, in this same environment): it reads its own database with its own
settings and answers with a JSON report; the command line draws the report (a progress bar,
tables) and keeps the ledger's exit code for an error. Commands that change money go through
the ledger's API like every other command.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from billing_cli.output import Exit, fail

OPERATIONS = (sys.executable, "-m", "ledger", "ops")
Progress = Callable[[int, int], None]


async def run_operation(command: str, *args: str, given: bytes | None = None,
                        progress: Progress | None = None) -> Any:
    """The report of ``python -m ledger ops COMMAND ARGS``, one with findings included (exit 1:
    the caller reads them); any other failure becomes this command line's, with its exit code.
    ``given`` goes to its stdin; the log lines it writes go on to stderr."""
    flags = ["--progress"] if progress is not None else []
    process = await asyncio.create_subprocess_exec(
        *OPERATIONS, command, *args, *flags, stdin=asyncio.subprocess.PIPE if given is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    if given is not None:
        assert process.stdin is not None
        process.stdin.write(given)
        await process.stdin.drain()
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    out, errors = await asyncio.gather(process.stdout.read(), _relay(process.stderr, progress))
    code = await process.wait()
    if code in (Exit.OK, Exit.CHECK_FAILED) and out:
        return json.loads(out)
    relayed = code in {exit_.value for exit_ in Exit} - {Exit.OK, Exit.CHECK_FAILED}
    fail(errors[-1] if errors else f"`python -m ledger ops {command}` ended with exit code {code}",
         Exit(code) if relayed else Exit.INTERNAL)


async def _relay(stream: asyncio.StreamReader, progress: Progress | None) -> Sequence[str]:
    """Progress lines to ``progress``, error lines kept for the caller, log lines on to stderr."""
    errors = []
    async for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        words = line.split()
        if progress is not None and len(words) == 3 and words[0] == "progress":
            progress(int(words[1]), int(words[2]))
        elif line.startswith("error: "):
            errors.append(line.removeprefix("error: "))
        else:
            sys.stderr.write(line + "\n")
    return errors
