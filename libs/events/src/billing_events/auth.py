"""Who is calling: short-lived signed tokens for subscribers, services and operators.

Identity's login issues a subscriber token for one account; every service's HTTP door accepts
that token only for that account (403 otherwise).

A service token (role ``service``, e.g. the cabinet's back end, the call centre) is minted with
identity's private key and is *scoped*: it names the services it is for (``aud``) and what it
may do there (``scope``, e.g. ``ledger:reverse``); each service-only route asks for its one
scope (:data:`SCOPES`), so a token minted for registrations cannot reverse a transaction.

An operator never holds identity's key: each has an Ed25519 key of their own and mints short
(at most :data:`MAX_OPERATOR_TOKEN_LIFETIME`) tokens under the operator issuer naming
themselves; the services list the operators' public keys (``BILLING_OPERATOR_KEYS``, each bound
to one operator's name) and audit every request made with such a token.

Service and operator tokens carry a ``jti``: identity's revocation list (a ``TokenRevoked``
event every service keeps, :mod:`billing_events.revocations`) refuses a revoked token, or every
token of a revoked operator, before it expires.

Tokens are EdDSA (Ed25519) JWTs. Each names its key (``kid``, a fingerprint of the public key)
and a service accepts every public key it lists: a new key is added everywhere before identity
signs with it, and the old one is removed once its last token has expired (docs/operations.md,
"Rotate keys").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol, TypeVar

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billing_contracts import requesters
from billing_events import metrics
from billing_events.clock import Clock
from billing_events.errors import DomainError, ErrorKind
from billing_events.http import ApiError
from billing_events.keys import OperatorKeys, TokenKeys, is_operator_name, key_id, token_private_key

log = structlog.get_logger("billing.auth")

ISSUER = "billing"
"""Identity's tokens: subscribers' and services'."""
OPERATOR_ISSUER = "billing-operators"
"""Operators' tokens, each signed with the operator's own key."""
ALGORITHM = "EdDSA"
MAX_TOKEN_LIFETIME = timedelta(hours=24)
"""The longest a token may live: a leaked one must not open accounts for long."""
MAX_OPERATOR_TOKEN_LIFETIME = timedelta(minutes=15)
"""An operator's token is for the command at hand: the CLI mints one per call."""
Role = Literal["subscriber", "service", "operator"]
Claim = TypeVar("Claim", bound=str)

SCOPES: Mapping[str, str] = {
    "ledger:accounts": "any account's ledger routes: balance, statement, transfers, bonus redemptions, payment type",
    "ledger:history": "GET /ledger/accounts/{account}/events",
    "ledger:replay": "POST /ledger/replays",
    "ledger:resolve": "POST /ledger/suspense/{transaction_id}/resolve",
    "ledger:reverse": "POST /ledger/transactions/{transaction_id}/reverse",
    "identity:register": "POST /identity/subscribers",
    "identity:recover": "POST /identity/support/recoveries",
    "identity:support": "the real answers (not the uniform 202 / invalid_code) of POST /identity/passwords/sms,"
                        " /identity/reset-codes and /identity/reset-codes/redeem",
    "identity:revoke": "POST /identity/revocations",
    "identity:history": "GET /identity/accounts/{account}/events",
    "tariff:accounts": "any account's tariff routes: subscription, plan, options, equipment, voluntary block,"
                       " tariff history, forecast",
    "tariff:close-days": "POST /tariff/billing-days/close",
    "tariff:close-accounts": "POST /tariff/accounts/{account}/closure",
    "tariff:history": "GET /tariff/accounts/{account}/events",
    "notifier:accounts": "GET /notifier/accounts/{account}/deliveries for any account",
    "notifier:history": "GET /notifier/accounts/{account}/events",
}
"""Every scope of the suite's services, each ``<service>:<what>``, and the routes it opens (a
service built on this library, a test's, names its own, e.g. ``<name>:history``)."""


def scopes_of(service: str) -> tuple[str, ...]:
    """Every scope of one service (what an operator's CLI asks for when it calls that service)."""
    return tuple(scope for scope in SCOPES if scope.partition(":")[0] == service)


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    """The account number for a subscriber, the caller's name for a service, the operator's name."""
    session: str | None = None
    """The sign-in a subscriber token belongs to (``sid``): identity refuses the tokens of a
    session signed out. Other services cannot ask, so a token outlives its session there by at
    most its own short lifetime."""
    audience: str | None = None
    """The service that accepted the token (service and operator tokens only)."""
    scopes: frozenset[str] = frozenset()
    token_id: str | None = None
    """The ``jti`` of a service or operator token: what a revocation names."""
    issued_at: datetime | None = None
    language: str | None = None
    """The language a subscriber chose (``lang``, from identity's profile when the token was
    issued): what their refusals are written in."""

    def may_act_for(self, account: str) -> bool:
        if self.role == "subscriber":
            return self.subject == account
        return f"{self.audience}:accounts" in self.scopes

    @property
    def requester(self) -> str:
        """Who asks, as a request records it: ``cabinet:<account>`` for a subscriber, the
        service's own name for a service token, ``operator:<name>`` for an operator."""
        if self.role == "subscriber":
            return requesters.subscriber(self.subject)
        return requesters.operator(self.subject) if self.role == "operator" else self.subject


