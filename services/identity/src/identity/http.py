"""The identity commands over HTTP: the same functions as :mod:`identity.service`.

Bodies are plain JSON objects validated by the commands themselves, so an HTTP caller gets the
same field-level errors as any other (the OpenAPI document shows each command's model): 422
with one entry per field, never quoting the input. Other refusals: 404 unknown account, 401
wrong login or password (never saying which), 409 passport already registered, 403 passport
data that do not match, 400 a code that does not work, 429 throttled or locked (with
``until``). Every refusal has the suite's one shape (:class:`billing_events.http.Problem`).

Who may call: login, the reset code (request and redeem) and a new password by SMS are public;
registration (the cabinet's back end, the call centre) and support-assisted recovery need a
service or operator token with ``identity:register`` and ``identity:recover``; revoking a
service or operator token takes ``identity:revoke``. Login answers with a short-lived subscriber token for that one account, which
the other services accept for that account only.

A new password by SMS and a reset code, asked for without a service token, are answered 202
with one body (:class:`RequestAccepted`) whether or not the account exists, the phone or
e-mail matches, or the account's own throttle held the request back: the answer tells a
prober nothing, and what really happened is in identity's audit and metrics. A code that does
not work is answered ``invalid_code`` (400) whatever the reason (wrong, none requested, expired,
used), and a login refused or locked out the same for an account and for nobody's. Only the client
address's throttle answers otherwise (429): it is about the caller, not about any account.
The call centre and operations (a token with ``identity:support``) get the real answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from billing_events.auth import (
    AuthenticatedRoute,
    Caller,
    Principal,
    Tokens,
    as_credentials_say,
    is_operator_name,
    require_scope,
)
from billing_events.catalog.identity import RevokedKind
from billing_events.http import json_body, problem, problem_responses
from identity import commands, service
from identity.context import IdentityContext
from identity.domain import (
    ContactMismatch,
    RegistrationCommand,
    ResetCodeRefused,
    TooManyRequests,
    UnknownAccount,
)
from identity.settings import IdentitySettings

# What an anonymous request for a password or a code must not reveal.
_HIDDEN_FROM_CALLER = (UnknownAccount, ContactMismatch, TooManyRequests)


class RequestAccepted(BaseModel):
    """The one answer to an anonymous request for a password or a code, whatever came of it."""

    status: Literal["accepted"] = "accepted"
    message: str = (
        "if the details match a subscriber, a message is on its way to the registered phone or e-mail;"
        " the current password keeps working until the new one is used"
    )


# An IPv6 address in text is at most 45 characters; a longer header entry is cut (it keys throttles).
MAX_ADDRESS_LENGTH = 64


def client_address(request: Request, settings: IdentitySettings) -> str | None:
    """The caller's address as the HTTP layer sees it: the last entry of the trusted proxy's
    header when one is configured (the entry the proxy appended itself), else the TCP peer."""
    header = settings.client_address_header
    if header is not None:
        forwarded = [part.strip() for part in request.headers.get(header, "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1][:MAX_ADDRESS_LENGTH]
    return request.client.host[:MAX_ADDRESS_LENGTH] if request.client else None


def optional_caller(request: Request) -> Principal | None:
    """The caller of a public route: None without a token; a token given must be valid.

    Read by hand, not through the bearer scheme, so the OpenAPI document keeps the route public.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    tokens: Tokens = request.app.state.tokens
    return tokens.verify(token.strip())


