"""The subscriber's session: the access and refresh tokens in the signed, HttpOnly, SameSite=Lax
session cookie (Secure outside development), the CSRF token every form carries, the language.

The cookie keeps nothing the subscriber's browser may not see (their own tokens, signed so it
cannot be altered); the cabinet keeps no state of its own."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from fastapi import Request
from starlette.datastructures import FormData

from billing_cabinet.i18n import chosen
from billing_cabinet.services import Refused, Services


class SignInNeeded(Exception):
    """No sign-in, or one that ended: the sign-in page."""


class CsrfRefused(Exception):
    """A form without the CSRF token of this session."""


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> FormData:
    """The form of a POST, once its CSRF token is the session's (every form carries it)."""
    form = await request.form()
    sent, expected = form.get("csrf"), request.session.get("csrf")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRefused()
    return form


def language(request: Request) -> str:
    return chosen(request.session.get("lang"))


def start(request: Request, login: dict[str, Any], language_of_profile: str | None, now: datetime) -> None:
    """A new sign-in: a new session (a fresh CSRF token: one known before it opens nothing)."""
    request.session.clear()
    request.session.update(lang=chosen(language_of_profile), csrf=secrets.token_urlsafe(32))
    keep_tokens(request, login, now)


def keep_tokens(request: Request, login: dict[str, Any], now: datetime) -> None:
    request.session.update(token=login["token"], refresh=login["refresh_token"],
                           account=login["account_number"], issued=now.timestamp())


def end(request: Request) -> None:
    """Drop the tokens; the language stays for the sign-in page."""
    kept = request.session.get("lang")
    request.session.clear()
    if kept:
        request.session["lang"] = kept


@dataclass
class Subscriber:
    """The signed-in subscriber of one request: calls go with their token, refreshed when old or
    expired. A refresh token works once (the new pair is kept, and a reused one ends the sign-in),
    so one request refreshes at most once, however many calls it makes at the same time."""

    request: Request
    services: Services
    refresh_after_seconds: float
    clock: Callable[[], datetime]
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _refreshed: bool = False

    @property
    def account(self) -> str:
        return str(self.request.session["account"])

    @property
    def token(self) -> str:
        return str(self.request.session["token"])

    async def fresh_token(self) -> str:
        async with self._refreshing:
            age = self.clock().timestamp() - float(self.request.session.get("issued", 0))
            if not self._refreshed and age >= self.refresh_after_seconds:
                await self._refresh()
        return self.token

    async def _refresh(self) -> None:
        try:
            login = await self.services.json("POST", "/identity/tokens/refresh",
                                             json={"refresh_token": self.request.session["refresh"]})
        except Refused as refused:
            if refused.status == 401:
                end(self.request)
                raise SignInNeeded() from refused
            raise
        keep_tokens(self.request, login, self.clock())
        self._refreshed = True

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self.raw(method, path, **kwargs)
        return answer.json() if answer.content else None

    async def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The service's answer to a call with the subscriber's token (a refusal raised as
        :class:`Refused`; an ended sign-in as :class:`SignInNeeded`)."""
        token = await self.fresh_token()
        try:
            return await self.services.request(method, path, token, **kwargs)
        except Refused as refused:
            if refused.status != 401:
                raise
            if refused.code != "token_expired":
                end(self.request)
                raise SignInNeeded() from refused
        async with self._refreshing:
            if self.token == token:  # not refreshed yet by another call of this request
                await self._refresh()
        return await self.services.request(method, path, self.token, **kwargs)


def signed_in(request: Request) -> Subscriber:
    if "token" not in request.session:
        raise SignInNeeded()
    state = request.app.state
    return Subscriber(request, state.services, state.settings.refresh_after_seconds, state.clock)
