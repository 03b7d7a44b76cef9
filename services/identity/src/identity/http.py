"""The identity commands over HTTP: the same functions as :mod:`identity.service`.

Bodies are plain JSON objects validated by the commands themselves, so an HTTP caller gets the
same field-level errors as any other (the OpenAPI document shows each command's model): 422
with one entry per field, never quoting the input. Other refusals: 404 unknown account, 401
wrong login or password (never saying which), 409 passport already registered, 403 passport
data that do not match, 400 a code that does not work, 429 throttled or locked (with
``until``). Every refusal has the suite's one shape (:class:`billing_events.http.Problem`).

Who may call: login, the reset code (request and redeem) and a new password by SMS are public;
registration (the cabinet's back end, the call centre) and support-assisted recovery need a
service token. Login answers with a short-lived subscriber token for that one account, which
the other services accept for that account only.

A new password by SMS and a reset code, asked for without a service token, are answered 202
with one body (:class:`RequestAccepted`) whether or not the account exists, the phone or
e-mail matches, or the account's own throttle held the request back: the answer tells a
prober nothing, and what really happened is in identity's audit and metrics. A code that does
not work is answered ``invalid_code`` (400) whatever the reason (wrong, none requested, expired,
used), and a login refused or locked out the same for an account and for nobody's. Only the client
address's throttle answers otherwise (429): it is about the caller, not about any account.
The call centre and operations (a service token) get the real answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from billing_events.auth import Caller, Principal, Tokens, require_service
from billing_events.http import json_body, problem, problem_responses
from billing_events.runtime import ServiceRuntime
from identity import service
from identity.domain import (
    ContactMismatch,
    IdentityError,
    InvalidCommand,
    LoginRefused,
    PassportAlreadyRegistered,
    RecoveryRefused,
    RegistrationCommand,
    ResetCodeRefused,
    Throttled,
    TooManyRequests,
    UnknownAccount,
)
from identity.settings import IdentitySettings

_STATUS: tuple[tuple[type[IdentityError], int], ...] = (
    (InvalidCommand, 422),
    (UnknownAccount, 404),
    (LoginRefused, 401),
    (PassportAlreadyRegistered, 409),
    (RecoveryRefused, 403),
    (ResetCodeRefused, 400),
    (ContactMismatch, 400),
    (Throttled, 429),
)


def _refusal(error: IdentityError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
    errors: list[dict[str, Any]] = []
    code = error.code
    if isinstance(error, InvalidCommand):
        code = "invalid_request"  # the suite's code for field errors, whoever found them
        errors = [{"field": e.field, "message": e.message, "code": e.rule} for e in error.errors]
        message = "the request has invalid fields: " + ", ".join(dict.fromkeys(e.field for e in error.errors))
    else:
        message = error.message
        if error.field is not None:
            errors = [{"field": error.field, "message": error.message, "code": error.code}]
    extra: dict[str, Any] = {}
    if isinstance(error, Throttled) and error.until is not None:
        extra["until"] = error.until.isoformat()
    if isinstance(error, ResetCodeRefused):
        extra["reason"] = error.reason
    return problem(status, code, message, errors, **extra)


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


class LoginAnswer(service.LoggedIn):
    """The account logged in, and a token that opens this account (only) in every service."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class RuntimeHolder:
    """The router is built before the runtime it serves; the runtime is put here after."""

    runtime: ServiceRuntime | None = None


