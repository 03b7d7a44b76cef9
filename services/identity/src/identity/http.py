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
used, the account's redeem throttle), and a login refused or locked out the same for an account
and for nobody's. Only the client address's throttle answers otherwise (429): it is about the
caller, not about any account; and so does a full queue of slow hashes (429 ``hashing_busy``),
before any work. Every 429 carries ``Retry-After``.
The call centre and operations (a token with ``identity:support``) get the real answer.

The subscriber's cabinet: self-registration (``POST /identity/registrations``) is public and
throttled per client address like the requests above; login answers an access token and a
refresh token (``POST /identity/tokens/refresh`` rotates it; ``POST /identity/sign-out`` ends
the sign-in); the ``/identity/me`` routes take the account from a subscriber token of a sign-in
still open (401 ``token_revoked`` otherwise) and refuse service tokens (403 ``subscriber_only``).
Every route says who may call it in the OpenAPI document (``x-callers``: ``anonymous``,
``subscriber``, ``service``); docs/cabinet-api.md walks through them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from billing_events.auth import AuthenticatedRoute, Caller, Principal, Tokens, as_credentials_say, require_scope
from billing_events.keys import is_operator_name
from billing_contracts.catalog.identity import RevokedKind
from billing_events.http import ApiError, callers, json_body, problem, problem_responses
from billing_events.logging import get_logger
from identity import commands, service, store
from identity.context import IdentityContext
from identity.domain import (
    ContactMismatch,
    RegistrationCommand,
    ResetCodeRefused,
    TooManyRequests,
    UnknownAccount,
)
from identity.service import cabinet, sessions
from identity.settings import IdentitySettings

log = get_logger(__name__)

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


