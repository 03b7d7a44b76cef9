"""Transient failures are retried with a doubling, jittered backoff until a deadline; any other
failure passes at once."""

from __future__ import annotations

from typing import Any

import pytest
from tenacity import RetryCallState

from billing_events.db import doubling_backoff, retry_transient


async def test_a_transient_failure_is_retried_until_the_action_succeeds() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(len(calls) + 1)
        if len(calls) < 3:
            raise ConnectionError("the database went away")
        return "done"

    assert await retry_transient(flaky, what="test", first_delay=0.001, max_delay=0.002) == "done"
    assert calls == [1, 2, 3]


async def test_any_other_failure_passes_at_once_and_a_transient_one_after_the_deadline() -> None:
    calls: list[str] = []

    async def wrong() -> Any:
        calls.append("wrong")
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await retry_transient(wrong, what="test")
    assert calls == ["wrong"]

    async def away() -> Any:
        calls.append("away")
        raise ConnectionError("still away")

    with pytest.raises(ConnectionError, match="still away"):  # the first wait would end past the deadline
        await retry_transient(away, what="test", max_wait=0.01, first_delay=0.02)
    assert calls == ["wrong", "away"]


def test_the_backoff_doubles_from_its_first_delay_up_to_its_ceiling_jittered_down_to_half() -> None:
    wait = doubling_backoff(0.05, 5.0)

    def after(attempt: int) -> float:
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        return wait(state)

    assert after(1) == 0.05
    for attempt, full in ((2, 0.1), (3, 0.2), (8, 5.0), (20, 5.0)):
        assert all(full / 2 <= after(attempt) <= full for _ in range(200)), attempt


async def test_an_action_given_as_a_lambda_is_awaited() -> None:
    calls: list[str] = []

    async def write(name: str) -> str:
        calls.append(name)
        return name

    assert await retry_transient(lambda: write("once"), what="test") == "once"
    assert calls == ["once"]
