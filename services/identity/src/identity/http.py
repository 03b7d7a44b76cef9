"""The identity commands over HTTP: the same functions as :mod:`identity.service`.

Bodies are plain JSON objects validated by the commands themselves, so an HTTP caller gets the
same field-level errors as any other (the OpenAPI document shows each command's model): 422
with one entry per field, never quoting the input. Other refusals: 404 unknown account, 401
wrong login or password, 409 passport already registered, 403 passport data that do not
match, 400 a code that does not work or a contact that does not match, 429 throttled or locked
(with ``until``). Every refusal has the suite's one shape (:class:`billing_events.http.Problem`).

Who may call: login, the reset code (request and redeem) and a new password by SMS are public
(each is throttled per account); registration (the cabinet's back end, the call centre) and
support-assisted recovery need a service token. Login answers with a short-lived subscriber
token for that one account, which the other services accept for that account only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from billing_events.auth import Caller, require_service
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
    UnknownAccount,
)

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
        command: Callable[[ServiceRuntime, dict[str, Any]], Awaitable[Any]],
        body: dict[str, Any],
        status: int = 200,
    ) -> Any:
        try:
            result = await command(runtime(), body)
        except IdentityError as error:
            return _refusal(error)
        if isinstance(result, list):
            content: Any = [item.model_dump(mode="json") for item in result]
        else:
            content = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        return JSONResponse(content, status_code=status)

    @router.post("/subscribers", status_code=201, summary="Register a subscriber (service token)",
                 response_model=service.Registered, openapi_extra=json_body(RegistrationCommand),
                 responses=problem_responses(401, 403, 409))
    async def register(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_service(caller)
        return await answer(service.register, body, 201)

    @router.post("/login", summary="Log in (account/contract number or phone + password): a token",
                 response_model=LoginAnswer, openapi_extra=json_body(service.LoginCommand),
                 responses=problem_responses(401, 404, 429, 503))
    async def login(body: dict[str, Any] = Body(...)) -> Any:
        try:
            logged_in = await service.login(runtime(), body)
        except IdentityError as error:
            return _refusal(error)
        tokens = runtime().tokens
        if not tokens.can_issue:
            return problem(503, "token_signing_unconfigured",
                           "the login is right but this service cannot issue tokens (no signing key)")
        token, expires_at = tokens.issue("subscriber", logged_in.account_number)
        answer_ = LoginAnswer(**logged_in.model_dump(), token=token, expires_at=expires_at)
        return JSONResponse(answer_.model_dump(mode="json"))

    @router.post("/passwords/sms", summary="Get a new password by SMS",
                 response_model=list[service.SecretSent], openapi_extra=json_body(service.ReissuePasswordCommand),
                 responses=problem_responses(404, 429))
    async def reissue(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.reissue_password_by_sms, body)

    @router.post("/reset-codes", summary="Forgot password: send a one-time code",
                 response_model=service.SecretSent, openapi_extra=json_body(service.ResetCodeRequestCommand),
                 responses=problem_responses(400, 404, 429))
    async def request_code(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.request_reset_code, body)

    @router.post("/reset-codes/redeem", summary="Use a one-time code; a new password follows by SMS",
                 response_model=service.SecretSent, openapi_extra=json_body(service.RedeemResetCodeCommand),
                 responses=problem_responses(400, 404, 429))
    async def redeem(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.redeem_reset_code, body)

    @router.post("/support/recoveries", summary="Support restores access after a passport check (service token)",
                 response_model=service.SecretSent, openapi_extra=json_body(service.SupportRecoveryCommand),
                 responses=problem_responses(401, 403, 404, 429))
    async def recover(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_service(caller)
        return await answer(service.recover_by_support, body)

    return router