class ProxyWatch:
    """Warns once when the first ``sample`` clients of a door without a client address header
    all have private addresses: the look of a service behind a proxy that was not told so,
    where every client is the proxy and one client's failures lock every client out."""

    def __init__(self, settings: IdentitySettings, sample: int = 20) -> None:
        self._watching = settings.client_address_header is None
        self._sample = sample
        self._private = 0

    def saw(self, address: str | None) -> None:
        if not self._watching or address is None:
            return
        try:
            private = ipaddress.ip_address(address).is_private
        except ValueError:
            private = False  # not an IP address (a test client's name): not a proxy's peer either
        if not private:
            self._watching = False  # a public client reaches the door itself: no proxy
            return
        self._private += 1
        if self._private == self._sample:
            self._watching = False
            log.warning("every client so far has a private address and no client address header is set: "
                        "behind a proxy every client is the proxy for the throttles; set "
                        "BILLING_IDENTITY_CLIENT_ADDRESS_HEADER to the header the proxy writes",
                        clients_seen=self._sample)


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
    """The account logged in, a token that opens this account (only) in every service, and the
    refresh token that gets the next one (once) until the sign-in ends."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


class SignedOut(BaseModel):
    sessions_ended: int


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
    ctx: IdentityContext, command: Callable[..., Awaitable[Any]], body: dict[str, Any], source: str | None,
    caller: Principal | None,
) -> JSONResponse:
    """The real answer for operations; the uniform 202 for everyone else."""
    if _operations(caller):
        return _answer(await command(ctx, body))
    try:
        await command(ctx, body, source=source)
    except _HIDDEN_FROM_CALLER:
        pass  # written to the audit by the command
    return _answer(RequestAccepted(), 202)


def build_router(ctx: IdentityContext, tokens: Tokens) -> APIRouter:
    router = APIRouter(route_class=AuthenticatedRoute, prefix="/identity", tags=["identity"],
                       responses=problem_responses(400, 422))
    watch = ProxyWatch(ctx.settings)

    def source(request: Request) -> str | None:
        address = client_address(request, ctx.settings)
        watch.saw(address)
        return address

    def signed_in(started: commands.SessionStarted) -> JSONResponse:
        if not tokens.can_issue:
            return problem(503, "token_signing_unconfigured",
                           "the login is right but this service cannot issue tokens (no token private key)")
        token, expires_at = tokens.issue("subscriber", started.account_number, session=started.session,
                                          language=started.language)
        return _answer(LoginAnswer(account_number=started.account_number, contract_number=started.contract_number,
                                   token=token, expires_at=expires_at, refresh_token=started.refresh_token,
                                   refresh_expires_at=started.refresh_expires_at))

    async def subscriber_session(caller: Caller) -> store.Session:
        """The caller's open sign-in: a subscriber token only, of a session not ended."""
        if caller.role != "subscriber":
            raise ApiError(403, "subscriber_only", "the subscriber's own route: a subscriber token is required")
        return await sessions.require_live_session(ctx, caller)

    Session = Depends(subscriber_session)

    @router.post("/subscribers", status_code=201, summary="Register a subscriber (service token)",
                 response_model=commands.Registered,
                 openapi_extra={**json_body(RegistrationCommand), **callers("service")},
                 responses=problem_responses(401, 403, 409))
    async def register(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_scope(caller, "identity:register")
        return _answer(await service.register(ctx, body), 201)

    @router.post("/registrations", status_code=201, summary="Sign the contract on the site: a new account",
                 response_model=commands.SelfRegistered,
                 openapi_extra={**json_body(RegistrationCommand), **callers("anonymous")},
                 responses=problem_responses(429))
    async def register_self(request: Request, body: dict[str, Any] = Body(...)) -> Any:
        """The password goes by SMS to the phone given. The answer never says whether the
        passport or the phone already held accounts: a person may sign several contracts."""
        return _answer(await service.register_self(ctx, body, source=client_address(request, ctx.settings)), 201)

    @router.post("/login", summary="Log in (account/contract number or phone + password): tokens",
                 response_model=LoginAnswer,
                 openapi_extra={**json_body(commands.LoginCommand), **callers("anonymous")},
                 responses=problem_responses(401, 404, 429, 503))
    async def login(request: Request, body: dict[str, Any] = Body(...)) -> Any:
        logged_in = await service.login(ctx, body, source=source(request))
        if not tokens.can_issue:
            return problem(503, "token_signing_unconfigured",
                           "the login is right but this service cannot issue tokens (no token private key)")
        return signed_in(await sessions.start_session(ctx, logged_in.account_number))

    @router.post("/tokens/refresh", summary="A new access token for a refresh token (used up; the next one is given)",
                 response_model=LoginAnswer,
                 openapi_extra={**json_body(commands.RefreshCommand), **callers("anonymous")},
                 responses=problem_responses(401, 503))
    async def refresh(body: dict[str, Any] = Body(...)) -> Any:
        """A refresh token works once: using one a second time ends its sign-in."""
        return signed_in(await sessions.refresh(ctx, body))

    @router.post("/sign-out", summary="Sign out: this sign-in, or every one of the account",
                 response_model=SignedOut, openapi_extra=callers("subscriber"),
                 responses=problem_responses(401, 403))
    async def sign_out(session: store.Session = Session,
                       everywhere: bool = Query(False, description="End every sign-in of the account")) -> Any:
        return _answer(SignedOut(sessions_ended=await sessions.sign_out(ctx, session, everywhere=everywhere)))

    @router.get("/me", summary="The subscriber's profile: contract, region, masked contacts, language, notices",
                response_model=commands.ProfileView, openapi_extra=callers("subscriber"),
                responses=problem_responses(401, 403))
    async def me(session: store.Session = Session) -> Any:
        return _answer(await cabinet.profile(ctx, session.account_number))

    @router.get("/me/accounts", summary="The accounts the subscriber holds (same phone or passport)",
                response_model=list[commands.AccountView], openapi_extra=callers("subscriber"),
                responses=problem_responses(401, 403))
    async def my_accounts(session: store.Session = Session) -> Any:
        return _answer(await cabinet.accounts(ctx, session.account_number))

    @router.post("/me/accounts/{account}/token", summary="Open another of one's accounts: tokens naming it",
                 response_model=LoginAnswer, openapi_extra=callers("subscriber"),
                 responses=problem_responses(401, 403, 503))
    async def open_account(account: str, session: store.Session = Session) -> Any:
        """Only among the accounts ``/me/accounts`` lists; a new sign-in of that account."""
        await cabinet.require_held(ctx, session.account_number, account)
        return signed_in(await sessions.start_session(ctx, account))

    @router.put("/me/password", status_code=204, summary="Change the password (the current one required)",
                openapi_extra={**json_body(commands.ChangePasswordCommand), **callers("subscriber")},
                responses=problem_responses(400, 401, 403, 429))
    async def change_password(session: store.Session = Session, body: dict[str, Any] = Body(...)) -> Response:
        """Every other sign-in of the account ends; this one goes on."""
        await cabinet.change_password(ctx, session.account_number, session.id, body)
        return Response(status_code=204)

    @router.post("/me/contact-changes", status_code=202,
                 summary="Change the phone or e-mail: a code goes to the new one",
                 response_model=commands.ContactCodeSent,
                 openapi_extra={**json_body(commands.ContactChangeCommand), **callers("subscriber")},
                 responses=problem_responses(401, 403, 429))
    async def change_contact(session: store.Session = Session, body: dict[str, Any] = Body(...)) -> Any:
        """Counted with every password and code request of the account (five an hour)."""
        return _answer(await cabinet.request_contact_change(ctx, session.account_number, body), 202)

    @router.post("/me/contact-changes/confirm", summary="The code from the new contact: the change is made",
                 response_model=commands.ProfileView,
                 openapi_extra={**json_body(commands.ConfirmContactCommand), **callers("subscriber")},
                 responses=problem_responses(400, 401, 403))
    async def confirm_contact(session: store.Session = Session, body: dict[str, Any] = Body(...)) -> Any:
        """The previous phone or e-mail is told of the change."""
        return _answer(await cabinet.confirm_contact_change(ctx, session.account_number, body))

    @router.put("/me/language", status_code=204, summary="The language of messages and of the cabinet",
                openapi_extra={**json_body(commands.LanguageCommand), **callers("subscriber")},
                responses=problem_responses(401, 403))
    async def change_language(session: store.Session = Session, body: dict[str, Any] = Body(...)) -> Response:
        await cabinet.change_language(ctx, session.account_number, body)
        return Response(status_code=204)

    @router.put("/me/notices", summary="Which notices to get (passwords, codes and security notices always go)",
                response_model=commands.NoticePreferences,
                openapi_extra={**json_body(commands.NoticePreferencesCommand), **callers("subscriber")},
                responses=problem_responses(401, 403))
    async def notice_preferences(session: store.Session = Session, body: dict[str, Any] = Body(...)) -> Any:
        return _answer(await cabinet.set_notice_preferences(ctx, session.account_number, body))

    @router.post("/passwords/sms", summary="Get a new password by SMS (the current one keeps working)",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra={**json_body(commands.ReissuePasswordCommand), **callers("anonymous", "service")},
                 responses={**_real_answer(list[commands.SecretSent]), **problem_responses(400, 401, 403, 404, 429)})
    async def reissue(request: Request, caller: Principal | None = Depends(optional_caller),
                      body: dict[str, Any] = Body(...)) -> Any:
        return await _anonymous_request(ctx, service.reissue_password_by_sms, body, source(request), caller)

    @router.post("/reset-codes", summary="Forgot password: send a one-time code",
                 status_code=202, response_model=RequestAccepted,
                 openapi_extra={**json_body(commands.ResetCodeRequestCommand), **callers("anonymous", "service")},
                 responses={**_real_answer(commands.SecretSent), **problem_responses(400, 401, 403, 404, 429)})
    async def request_code(request: Request, caller: Principal | None = Depends(optional_caller),
                           body: dict[str, Any] = Body(...)) -> Any:
        return await _anonymous_request(ctx, service.request_reset_code, body, source(request), caller)

    @router.post("/reset-codes/redeem", summary="Use a one-time code; a new password follows by SMS",
                 response_model=commands.SecretSent,
                 openapi_extra={**json_body(commands.RedeemResetCodeCommand), **callers("anonymous", "service")},
                 responses=problem_responses(400, 401, 403, 404, 429))
    async def redeem(request: Request, caller: Principal | None = Depends(optional_caller),
                     body: dict[str, Any] = Body(...)) -> Any:
        """Anyone but operations is told ``invalid_code`` whatever the reason a code does not work,
        the account's own throttle included (it counts accounts that do not exist alike)."""
        try:
            sent = await service.redeem_reset_code(ctx, body, source=source(request))
        except (ResetCodeRefused, TooManyRequests):
            if _operations(caller):
                raise
            raise ResetCodeRefused.hidden() from None
        return _answer(sent)

    @router.post("/support/recoveries", summary="Support restores access after a passport check (service token)",
                 response_model=commands.SecretSent,
                 openapi_extra={**json_body(commands.SupportRecoveryCommand), **callers("service")},
                 responses=problem_responses(401, 403, 404, 429))
    async def recover(caller: Caller, body: dict[str, Any] = Body(...)) -> Any:
        require_scope(caller, "identity:recover")
        operator = as_credentials_say("operator", body.get("operator"), caller.subject)
        return _answer(await service.recover_by_support(ctx, {**body, "operator": operator}))

    @router.post("/revocations", status_code=201, summary="Revoke a service or operator token, or an operator",
                 response_model=Revoked, openapi_extra=callers("service"), responses=problem_responses(401, 403))
    async def revoke(caller: Caller, body: RevocationRequest) -> Any:
        """Every service refuses the token (or every token of the operator) once TokenRevoked
        reaches it; identity at once. Never undone."""
        require_scope(caller, "identity:revoke")
        kind, value = body.target()
        await service.revoke(ctx, kind, value, revoked_by=caller.requester, reason=body.reason)
        return _answer(Revoked(kind=kind, value=value), 201)

    return router