def _jwt(private: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": key_id(private.public_key())})


def _grant(audience: Iterable[str], scopes: Iterable[str]) -> dict[str, Any]:
    """The ``aud``, ``scope`` and ``jti`` claims of a service or operator token."""
    audience, scopes = sorted(set(audience)), sorted(set(scopes))
    if not audience or not scopes:
        raise ValueError("a service or operator token names its audience and at least one scope")
    if elsewhere := [scope for scope in scopes if scope.partition(":")[0] not in audience]:
        raise ValueError(f"scope {elsewhere} is for a service outside the audience")
    return {"aud": audience, "scope": " ".join(scopes), "jti": str(uuid.uuid4())}


def _bounded(lifetime: timedelta, longest: timedelta) -> timedelta:
    if not timedelta(0) < lifetime <= longest:
        raise ValueError(f"a token lifetime must be positive and at most {longest}")
    return lifetime


class Tokens:
    def __init__(self, keys: TokenKeys, clock: Clock, ttl: timedelta = timedelta(minutes=15), *,
                 audience: str | None = None, operators: OperatorKeys | None = None) -> None:
        """``audience``: the service that checks tokens with this (None: a minter only, which
        accepts no service or operator token); ``operators``: the operators' key ring."""
        self._keys = keys
        self._clock = clock
        self.ttl = ttl
        self.audience = audience
        self._operators = operators or OperatorKeys()

    def issue(self, role: Literal["subscriber", "service"], subject: str, ttl: timedelta | None = None, *,
              session: str | None = None, audience: Iterable[str] = (),
              scopes: Iterable[str] = (), language: str | None = None) -> tuple[str, datetime]:
        """A subscriber token for account ``subject`` (of the sign-in ``session``, written to in
        ``language``), or a service token for ``audience`` with ``scopes`` (both required, and a
        ``jti``)."""
        private = self._keys.private
        if private is None:
            raise RuntimeError("no token private key configured (BILLING_TOKEN_PRIVATE_KEY)")
        now = self._clock.now()
        expires = now + _bounded(self.ttl if ttl is None else ttl, MAX_TOKEN_LIFETIME)
        claims = {"iss": ISSUER, "sub": subject, "role": role, "iat": now, "exp": expires}
        if role == "service":
            claims |= _grant(audience, scopes)
        elif audience or scopes:
            raise ValueError("a subscriber token opens its own account: no audience or scopes")
        if session is not None:
            claims["sid"] = session
        if language is not None:
            claims["lang"] = language
        return _jwt(private, claims), expires

    @property
    def can_issue(self) -> bool:
        return self._keys.private is not None

    def verify(self, token: str) -> Principal:
        if not self._keys.public and not self._operators.keys:
            raise _unauthenticated("token_signing_unconfigured", "this service has no token public key")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            kid = jwt.get_unverified_header(token).get("kid")
            operator, key = self._operators.keys.get(kid, (None, None)) if issuer == OPERATOR_ISSUER else (
                None, self._keys.public.get(kid))
            if key is None:  # signed with a key this service does not (or no longer) accept
                raise jwt.InvalidTokenError("unknown key")
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], issuer=issuer,
                                options={"require": ["exp", "iat", "sub", "role"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False, "verify_aud": False})
            expires, issued = float(claims["exp"]), float(claims["iat"])
        except (jwt.InvalidTokenError, TypeError, ValueError):
            # The library's own wording says how the token failed: of no use to a caller.
            raise _unauthenticated("invalid_token", INVALID_TOKEN) from None
        role, subject = claims["role"], claims["sub"]
        # An operator's key speaks for that operator only, and only for short operator tokens;
        # identity's key never makes an operator token.
        allowed = ({"operator"} if issuer == OPERATOR_ISSUER else {"subscriber", "service"})
        if (role not in allowed or not isinstance(subject, str)
                or (operator is not None and (subject != operator
                                             or expires - issued > MAX_OPERATOR_TOKEN_LIFETIME.total_seconds()))):
            raise _unauthenticated("invalid_token", INVALID_TOKEN)
        # Expiry is checked against the injected clock, so tests can move through time.
        if expires <= self._clock.now().timestamp():
            raise _unauthenticated("token_expired", "the token has expired: log in again")
        if role == "subscriber":
            session, language = claims.get("sid"), claims.get("lang")
            return Principal("subscriber", subject, session=session if isinstance(session, str) else None,
                             language=language if isinstance(language, str) else None)
        return self._granted(role, subject, claims, issued)

    def _granted(self, role: Role, subject: str, claims: Mapping[str, Any], issued: float) -> Principal:
        audience, scope, jti = claims.get("aud"), claims.get("scope"), claims.get("jti")
        audience = [audience] if isinstance(audience, str) else audience
        if not isinstance(audience, list) or not isinstance(scope, str) or not isinstance(jti, str) or not jti:
            raise _unauthenticated("invalid_token", INVALID_TOKEN)
        if self.audience is None or self.audience not in audience:
            raise ApiError(403, "wrong_audience", f"this token is not for the {self.audience} service")
        return Principal(role, subject, audience=self.audience, scopes=frozenset(scope.split()), token_id=jti,
                         issued_at=datetime.fromtimestamp(issued, UTC))


