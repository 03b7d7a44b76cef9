"""Who is calling: short-lived signed tokens for subscribers and services.

Identity's login issues a subscriber token for one account; every service's HTTP door accepts
that token only for that account (403 otherwise). Operations and platform teams use service
tokens (role ``service``), minted with the same signing key from the deployment's secrets
(``billing token``). Tokens are HS256 JWTs: every service verifies with the shared key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

import jwt
from fastapi import Depends, HTTPException, Request

from billing_events.clock import Clock

ISSUER = "billing"
ALGORITHM = "HS256"
Role = Literal["subscriber", "service"]


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    """The account number for a subscriber, the caller's name for a service."""

    def may_act_for(self, account: str) -> bool:
        return self.role == "service" or self.subject == account


class Tokens:
    def __init__(self, signing_key_b64: str | None, clock: Clock, ttl: timedelta = timedelta(minutes=15)) -> None:
        self._key = base64.b64decode(signing_key_b64) if signing_key_b64 else None
        self._clock = clock
        self.ttl = ttl

    def issue(self, role: Role, subject: str, ttl: timedelta | None = None) -> tuple[str, datetime]:
        if self._key is None:
            raise RuntimeError("no token signing key configured (BILLING_TOKEN_SIGNING_KEY)")
        now = self._clock.now()
        expires = now + (ttl or self.ttl)
        claims = {"iss": ISSUER, "sub": subject, "role": role, "iat": now, "exp": expires}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        if self._key is None:
            raise HTTPException(401, "token signing key not configured")
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "sub", "role"], "verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except jwt.InvalidTokenError as exc:
            raise HTTPException(401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None
        # Expiry is checked against the injected clock, so tests can move through time.
        if claims["exp"] <= self._clock.now().timestamp():
            raise HTTPException(401, "token expired", headers={"WWW-Authenticate": "Bearer"})
        if claims["role"] not in ("subscriber", "service"):
            raise HTTPException(401, "unknown role")
        return Principal(claims["role"], claims["sub"])


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, from ``Authorization: Bearer <token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    tokens: Tokens = request.app.state.tokens
    return tokens.verify(token)


Caller = Annotated[Principal, Depends(principal)]


def require_account(caller: Principal, account: str) -> None:
    if not caller.may_act_for(account):
        raise HTTPException(403, f"this token is for another account, not {account}")


def require_service(caller: Principal) -> None:
    if caller.role != "service":
        raise HTTPException(403, "operations only: a service token is required")