class LoginAnswer(commands.LoggedIn):
    """The account logged in, and a token that opens this account (only) in every service."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


def _answer(result: BaseModel | list[BaseModel], status: int = 200) -> JSONResponse:
    if isinstance(result, list):
        return JSONResponse([item.model_dump(mode="json") for item in result], status_code=status)
    return JSONResponse(result.model_dump(mode="json"), status_code=status)


def _operations(caller: Principal | None) -> bool:
    """Whether the caller is operations (a service or operator token with ``identity:support``),
    who get the real answers."""
    return caller is not None and caller.role != "subscriber" and "identity:support" in caller.scopes


class RevocationRequest(BaseModel):
    """One token (its ``jti``) or one operator (every token naming them, whenever minted)."""

    model_config = {"extra": "forbid"}

    jti: str | None = Field(default=None, min_length=1, max_length=64, description="The token's jti claim")
    operator: str | None = Field(default=None, min_length=1, max_length=48, description="An operator's name")
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _one_target(self) -> RevocationRequest:
        if (self.jti is None) == (self.operator is None):
            raise ValueError("give exactly one of jti or operator")
        if self.operator is not None and not is_operator_name(self.operator):
            raise ValueError("an operator's name is letters, digits, . _ -")
        return self

    def target(self) -> tuple[RevokedKind, str]:
        return (RevokedKind.TOKEN, self.jti) if self.jti is not None else (RevokedKind.OPERATOR, str(self.operator))


class Revoked(BaseModel):
    kind: RevokedKind
    value: str


def _real_answer(model: Any) -> dict[int | str, dict[str, Any]]:
    """The answer operations get (a token with ``identity:support``) instead of the uniform 202."""
    return {200: {"model": model, "description": "The real answer, for a token with identity:support"}}


async def _anonymous_request(
    ctx: IdentityContext, command: Callable[..., Awaitable[Any]], body: dict[str, Any], request: Request,
    caller: Principal | None,
) -> JSONResponse:
    """The real answer for operations; the uniform 202 for everyone else."""
    if _operations(caller):
        return _answer(await command(ctx, body))
    try:
        await command(ctx, body, source=client_address(request, ctx.settings))
    except _HIDDEN_FROM_CALLER:
        pass  # written to the audit by the command
    return _answer(RequestAccepted(), 202)


def build_router(ctx: IdentityContext, tokens: Tokens) -> APIRouter:
    router = APIRouter(route_class=AuthenticatedRoute, prefix="/identity", tags=["identity"],
                       responses=problem_responses(400, 422))

    @router.post("/subscribers", status_code=201, summary="Register a subscriber (service token)",
                 response_model=commands.Registered, openapi_extra=json_body(RegistrationCommand),
                 responses=problem_responses(401, 403, 409))
    async def register(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_scope(caller, "identity:register")
        return _answer(await service.register(ctx, body), 201)

    @router.post("/login", summary="Log in (account/contract number or phone + password): a token",
                 response_model=LoginAnswer, openapi_extra=json_body(commands.LoginCommand),
                 responses=problem_responses(401, 404, 429, 503))
    async def login(request: Request, body: dict[str, Any] = Body(...)) -> Any:
        logged_in = await service.login(ctx, body, source=client_address(request, ctx.settings))
        if not tokens.can_issue:
            return problem(503, "token_signing_unconfigured",
                           "the login is right but this service cannot issue tokens (no token private key)")
        token, expires_at = tokens.issue("subscriber", logged_in.account_number)
        answer_ = LoginAnswer(**logged_in.model_dump(), token=token, expires_at=expires_at)
        return _answer(answer_)

    @router.post("/passwords/sms", summary="Get a new password by SMS (the current one keeps working)",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra=json_body(commands.ReissuePasswordCommand),
                 responses={**_real_answer(list[commands.SecretSent]), **problem_responses(400, 401, 403, 404, 429)})
    async def reissue(request: Request, caller: Principal | None = Depends(optional_caller),
                      body: dict[str, Any] = Body(...)) -> Any:
        return await _anonymous_request(ctx, service.reissue_password_by_sms, body, request, caller)

    @router.post("/reset-codes", summary="Forgot password: send a one-time code",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra=json_body(commands.ResetCodeRequestCommand),
                 responses={**_real_answer(commands.SecretSent), **problem_responses(400, 401, 403, 404, 429)})
    async def request_code(request: Request, caller: Principal | None = Depends(optional_caller),
                           body: dict[str, Any] = Body(...)) -> Any:
        return await _anonymous_request(ctx, service.request_reset_code, body, request, caller)

    @router.post("/reset-codes/redeem", summary="Use a one-time code; a new password follows by SMS",
                 response_model=commands.SecretSent, openapi_extra=json_body(commands.RedeemResetCodeCommand),
                 responses=problem_responses(400, 401, 403, 404, 429))
    async def redeem(request: Request, caller: Principal | None = Depends(optional_caller),
                     body: dict[str, Any] = Body(...)) -> Any:
        """Anyone but operations is told ``invalid_code`` whatever the reason a code does not work."""
        try:
            sent = await service.redeem_reset_code(ctx, body, source=client_address(request, ctx.settings))
        except ResetCodeRefused:
            if _operations(caller):
                raise
            raise ResetCodeRefused.hidden() from None
        return _answer(sent)

    @router.post("/support/recoveries", summary="Support restores access after a passport check (service token)",
                 response_model=commands.SecretSent, openapi_extra=json_body(commands.SupportRecoveryCommand),
                 responses=problem_responses(401, 403, 404, 429))
    async def recover(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_scope(caller, "identity:recover")
        operator = as_credentials_say("operator", body.get("operator"), caller.subject)
        return _answer(await service.recover_by_support(ctx, {**body, "operator": operator}))

    @router.post("/revocations", status_code=201, summary="Revoke a service or operator token, or an operator",
                 response_model=Revoked, responses=problem_responses(401, 403))
    async def revoke(caller: Caller, body: RevocationRequest) -> Any:
        """Every service refuses the token (or every token of the operator) once TokenRevoked
        reaches it; identity at once. Never undone."""
        require_scope(caller, "identity:revoke")
        kind, value = body.target()
        await service.revoke(ctx, kind, value, revoked_by=caller.requester, reason=body.reason)
        return _answer(Revoked(kind=kind, value=value), 201)

    return router