class OperatorSigner:
    """An operator's own key: mints the short tokens the CLI sends for that operator."""

    def __init__(self, operator: str, private_key_b64: str, clock: Clock) -> None:
        if not is_operator_name(operator):
            raise ValueError("an operator's name is letters, digits, . _ - (at most 48)")
        self.operator = operator
        self._private = token_private_key(private_key_b64)
        self._clock = clock

    def issue(self, audience: Iterable[str], scopes: Iterable[str],
              ttl: timedelta = MAX_OPERATOR_TOKEN_LIFETIME) -> tuple[str, datetime]:
        now = self._clock.now()
        expires = now + _bounded(ttl, MAX_OPERATOR_TOKEN_LIFETIME)
        claims = {"iss": OPERATOR_ISSUER, "sub": self.operator, "role": "operator", "iat": now, "exp": expires,
                  **_grant(audience, scopes)}
        return _jwt(self._private, claims), expires


INVALID_TOKEN = "the token is not valid: log in again or ask for a new token"


def _unauthenticated(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


bearer = HTTPBearer(auto_error=False,
                    description="A subscriber token from identity's login, a scoped service token, or an operator's token")


class RevocationList(Protocol):
    async def refuses(self, caller: Principal) -> bool:
        """Whether identity revoked this token (its ``jti``) or its operator."""
        ...


async def principal(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """FastAPI dependency: the caller, from ``Authorization: Bearer <token>``; a revoked service or
    operator token is refused, and every operator's request is audited. On a route of
    :class:`AuthenticatedRoute` the caller was established before the body was read."""
    known: Principal | None = getattr(request.state, "caller", None)
    if known is None:
        # Kept on the request: its refusals are written in the caller's language.
        request.state.caller = known = await _authenticate(request, credentials)
    return known


async def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or not credentials.credentials:
        raise _unauthenticated("missing_token", "a bearer token is required")
    tokens: Tokens = request.app.state.tokens
    caller = tokens.verify(credentials.credentials)
    if caller.role == "subscriber":
        return caller
    revocations: RevocationList | None = getattr(request.app.state, "revocations", None)
    revoked = revocations is not None and await revocations.refuses(caller)
    if caller.role == "operator":
        _audit(caller, request, revoked)
    if revoked:
        raise _unauthenticated("token_revoked", "this token was revoked: ask for a new one")
    return caller


def _audit(caller: Principal, request: Request, revoked: bool) -> None:
    outcome = "revoked" if revoked else "accepted"
    metrics.OPERATOR_REQUESTS.labels(caller.audience, caller.subject, outcome).inc()
    log.info("operator request", operator=caller.subject, jti=caller.token_id, method=request.method,
             path=request.url.path, scopes=sorted(caller.scopes), outcome=outcome)


Caller = Annotated[Principal, Depends(principal)]


def _asks_for_caller(dependant: Dependant) -> bool:
    return any(dependency.call is principal or _asks_for_caller(dependency) for dependency in dependant.dependencies)


class AuthenticatedRoute(APIRoute):
    """A route whose caller (:data:`Caller`) is checked before its body is read: an anonymous
    or wrongly signed request is answered 401 whatever it sends (bytes that are not UTF-8, JSON
    that does not parse), never 400 or 422 about a body nobody was allowed to send."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if not _asks_for_caller(self.dependant):
            return handle

        async def authenticated(request: Request) -> Response:
            request.state.caller = await _authenticate(request, await bearer(request))
            return await handle(request)

        return authenticated


def require_account(caller: Principal, account: str) -> None:
    """A subscriber's token opens its own account only; a service or operator token opens every
    account of the service it is for when it has that service's ``<service>:accounts`` scope."""
    if not caller.may_act_for(account):
        if caller.role == "subscriber":
            raise ApiError(403, "wrong_account", "this token is for another account")
        raise _missing_scope(f"{caller.audience}:accounts")


def require_scope(caller: Principal, scope: str) -> None:
    """A service-only route: a service or operator token with ``scope`` (for this service)."""
    if caller.role == "subscriber":
        raise ApiError(403, "service_only", "operations only: a service or operator token is required")
    if scope not in caller.scopes or scope.partition(":")[0] != caller.audience:
        raise _missing_scope(scope)


def _missing_scope(scope: str) -> ApiError:
    return ApiError(403, "missing_scope", f"this token does not have the {scope} scope", headers={
        "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})


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
