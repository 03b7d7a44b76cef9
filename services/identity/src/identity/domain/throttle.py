"""Throttling guesses per account: a sliding window of failures, then a lock that expires.

The state belongs to one account (the service keys it by account number), so a flood
against one account locks that account only. Attempts during a lock are refused without
checking the secret: otherwise the lock would only slow a guesser down, not stop them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


@dataclass(frozen=True)
class ThrottlePolicy:
    """``threshold`` counted attempts within ``window`` lock the account for ``lock_for``."""

    threshold: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("a throttle threshold must be at least 1")


LOGIN_THROTTLE = ThrottlePolicy()
# Each reset request sends an SMS and opens a fresh set of code guesses: a few per hour.
RESET_REQUEST_THROTTLE = ThrottlePolicy(
    threshold=5, window=timedelta(hours=1), lock_for=timedelta(hours=1)
)
# An operator reading out guessed passport data is refused after a few tries.
SUPPORT_THROTTLE = ThrottlePolicy(
    threshold=3, window=timedelta(hours=24), lock_for=timedelta(hours=24)
)


@dataclass(frozen=True)
class ThrottleState:
    """Moments of the counted attempts still inside the window, and the lock, if any."""

    counted: tuple[datetime, ...] = ()
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def count(self, now: datetime, policy: ThrottlePolicy) -> ThrottleState:
        """Count one attempt at ``now``; reaching the threshold starts a lock."""
        recent = tuple(moment for moment in self.counted if now - moment < policy.window)
        recent += (now,)
        if len(recent) >= policy.threshold:
            return ThrottleState(counted=(), locked_until=now + policy.lock_for)
        return ThrottleState(counted=recent, locked_until=None)


class Attempt(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    LOCK_STARTED = "lock_started"
    """Refused, and this attempt started a lock: publish the lock event now, and only now."""
    LOCKED = "locked"
    """Refused unchecked: a lock is on."""

    @property
    def accepted(self) -> bool:
        return self is Attempt.ACCEPTED


@dataclass(frozen=True)
class AttemptOutcome:
    result: Attempt
    locked_until: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.result.accepted

    @property
    def lock_started(self) -> bool:
        return self.result is Attempt.LOCK_STARTED


def guarded_attempt(
    state: ThrottleState, *, now: datetime, verify: Callable[[], bool], policy: ThrottlePolicy
) -> tuple[ThrottleState, AttemptOutcome]:
    """Check a secret unless the account is locked; failures count, a success clears the count.

    ``verify`` is only called when the account is not locked.
    """
    if state.is_locked(now):
        return state, AttemptOutcome(Attempt.LOCKED, state.locked_until)
    if verify():
        return ThrottleState(), AttemptOutcome(Attempt.ACCEPTED)
    after = state.count(now, policy)
    if after.is_locked(now):
        return after, AttemptOutcome(Attempt.LOCK_STARTED, after.locked_until)
    return after, AttemptOutcome(Attempt.REFUSED)


def rate_limited_request(
    state: ThrottleState, *, now: datetime, policy: ThrottlePolicy
) -> tuple[ThrottleState, AttemptOutcome]:
    """Admit a request that costs something whatever its result (a reset code sent by SMS).

    Every admitted request counts; the ``threshold``-th is still admitted and starts the lock
    that refuses the ones after it.
    """
    if state.is_locked(now):
        return state, AttemptOutcome(Attempt.LOCKED, state.locked_until)
    return state.count(now, policy), AttemptOutcome(Attempt.ACCEPTED)
