"""A password sent on request waits beside the current one until it is used.

Asking for a password never takes one away: a password sent by SMS (asked for directly, or
after a reset code) is kept as the account's *pending* password. The current password keeps
working; the first login with the pending one makes it the current password (the old one
stops working then); an unused pending password expires. An account holds at most one: a
newer request replaces it, and both went to the same registered phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_contracts.catalog.identity import PasswordPurpose


@dataclass(frozen=True)
class PendingPassword:
    password_hash: str
    purpose: PasswordPurpose
    issued_at: datetime
    expires_at: datetime

    def usable(self, now: datetime) -> bool:
        return now < self.expires_at


def issue_pending_password(
    password_hash: str, *, purpose: PasswordPurpose, now: datetime, lifetime: timedelta
) -> PendingPassword:
    if lifetime <= timedelta(0):
        raise ValueError("a pending password needs a positive lifetime")
    return PendingPassword(password_hash=password_hash, purpose=purpose, issued_at=now,
                           expires_at=now + lifetime)
