"""Throttling guesses: a sliding window of failures, then a lock that expires.

A state belongs to what the service keys it by (an account, a client address, both), so a
flood against one account locks that account only. Attempts during a lock are refused without
checking the secret: otherwise the lock would only slow a guesser down, not stop them.

Logins (:class:`LoginPolicy`) lock out the *source* of wrong passwords, never the owner: a
stranger who knows an account number must not be able to keep its subscriber out.
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


@dataclass(frozen=True)
class LoginPolicy:
    """How wrong logins are held back, each limit about whoever makes them.

    - ``per_source``: wrong passwords from one client address at one account lock that address
      out of that account (the owner, elsewhere, still logs in).
    - ``per_address``: wrong passwords from one address at any accounts (credential stuffing)
      lock that address out of every login.
    - ``per_account``: wrong passwords at one account from all addresses put it under siege:
      while it lasts, an address that has already failed at the account (within
      ``per_source.window``) is refused unchecked, so each address gets one guess per window,
      and an address that has not failed is still checked: the right password always works.
    """

    per_source: ThrottlePolicy = LOGIN_THROTTLE
    per_address: ThrottlePolicy = ThrottlePolicy(threshold=30)
    per_account: ThrottlePolicy = ThrottlePolicy(threshold=50)

    @property
    def notice(self) -> ThrottlePolicy:
        """The owner is told of a lockout once per lock period, however many addresses get
        locked out of the account meanwhile."""
        return ThrottlePolicy(threshold=1, window=self.per_source.lock_for, lock_for=self.per_source.lock_for)


LOGIN_POLICY = LoginPolicy()
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

    def recent(self, now: datetime, window: timedelta) -> tuple[datetime, ...]:
        """The counted attempts still inside ``window`` at ``now``."""
        return tuple(moment for moment in self.counted if now - moment < window)

    def count(self, now: datetime, policy: ThrottlePolicy) -> ThrottleState:
        """Count one attempt at ``now``; reaching the threshold starts a lock."""
        recent = self.recent(now, policy.window) + (now,)
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


@dataclass(frozen=True)
class LoginGuard:
    """One source's standing at one account: its own failures there, and the account's
    failures from all sources (the siege ceiling)."""

    source: ThrottleState = ThrottleState()
    account: ThrottleState = ThrottleState()

    def refused_until(self, now: datetime, address: ThrottleState, policy: LoginPolicy) -> datetime | None:
        """Until when attempts from this source at this account are refused unchecked (the
        source is locked out of the account, the address out of every login, or the account
        is under siege and this source has failed at it); None: check the password."""
        locks = [state.locked_until for state in (self.source, address) if state.is_locked(now)]
        if self.account.is_locked(now) and self.source.recent(now, policy.per_source.window):
            locks.append(self.account.locked_until)
        return max((lock for lock in locks if lock is not None), default=None)


def record_login(
    guard: LoginGuard, *, now: datetime, right: bool, policy: LoginPolicy
) -> tuple[LoginGuard, AttemptOutcome]:
    """A checked login attempt: a success clears the source's count (not the siege: others may
    still be guessing); a failure counts for the source and the account, and may lock the
    source out (LOCK_STARTED, once per lock: the moment to tell the owner)."""
    if right:
        return LoginGuard(account=guard.account), AttemptOutcome(Attempt.ACCEPTED)
    source = guard.source.count(now, policy.per_source)
    account = guard.account if guard.account.is_locked(now) else guard.account.count(now, policy.per_account)
    after = LoginGuard(source=source, account=account)
    if source.is_locked(now):
        return after, AttemptOutcome(Attempt.LOCK_STARTED, source.locked_until)
    return after, AttemptOutcome(Attempt.REFUSED)
