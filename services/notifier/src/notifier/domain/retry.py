"""How long to wait before asking a failing gateway again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from notifier.domain.errors import ErrorCode, NotifierError


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: a try waits a random time up to a doubling ceiling,
    so gateways recovering from an outage are not hit by every notifier at the same moment."""

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise NotifierError(ErrorCode.INVALID_RETRY_POLICY, "at least one try", field="max_attempts")
        if self.base_delay <= timedelta(0):
            raise NotifierError(
                ErrorCode.INVALID_RETRY_POLICY, "base delay must be positive", field="base_delay"
            )
        if self.max_delay < self.base_delay:
            raise NotifierError(
                ErrorCode.INVALID_RETRY_POLICY,
                "max delay must not be below the base delay",
                field="max_delay",
            )

    def next_delay(self, attempt: int, rng: RandomSource) -> timedelta | None:
        """How long to wait after failed try ``attempt`` (counted from 1); None: it was the last."""
        if attempt < 1:
            raise ValueError(f"tries are counted from 1, got {attempt}")
        if attempt >= self.max_attempts:
            return None
        # The exponent is capped only so huge attempt numbers cannot overflow a float.
        ceiling = min(
            self.max_delay.total_seconds(),
            self.base_delay.total_seconds() * 2.0 ** min(attempt - 1, 64),
        )
        return timedelta(seconds=ceiling * rng.random())