def build_router(holder: RuntimeHolder) -> APIRouter:
    router = APIRouter(prefix="/identity", tags=["identity"], responses=problem_responses(422))

    def runtime() -> ServiceRuntime:
        assert holder.runtime is not None, "the runtime was not attached"
        return holder.runtime

    async def answer(
        command: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        status: int = 200,
        **options: Any,
    ) -> Any:
        try:
            result = await command(runtime(), body, **options)
        except IdentityError as error:
            return _refusal(error)
        if isinstance(result, list):
            content: Any = [item.model_dump(mode="json") for item in result]
        else:
            content = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        return JSONResponse(content, status_code=status)

    def source(request: Request) -> str | None:
        settings = runtime().settings
        assert isinstance(settings, IdentitySettings)
        return client_address(request, settings)

    async def anonymous_request(
        command: Callable[..., Awaitable[Any]], body: dict[str, Any], request: Request, caller: Principal | None
    ) -> Any:
        """The real answer for operations (a service token); the uniform 202 for everyone else."""
        if caller is not None and caller.role == "service":
            return await answer(command, body)
        try:
            await command(runtime(), body, source=source(request))
        except _HIDDEN_FROM_CALLER:
            pass  # written to the audit by the command
        except IdentityError as error:
            return _refusal(error)
        return JSONResponse(RequestAccepted().model_dump(mode="json"), status_code=202)

    @router.post("/subscribers", status_code=201, summary="Register a subscriber (service token)",
                 response_model=service.Registered, openapi_extra=json_body(RegistrationCommand),
                 responses=problem_responses(401, 403, 409))
    async def register(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_service(caller)
        return await answer(service.register, body, 201)

    @router.post("/login", summary="Log in (account/contract number or phone + password): a token",
                 response_model=LoginAnswer, openapi_extra=json_body(service.LoginCommand),
                 responses=problem_responses(401, 404, 429, 503))
    async def login(request: Request, body: dict[str, Any] = Body(...)) -> Any:
        try:
            logged_in = await service.login(runtime(), body, source=source(request))
        except IdentityError as error:
            return _refusal(error)
        tokens = runtime().tokens
        if not tokens.can_issue:
            return problem(503, "token_signing_unconfigured",
                           "the login is right but this service cannot issue tokens (no token private key)")
        token, expires_at = tokens.issue("subscriber", logged_in.account_number)
        answer_ = LoginAnswer(**logged_in.model_dump(), token=token, expires_at=expires_at)
        return JSONResponse(answer_.model_dump(mode="json"))

    @router.post("/passwords/sms", summary="Get a new password by SMS (the current one keeps working)",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra=json_body(service.ReissuePasswordCommand), responses=problem_responses(401, 429))
    async def reissue(request: Request, caller: Principal | None = Depends(optional_caller),
                      body: dict[str, Any] = Body(...)) -> Any:
        return await anonymous_request(service.reissue_password_by_sms, body, request, caller)

    @router.post("/reset-codes", summary="Forgot password: send a one-time code",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra=json_body(service.ResetCodeRequestCommand), responses=problem_responses(401, 429))
    async def request_code(request: Request, caller: Principal | None = Depends(optional_caller),
                           body: dict[str, Any] = Body(...)) -> Any:
        return await anonymous_request(service.request_reset_code, body, request, caller)

    @router.post("/reset-codes/redeem", summary="Use a one-time code; a new password follows by SMS",
                 response_model=service.SecretSent, openapi_extra=json_body(service.RedeemResetCodeCommand),
                 responses=problem_responses(400, 429))
    async def redeem(request: Request, caller: Principal | None = Depends(optional_caller),
                     body: dict[str, Any] = Body(...)) -> Any:
        """Anyone but operations is told ``invalid_code`` whatever the reason a code does not work."""
        try:
            sent = await service.redeem_reset_code(runtime(), body, source=source(request))
        except ResetCodeRefused as refusal:
            operations = caller is not None and caller.role == "service"
            return _refusal(refusal if operations else ResetCodeRefused.hidden())
        except IdentityError as error:
            return _refusal(error)
        return JSONResponse(sent.model_dump(mode="json"))

    @router.post("/support/recoveries", summary="Support restores access after a passport check (service token)",
                 response_model=service.SecretSent, openapi_extra=json_body(service.SupportRecoveryCommand),
                 responses=problem_responses(401, 403, 404, 429))
    async def recover(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_service(caller)
        return await answer(service.recover_by_support, body)

    return router
