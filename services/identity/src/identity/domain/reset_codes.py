"""One-time reset codes: issued, redeemed once, dead after expiry or too many wrong guesses.

An account holds at most one code: issuing a new one replaces the old state, which is how a
newer code voids the older one. Only the code's hash is kept; the domain asks a verifier
(supplied by the service, backed by ``identity.security``) whether a guess matches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


@dataclass(frozen=True)
class ResetCodePolicy:
    lifetime: timedelta = timedelta(minutes=15)
    max_wrong_guesses: int = 5


RESET_CODE_POLICY = ResetCodePolicy()


@dataclass(frozen=True)
class ResetCode:
    """The live code of one account. It works while ``now < expires_at``, once."""

    code_hash: str
    issued_at: datetime
    expires_at: datetime
    max_wrong_guesses: int
    wrong_guesses: int = 0
    used_at: datetime | None = None

    @property
    def guesses_left(self) -> int:
        return max(self.max_wrong_guesses - self.wrong_guesses, 0)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def issue_reset_code(
    code_hash: str, *, now: datetime, policy: ResetCodePolicy = RESET_CODE_POLICY
) -> ResetCode:
    """The account's new code state; whatever code the account had before is void."""
    return ResetCode(
        code_hash=code_hash,
        issued_at=now,
        expires_at=now + policy.lifetime,
        max_wrong_guesses=policy.max_wrong_guesses,
    )


class Redemption(StrEnum):
    ACCEPTED = "accepted"
    WRONG_CODE = "wrong_code"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"
    TOO_MANY_GUESSES = "too_many_guesses"
    NO_CODE = "no_code"


def redeem_reset_code(
    state: ResetCode | None, *, now: datetime, matches: Callable[[str], bool]
) -> tuple[ResetCode | None, Redemption]:
    """Try a code. ``matches(code_hash)`` tells whether the submitted code hashes to it.

    A dead code (used, expired, out of guesses) is refused without calling ``matches``, so a
    slow hash is only computed for a code that could still work.
    """
    if state is None:
        return None, Redemption.NO_CODE
    refusal = _refusal(state, now)
    if refusal is not None:
        return state, refusal
    if matches(state.code_hash):
        return replace(state, used_at=now), Redemption.ACCEPTED
    return replace(state, wrong_guesses=state.wrong_guesses + 1), Redemption.WRONG_CODE


def _refusal(state: ResetCode, now: datetime) -> Redemption | None:
    if state.used_at is not None:
        return Redemption.ALREADY_USED
    if state.guesses_left == 0:
        return Redemption.TOO_MANY_GUESSES
    if state.expired(now):
        return Redemption.EXPIRED
    return None
