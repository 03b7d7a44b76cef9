"""Who is calling: short-lived signed tokens for subscribers and services.

Identity's login issues a subscriber token for one account; every service's HTTP door accepts
that token only for that account (403 otherwise). Operations and platform teams use service
tokens (role ``service``), minted with identity's private key by operators
(``billing token``).

Tokens are EdDSA (Ed25519) JWTs. Only identity and the operators' minting command hold the
private key; every other service holds public keys only, so a compromised service can check
tokens but never mint one. Each token names its key (``kid``, a fingerprint of the public key)
and a service accepts every public key it lists: a new key is added everywhere before identity
signs with it, and the old one is removed once its last token has expired (docs/operations.md,
"Rotate keys").
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billing_contracts import requesters
from billing_events.clock import Clock
from billing_events.errors import DomainError, ErrorKind
from billing_events.http import ApiError

ISSUER = "billing"
ALGORITHM = "EdDSA"
MAX_TOKEN_LIFETIME = timedelta(hours=24)
"""The longest a token may live: a leaked one must not open accounts for long."""
Role = Literal["subscriber", "service"]
Claim = TypeVar("Claim", bound=str)


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    """The account number for a subscriber, the caller's name for a service."""
    session: str | None = None
    """The sign-in a subscriber token belongs to (``sid``): identity refuses the tokens of a
    session signed out. Other services cannot ask, so a token outlives its session there by at
    most its own short lifetime."""

    def may_act_for(self, account: str) -> bool:
        return self.role == "service" or self.subject == account

    @property
    def requester(self) -> str:
        """Who asks, as a request records it: ``cabinet:<account>`` for a subscriber, the
        service's own name for a service token."""
        return requesters.subscriber(self.subject) if self.role == "subscriber" else self.subject


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The ``kid`` of tokens signed with the matching private key: a fingerprint, no setting."""
    return base64.urlsafe_b64encode(hashlib.sha256(_raw_public(key)).digest()[:8]).decode().rstrip("=")


def _decode_key(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        # Never quote the value: it may be a secret.
        raise ValueError(f"{what} must be base64 of a 32-byte Ed25519 key")
    return raw


def generate_token_keypair() -> tuple[str, str]:
    """A new signing key pair as ``(public_b64, private_b64)``; the private half stays with identity."""
    private = Ed25519PrivateKey.generate()
    private_b64 = base64.b64encode(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    return public_key_of(private_b64), private_b64


def public_key_of(private_key_b64: str) -> str:
    """The public half (base64) of a token private key: what the other services list."""
    private = Ed25519PrivateKey.from_private_bytes(_decode_key(private_key_b64, "the token private key"))
    return base64.b64encode(_raw_public(private.public_key())).decode()


@dataclass(frozen=True)
class TokenKeys:
    """The public keys tokens are accepted from (by ``kid``), and the private key to sign with."""

    public: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    private: Ed25519PrivateKey | None = None

    @classmethod
    def from_base64(cls, public_keys: Iterable[str] = (), private_key: str | None = None) -> TokenKeys:
        """``public_keys``: every key a token may be signed with (current and previous). The
        private key's own public half is accepted as well."""
        public = [Ed25519PublicKey.from_public_bytes(_decode_key(key, "a token public key")) for key in public_keys]
        private = (Ed25519PrivateKey.from_private_bytes(_decode_key(private_key, "the token private key"))
                   if private_key else None)
        if private is not None:
            public.append(private.public_key())
        return cls({key_id(key): key for key in public}, private)


class Tokens:
    def __init__(self, keys: TokenKeys, clock: Clock, ttl: timedelta = timedelta(minutes=15)) -> None:
        self._keys = keys
        self._clock = clock
        self.ttl = ttl

    def issue(
        self, role: Role, subject: str, ttl: timedelta | None = None, *, session: str | None = None
    ) -> tuple[str, datetime]:
        private = self._keys.private
        if private is None:
            raise RuntimeError("no token private key configured (BILLING_TOKEN_PRIVATE_KEY)")
        lifetime = self.ttl if ttl is None else ttl
        if not timedelta(0) < lifetime <= MAX_TOKEN_LIFETIME:
            raise ValueError(f"a token lifetime must be positive and at most {MAX_TOKEN_LIFETIME}")
        now = self._clock.now()
        expires = now + lifetime
        claims: dict[str, object] = {"iss": ISSUER, "sub": subject, "role": role, "iat": now, "exp": expires}
        if session is not None:
            claims["sid"] = session
        kid = key_id(private.public_key())
        return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid}), expires

    @property
    def can_issue(self) -> bool:
        return self._keys.private is not None

    def verify(self, token: str) -> Principal:
        if not self._keys.public:
            raise _unauthenticated("token_signing_unconfigured", "this service has no token public key")
        try:
            key = self._keys.public.get(jwt.get_unverified_header(token).get("kid"))
            if key is None:  # signed with a key this service does not (or no longer) accept
                raise jwt.InvalidTokenError("unknown key")
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=ISSUER,
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
        session = claims.get("sid")
        return Principal(claims["role"], claims["sub"], session if isinstance(session, str) else None)


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


class ClaimsOtherAuthority(DomainError):
    """A request body names someone other than its credentials (``requested_by: operator:x``
    with a subscriber's token): authority comes from the token, never from the body."""

    code = "requester_mismatch"
    kind = ErrorKind.FORBIDDEN


def as_credentials_say(field: str, claimed: Claim | None, credentials_say: Claim) -> Claim:
    """What ``field`` of a request is: what the credentials say. A body may leave it out; one
    that gives it must say the same."""
    if claimed is not None and claimed != credentials_say:
        raise ClaimsOtherAuthority(f"{field} is {credentials_say!r} for this token; a request may not claim another",
                                   field=field)
    return credentials_say


def require_service(caller: Principal) -> None:
    if caller.role != "service":
        raise ApiError(403, "service_only", "operations only: a service token is required")
