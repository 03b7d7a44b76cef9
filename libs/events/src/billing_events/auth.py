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
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billing_events.clock import Clock
from billing_events.http import ApiError

ISSUER = "billing"
ALGORITHM = "HS256"
MAX_TOKEN_LIFETIME = timedelta(hours=24)
"""The longest a token may live: a leaked one must not open accounts for long."""
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
        lifetime = self.ttl if ttl is None else ttl
        if not timedelta(0) < lifetime <= MAX_TOKEN_LIFETIME:
            raise ValueError(f"a token lifetime must be positive and at most {MAX_TOKEN_LIFETIME}")
        now = self._clock.now()
        expires = now + lifetime
        claims = {"iss": ISSUER, "sub": subject, "role": role, "iat": now, "exp": expires}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), expires

    @property
    def can_issue(self) -> bool:
        return self._key is not None

    def verify(self, token: str) -> Principal:
        if self._key is None:
            raise _unauthenticated("token_signing_unconfigured", "this service has no token signing key")
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "sub", "role"], "verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except jwt.InvalidTokenError:
            # The library's own wording says how the token failed: of no use to a caller.
            raise _unauthenticated("invalid_token", INVALID_TOKEN) from None
        # Expiry is checked against the injected clock, so tests can move through time.
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            raise _unauthenticated("invalid_token", INVALID_TOKEN) from None
        if expires <= self._clock.now().timestamp():
            raise _unauthenticated("token_expired", "the token has expired: log in again")
        if claims["role"] not in ("subscriber", "service") or not isinstance(claims["sub"], str):
            raise _unauthenticated("invalid_token", INVALID_TOKEN)
        return Principal(claims["role"], claims["sub"])


INVALID_TOKEN = "the token is not valid: log in again or ask for a new token"


def _unauthenticated(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


bearer = HTTPBearer(auto_error=False, description="A subscriber token from identity's login, or a service token")


def principal(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """FastAPI dependency: the caller, from ``Authorization: Bearer <token>``."""
    if credentials is None or not credentials.credentials:
        raise _unauthenticated("missing_token", "a bearer token is required")
    tokens: Tokens = request.app.state.tokens
    return tokens.verify(credentials.credentials)


Caller = Annotated[Principal, Depends(principal)]


def require_account(caller: Principal, account: str) -> None:
    """A subscriber's token opens its own account only; a service token opens every account."""
    if not caller.may_act_for(account):
        raise ApiError(403, "wrong_account", "this token is for another account")


def require_service(caller: Principal) -> None:
    if caller.role != "service":
        raise ApiError(403, "service_only", "operations only: a service token is required")
