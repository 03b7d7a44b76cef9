"""The identity commands over HTTP: the same functions as :mod:`identity.service`.

Bodies are plain JSON objects validated by the commands themselves, so an HTTP caller gets the
same field-level errors as any other: 422 with one entry per field, never quoting the input.
Other refusals: 404 unknown account, 401 wrong login or password, 409 passport already
registered, 403 passport data that do not match, 400 a code that does not work or a contact
that does not match, 429 throttled or locked (with ``until``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from billing_events.runtime import ServiceRuntime
from identity import service
from identity.domain import (
    ContactMismatch,
    IdentityError,
    InvalidCommand,
    LoginRefused,
    PassportAlreadyRegistered,
    RecoveryRefused,
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
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if isinstance(error, InvalidCommand):
        body["errors"] = [
            {"field": e.field, "message": e.message, "rule": e.rule} for e in error.errors
        ]
    elif error.field is not None:
        body["errors"] = [{"field": error.field, "message": error.message, "rule": error.code}]
    if isinstance(error, Throttled) and error.until is not None:
        body["until"] = error.until.isoformat()
    if isinstance(error, ResetCodeRefused):
        body["reason"] = error.reason
    return JSONResponse(body, status_code=status)


class RuntimeHolder:
    """The router is built before the runtime it serves; the runtime is put here after."""

    runtime: ServiceRuntime | None = None


def build_router(holder: RuntimeHolder) -> APIRouter:
    router = APIRouter(prefix="/identity", tags=["identity"])

    async def answer(
        command: Callable[[ServiceRuntime, dict[str, Any]], Awaitable[Any]],
        body: dict[str, Any],
        status: int = 200,
    ) -> Any:
        assert holder.runtime is not None, "the runtime was not attached"
        try:
            result = await command(holder.runtime, body)
        except IdentityError as error:
            return _refusal(error)
        if isinstance(result, list):
            content: Any = [item.model_dump(mode="json") for item in result]
        else:
            content = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        return JSONResponse(content, status_code=status)

    @router.post("/subscribers", status_code=201, summary="Register a subscriber")
    async def register(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.register, body, 201)

    @router.post("/login", summary="Check a login (account/contract number or phone) and password")
    async def login(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.login, body)

    @router.post("/passwords/sms", summary="Get a new password by SMS")
    async def reissue(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.reissue_password_by_sms, body)

    @router.post("/reset-codes", summary="Forgot password: send a one-time code")
    async def request_code(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.request_reset_code, body)

    @router.post("/reset-codes/redeem", summary="Use a one-time code; a new password follows by SMS")
    async def redeem(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.redeem_reset_code, body)

    @router.post("/support/recoveries", summary="Support restores access after a passport check")
    async def recover(body: dict[str, Any] = Body(...)) -> Any:
        return await answer(service.recover_by_support, body)

    return router
