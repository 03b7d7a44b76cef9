"""Delta debugging (Zeller's ddmin) over a failing run's steps: drop chunks of steps, then single
steps, keeping each drop after which the run still fails the same way, until no single step can
go. The first step (where the clock starts) is always kept."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def shrink(items: list[T], still_fails: Callable[[list[T]], Awaitable[bool]], *,
                 keep_first: bool = True, budget: int = 200, seconds: float | None = None) -> list[T]:
    """The smallest sublist ddmin finds (in order) for which ``still_fails`` holds, within
    ``budget`` trials and ``seconds`` (what it found so far when either runs out)."""
    head, rest = (items[:1], items[1:]) if keep_first else ([], list(items))
    trials = 0
    chunks = 2
    until = None if seconds is None else time.monotonic() + seconds

    def spent() -> bool:
        return trials >= budget or (until is not None and time.monotonic() >= until)

    while len(rest) >= 1 and not spent():
        size = max(1, len(rest) // chunks)
        dropped_one = False
        start = 0
        while start < len(rest) and not spent():
            candidate = rest[:start] + rest[start + size:]
            trials += 1
            if await still_fails(head + candidate):
                rest = candidate
                chunks = max(chunks - 1, 2)
                dropped_one = True
            else:
                start += size
        if not dropped_one:
            if size == 1:
                break
            chunks = min(chunks * 2, len(rest))
    return head + rest
