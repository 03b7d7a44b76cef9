"""The cabinet's pages: each a bookmarkable URL, each form a POST carrying the session's CSRF
token, each answer rendered on the server (no script is needed, none is inline).

An account's pages carry its number (``/a/<account>/...``); the services decide whether the
signed-in subscriber may see it (``403 wrong_account`` otherwise), the cabinet only relays their
word. Logs name the route's template, never an account, a login or a form's values."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from billing_cabinet import i18n, session
from billing_cabinet.i18n import LANGUAGES, _
from billing_cabinet.services import Refused, Services
from billing_cabinet.session import CsrfRefused, SignInNeeded, Subscriber, checked_form, signed_in
from billing_cabinet.settings import CabinetSettings

HERE = Path(__file__).parent
log = logging.getLogger("billing_cabinet")
BLOCK_DAYS_A_YEAR = 30
LAST_PAYMENTS = 5
NOTICES = ("balance_low", "payment_credited", "tariff_changed", "voluntary_block", "debt_block")
"""The notices a subscriber may turn off (passwords, codes and security notices always go)."""
CONTACT_CODE_SENT_TO = "contact_code_sent_to"
"""The session keeps where a contact change's code went (masked) until the code is given."""


@dataclass(frozen=True)
class BundleSaving:
    parts: str
    """The parts' names, as the region sells them apart"""
    monthly_minor: int


def bundle_savings(plans: list[dict[str, Any]]) -> dict[str, BundleSaving]:
    """What each bundle of the region saves a month against its parts bought apart (a bundle
    whose parts are not all sold in the region is compared with nothing)."""
    by_code = {plan["code"]: plan for plan in plans}
    return {plan["code"]: BundleSaving(
                parts=" + ".join(by_code[part]["name"] for part in plan["parts"]),
                monthly_minor=sum(by_code[part]["monthly_price_minor"] for part in plan["parts"])
                - plan["monthly_price_minor"])
            for plan in plans if plan["parts"] and all(part in by_code for part in plan["parts"])}


def build(settings: CabinetSettings, clock: Callable[[], datetime] | None = None,
          transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The cabinet over the services of ``settings``. ``clock`` (default: the wall clock) says
    how old a token is and which billing day it is where no answer of the services says it; a
    test gives the suite's clock."""
    zone = ZoneInfo(settings.time_zone)
    now = clock or (lambda: datetime.now(UTC))
    services = Services(settings.service_urls, settings.service_timeout_seconds, transport,
                        settings.catalog_cache_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.close()

    app = FastAPI(title="Subscriber cabinet", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.services = settings, services
    app.state.clock = now
    app.state.today = lambda: now().astimezone(zone).date()
    templates = _templates(settings)
    # A top-up's form is answered with a redirect to the payment page, which form-action governs too.
    payment_pages = " ".join(["{0.scheme}://{0.netloc}".format(urlsplit(settings.browser_ledger_url)),
                              *settings.payment_page_origins])
    policy = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none';"
              f" base-uri 'none'; frame-ancestors 'none'; form-action 'self' {payment_pages}")

    @app.middleware("http")
    async def headers_and_log(request: Request, call_next: Callable[..., Any]) -> Response:
        began = time.perf_counter()
        i18n.current_language.set(session.language(request))  # the messages of the whole request
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"  # the back button after sign-out shows nothing
        route = getattr(request.scope.get("route"), "path", "(no route)")
        elapsed_ms = round((time.perf_counter() - began) * 1000)
        log.info("%s %s %s %dms", request.method, route, response.status_code, elapsed_ms,
                 extra={"method": request.method, "route": route, "status": response.status_code, "ms": elapsed_ms})
        return response

    app.add_middleware(SessionMiddleware, secret_key=settings.session_secret.get_secret_value(),  # type: ignore[union-attr]
                       session_cookie="cabinet_session", max_age=None, same_site="lax",
                       https_only=settings.secure_cookie)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        i18n.current_language.set(session.language(request))
        page = templates.get_template(template).render(
            request=request, csrf=session.csrf_token(request), lang=session.language(request),
            languages=LANGUAGES, account=request.session.get("account"), flash=request.session.pop("flash", None),
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context)
        return HTMLResponse(page, status_code=status)

    def words(request: Request, refused: Refused) -> str:
        known = {
            "login_refused": _("Wrong login or password."),
            "wrong_account": _("This account is not among yours."),
            "insufficient_funds": _("There is not enough money on the account."),
            "insufficient_bonus": _("There are not enough bonuses for this."),
            "unknown_account": _("There is no such account."),
            "invalid_credit_limit": _("This credit limit is more than you may choose yourself: for a larger one,"
                                      " call 0890."),
            "debt_outstanding": _("Pay the debt first: a prepaid account cannot owe."),
        }
        text = known.get(refused.code, refused.message)
        if refused.until:
            text += " " + _("Try again after {moment}.").format(moment=i18n.moment(refused.until, settings.time_zone))
        return text

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, _exc: SignInNeeded) -> Response:
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        return render(request, "error.html", 403, message=_("This form has expired. Open the page again and repeat."))

    @app.exception_handler(Refused)
    async def refused_page(request: Request, refused: Refused) -> Response:
        status = refused.status if refused.status in (403, 404, 409, 422) else 502
        return render(request, "error.html", status, message=words(request, refused))

    @app.exception_handler(httpx.HTTPError)
    async def unavailable(request: Request, _exc: httpx.HTTPError) -> Response:
        return render(request, "error.html", 503, message=_("The service does not answer just now. Try again in a"
                                                            " minute."))

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", exc.status_code, message=_("There is no such page."))

    def flash(request: Request, message: str) -> None:
        request.session["flash"] = message

    def home(account: str, page: str = "") -> RedirectResponse:
        return RedirectResponse(f"/a/{account}{page}", status_code=303)

    # --- sign-in, sign-out, language -------------------------------------------------------

    @app.get("/")
    async def root(request: Request) -> Response:
        if "account" in request.session:
            return home(request.session["account"])
        return RedirectResponse("/sign-in", status_code=303)

    @app.get("/health/live")
    @app.get("/health/ready")
    async def health() -> dict[str, str]:
        """The probes' answer: the cabinet holds no state and needs no service to serve a page
        (a page says when one does not answer), so serving is being alive and being ready."""
        return {"status": "ok"}

    @app.get("/sign-in")
    async def sign_in_page(request: Request) -> Response:
        return render(request, "sign_in.html")

    @app.post("/sign-in")
    async def sign_in(request: Request, form: FormData = Depends(checked_form)) -> Response:
        login, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
        if not login or not password:
            return render(request, "sign_in.html", 422, error=_("Enter your login and password."), login=login)
        try:
            answer = await services.json("POST", "/identity/login", json={"login": login, "password": password},
                                         client=client_address(request))
        except Refused as refused:
            if refused.status >= 500:
                raise
            return render(request, "sign_in.html", refused.status, error=words(request, refused), login=login)
        profile = await services.json("GET", "/identity/me", answer["token"])
        session.start(request, answer, profile.get("language"), now())
        return home(answer["account_number"])

    @app.post("/sign-in/password-by-sms")
    async def password_by_sms(request: Request, form: FormData = Depends(checked_form)) -> Response:
        login = str(form.get("login", "")).strip()
        try:
            await services.json("POST", "/identity/passwords/sms", json={"login": login},
                                client=client_address(request))
        except Refused as refused:
            if refused.status == 429:
                return render(request, "sign_in.html", 429, error=words(request, refused), login=login)
            # any other refusal: the same answer, which never says whether the login exists
        return render(request, "sign_in.html", notice=_(
            "If this login is ours, a new password is on its way to the registered mobile phone."), login=login)

    def registration_fields() -> list[tuple[str, str, str, str]]:
        """The contract form's fields: name, label, input type, autocomplete."""
        return [("surname", _("Surname"), "text", "family-name"), ("first_name", _("First name"), "text", "given-name"),
                ("patronymic", _("Patronymic (if any)"), "text", "additional-name"),
                ("date_of_birth", _("Date of birth"), "date", "bday"),
                ("passport_series", _("Passport series (4 digits)"), "text", "off"),
                ("passport_number", _("Passport number (6 digits)"), "text", "off"),
                ("issuing_authority", _("Issued by"), "text", "off"), ("date_of_issue", _("Date of issue"), "date", "off"),
                ("mobile_phone", _("Mobile phone (the password comes to it by SMS)"), "tel", "tel"),
                ("email", _("E-mail (if you like)"), "email", "email")]

    async def register_page(request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        catalog = await services.catalog("/tariff/catalog")
        return render(request, "register.html", status, fields=registration_fields(), regions=catalog["regions"],
                      title=_("Sign the contract"), **context)

    @app.get("/register")
    async def register_form(request: Request) -> Response:
        return await register_page(request, typed={})

    @app.post("/register")
    async def register(request: Request, form: FormData = Depends(checked_form)) -> Response:
        typed = {name: str(form.get(name, "")).strip() for name, *_rest in registration_fields()}
        typed["region"] = str(form.get("region", ""))
        body = {**typed, "contract_accepted": form.get("contract_accepted") == "yes", "legal_status": "person",
                "language": session.language(request)}
        try:
            answer = await services.json("POST", "/identity/registrations", json=body, client=client_address(request))
        except Refused as refused:
            if refused.status >= 500:
                raise
            passport = {"passport_series", "passport_number"}  # never echoed back into the page
            return await register_page(request, refused.status, error=words(request, refused),
                                       errors=refused.field_messages(),
                                       typed={k: v for k, v in typed.items() if k not in passport})
        return render(request, "registered.html", registered=answer, title=_("Sign the contract"))

    @app.get("/forgot-password")
    async def forgot_password_page(request: Request) -> Response:
        return render(request, "forgot_password.html", title=_("Forgot password"))

    @app.post("/forgot-password")
    async def send_reset_code(request: Request, form: FormData = Depends(checked_form)) -> Response:
        """A one-time code to the registered phone or e-mail (the answer is the same whether or not
        they match an account: it never tells a prober which exist)."""
        login, contact = str(form.get("login", "")).strip(), str(form.get("contact", "")).strip()
        body = {"login": login, ("email" if "@" in contact else "phone"): contact}
        try:
            await services.json("POST", "/identity/reset-codes", json=body, client=client_address(request))
        except Refused as refused:
            if refused.status >= 500:
                raise
            return render(request, "forgot_password.html", refused.status, error=words(request, refused),
                          title=_("Forgot password"))
        return render(request, "forgot_password.html", login=login, code_sent=True, title=_("Forgot password"))

    @app.post("/forgot-password/code")
    async def redeem_reset_code(request: Request, form: FormData = Depends(checked_form)) -> Response:
        login, code = str(form.get("login", "")).strip(), str(form.get("code", "")).strip()
        try:
            await services.json("POST", "/identity/reset-codes/redeem", json={"login": login, "code": code},
                                client=client_address(request))
        except Refused as refused:
            if refused.status >= 500:
                raise
            return render(request, "forgot_password.html", refused.status, login=login, code_sent=True,
                          error=_("This code does not work: check it, or ask for a new one."),
                          title=_("Forgot password"))
        return render(request, "sign_in.html", login=login, notice=_(
            "A new password is on its way by SMS. Sign in with it."), title=_("Sign in"))

    @app.post("/sign-out")
    async def sign_out(request: Request, form: FormData = Depends(checked_form)) -> Response:
        if "token" in request.session:
            everywhere = "true" if form.get("everywhere") else "false"
            try:
                await services.json("POST", "/identity/sign-out", request.session["token"],
                                    params={"everywhere": everywhere})
            except Refused:
                pass  # an ended or expired sign-in: nothing left to end
        session.end(request)
        flash(request, _("You have signed out."))
        return RedirectResponse("/sign-in", status_code=303)

    @app.post("/language")
    async def switch_language(request: Request, form: FormData = Depends(checked_form)) -> Response:
        chosen = i18n.chosen(str(form.get("lang")))
        request.session["lang"] = chosen
        if "token" in request.session:
            await signed_in(request).call("PUT", "/identity/me/language", json={"language": chosen})
        back = str(form.get("next", "/"))
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/", status_code=303)

    # --- the account's pages ---------------------------------------------------------------

    async def optional(call: Any, *codes: str) -> Any:
        try:
            return await call
        except Refused as refused:
            if refused.code in codes:
                return None
            raise

    def period(first: date, last: date) -> dict[str, str]:
        """The statement's query for the billing days ``first`` to ``last``, both included."""
        start = datetime.combine(first, datetime.min.time(), zone)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
        return {"from": start.isoformat(), "to": end.isoformat()}

    @app.get("/a/{account}")
    async def overview(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        return await _overview_page(request, account, who)

    async def _overview_page(request: Request, account: str, who: Subscriber, status: int = 200,
                             credit_error: str | None = None) -> Response:
        today = app.state.today()
        balance, subscription, forecast, statement, profile, accounts = await asyncio.gather(
            who.call("GET", f"/ledger/accounts/{account}"),
            who.call("GET", f"/tariff/accounts/{account}"),
            optional(who.call("GET", f"/tariff/accounts/{account}/forecast"), "not_active"),
            who.call("GET", f"/ledger/accounts/{account}/statement",
                     params=period(today - timedelta(days=92), today + timedelta(days=1))),
            who.call("GET", "/identity/me"), who.call("GET", "/identity/me/accounts"))
        plans = await services.catalog(f"/tariff/regions/{subscription['region']}/plans")
        today = date.fromisoformat(forecast["today"]) if forecast else today
        payments = [line for line in statement["lines"] if line["kind"] == "payment"][-LAST_PAYMENTS:][::-1]
        return render(request, "overview.html", status, balance=balance, subscription=subscription, forecast=forecast,
                      payments=payments, currency=statement["currency"], profile=profile,
                      state=_state(balance, subscription, today), plan_names={p["code"]: p["name"] for p in plans},
                      accounts=accounts, credit_error=credit_error, title=_("Overview"))

    @app.post("/a/{account}/payment-type")
    async def change_payment_type(request: Request, account: str, form: FormData = Depends(checked_form),
                                  who: Subscriber = Depends(signed_in)) -> Response:
        """Credit on (with the limit typed) or off (back to prepaid, which has no limit)."""
        credit = form.get("payment_type") == "credit"
        minor = _minor_units(str(form.get("credit_limit", ""))) if credit else 0
        if minor is None:
            return await _overview_page(request, account, who, 422,
                                        _("Enter a credit limit more than zero, e.g. 500.00."))
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        try:
            await who.call("PUT", f"/ledger/accounts/{account}/payment-type", json={
                "payment_type": "credit" if credit else "prepaid",
                "credit_limit": {"minor": minor, "currency": balance["main"]["currency"]}})
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return await _overview_page(request, account, who, refused.status, words(request, refused))
        flash(request, _("Credit is on, up to {limit}.").format(limit=i18n.money(minor, balance["main"]["currency"]))
              if credit else _("Credit is off: the account is prepaid."))
        return home(account)

    @app.post("/accounts/switch")
    async def switch_account(request: Request, form: FormData = Depends(checked_form),
                             who: Subscriber = Depends(signed_in)) -> Response:
        """Open another account of the subscriber's (a sign-in of its own); this one is ended."""
        chosen = str(form.get("account", ""))
        previous = await who.fresh_token()
        login = await who.call("POST", f"/identity/me/accounts/{chosen}/token")
        session.keep_tokens(request, login, now())
        try:
            await services.json("POST", "/identity/sign-out", previous)
        except Refused:
            pass  # already ended: nothing to end
        return home(login["account_number"])

    @app.get("/a/{account}/statement")
    async def statement(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        first, last = _period_asked(request, app.state.today())
        lines = await who.call("GET", f"/ledger/accounts/{account}/statement", params=period(first, last))
        kinds = {"payment": _("payment"), "charge": _("charge"), "transfer": _("transfer"),
                 "reversal": _("correction"), "refund": _("refund"), "suspense_resolution": _("payment found")}
        return render(request, "statement.html", statement=lines, first=first, last=last, kinds=kinds,
                      query=f"from={first.isoformat()}&to={last.isoformat()}", title=_("Statement"))

    @app.get("/a/{account}/statement.csv")
    async def statement_csv(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        first, last = _period_asked(request, app.state.today())
        answer = await who.raw("GET", f"/ledger/accounts/{account}/statement",
                               params={**period(first, last), "format": "csv"}, accept="text/csv")
        return Response(answer.content, media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="statement-{first}-{last}.csv"'})

    @app.get("/a/{account}/receipts/{transaction_id}.pdf")
    async def receipt(request: Request, account: str, transaction_id: str,
                      who: Subscriber = Depends(signed_in)) -> Response:
        answer = await who.raw("GET", f"/ledger/accounts/{account}/payments/{transaction_id}/receipt.pdf",
                               accept="application/pdf")
        return Response(answer.content, media_type="application/pdf", headers={
            "Content-Disposition": 'attachment; filename="receipt.pdf"'})

    async def bonus_page(request: Request, account: str, who: Subscriber, status: int = 200,
                         error: str | None = None) -> Response:
        history, campaigns, rewards = await asyncio.gather(
            who.call("GET", f"/ledger/accounts/{account}/bonus-history"),
            services.json("GET", "/ledger/campaigns"), services.json("GET", "/ledger/rewards"))
        return render(request, "bonus.html", status, history=history, campaigns=campaigns, rewards=rewards,
                      request_ids={reward["code"]: str(uuid.uuid4()) for reward in rewards}, error=error,
                      title=_("Bonuses"))

    @app.get("/a/{account}/bonus")
    async def bonus(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        return await bonus_page(request, account, who)

    @app.post("/a/{account}/bonus")
    async def exchange_bonus(request: Request, account: str, form: FormData = Depends(checked_form),
                             who: Subscriber = Depends(signed_in)) -> Response:
        """Buy a reward with bonuses; the page's request id makes a repeated form one purchase."""
        try:
            await who.call("POST", f"/ledger/accounts/{account}/bonus-redemptions", json={
                "item": str(form.get("item", "")), "request_id": str(form.get("request_id", ""))})
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return await bonus_page(request, account, who, refused.status, words(request, refused))
        flash(request, _("Done: the bonuses are spent."))
        return home(account, "/bonus")

    @app.get("/a/{account}/transfer")
    async def transfer_page(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        return render(request, "transfer.html", balance=balance, title=_("Transfer"))

    @app.post("/a/{account}/transfer")
    async def transfer_review(request: Request, account: str, form: FormData = Depends(checked_form),
                              who: Subscriber = Depends(signed_in)) -> Response:
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        to_account, amount = str(form.get("to_account", "")).strip(), str(form.get("amount", "")).strip()
        minor = _minor_units(amount)
        errors = {}
        if not to_account.isdigit() or to_account == account:
            errors["to_account"] = _("Enter the number of another account.")
        if minor is None:
            errors["amount"] = _("Enter an amount more than zero, e.g. 150.00.")
        if errors:
            return render(request, "transfer.html", 422, balance=balance, errors=errors, to_account=to_account,
                          amount=amount, title=_("Transfer"))
        return render(request, "transfer_confirm.html", balance=balance, to_account=to_account, minor=minor,
                      request_id=str(uuid.uuid4()), title=_("Transfer"))

    @app.post("/a/{account}/transfer/confirm")
    async def transfer(request: Request, account: str, form: FormData = Depends(checked_form),
                       who: Subscriber = Depends(signed_in)) -> Response:
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        to_account, minor = str(form.get("to_account", "")), int(str(form.get("minor", "0")) or 0)
        try:
            await who.call("POST", f"/ledger/accounts/{account}/transfers", json={
                "to_account": to_account, "amount": {"minor": minor, "currency": balance["main"]["currency"]},
                "request_id": str(form.get("request_id"))})
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return render(request, "transfer.html", refused.status, balance=balance, to_account=to_account,
                          error=words(request, refused), title=_("Transfer"))
        flash(request, _("{amount} moved to account {number}.").format(
            amount=i18n.money(minor, balance["main"]["currency"]), number=to_account))
        return home(account)

    @app.get("/a/{account}/tariff")
    async def tariff(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        return await _tariff_page(request, account, who)

    async def _tariff_page(request: Request, account: str, who: Subscriber, status: int = 200,
                           error: str | None = None) -> Response:
        subscription = await who.call("GET", f"/tariff/accounts/{account}")
        region = subscription["region"]
        plans, options, equipment, history = await asyncio.gather(
            services.catalog(f"/tariff/regions/{region}/plans"),
            services.catalog(f"/tariff/regions/{region}/options"),
            services.catalog(f"/tariff/regions/{region}/equipment"),
            who.call("GET", f"/tariff/accounts/{account}/tariff-history"))
        planned = subscription["schedule"][-1]["terms"] if subscription["schedule"] else subscription["terms"]
        return render(request, "tariff.html", status, subscription=subscription, plans=plans, options=options,
                      equipment=equipment, savings=bundle_savings(plans), history=history, planned=planned,
                      names={p["code"]: p["name"] for p in plans + options}, error=error, title=_("Plan and options"))

    async def tariff_command(request: Request, account: str, who: Subscriber, method: str, path: str,
                             body: Any = None) -> Response:
        try:
            await who.call(method, path, json=body)
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return await _tariff_page(request, account, who, refused.status, words(request, refused))
        flash(request, _("Done: the change takes effect from tomorrow."))
        return home(account, "/tariff")

    @app.post("/a/{account}/tariff/plan")
    async def change_plan(request: Request, account: str, form: FormData = Depends(checked_form),
                          who: Subscriber = Depends(signed_in)) -> Response:
        subscription = await who.call("GET", f"/tariff/accounts/{account}")
        first = subscription["terms"]["plan"] is None and not subscription["schedule"]
        return await tariff_command(request, account, who, "POST" if first else "PUT",
                                    f"/tariff/accounts/{account}/plan", {"plan": str(form.get("plan", ""))})

    @app.post("/a/{account}/tariff/options")
    async def add_option(request: Request, account: str, form: FormData = Depends(checked_form),
                         who: Subscriber = Depends(signed_in)) -> Response:
        return await tariff_command(request, account, who, "POST", f"/tariff/accounts/{account}/options",
                                    {"option": str(form.get("code", ""))})

    @app.post("/a/{account}/tariff/options/{option}/remove")
    async def remove_option(request: Request, account: str, option: str, form: FormData = Depends(checked_form),
                            who: Subscriber = Depends(signed_in)) -> Response:
        return await tariff_command(request, account, who, "DELETE", f"/tariff/accounts/{account}/options/{option}")

    @app.post("/a/{account}/tariff/equipment")
    async def rent_equipment(request: Request, account: str, form: FormData = Depends(checked_form),
                             who: Subscriber = Depends(signed_in)) -> Response:
        return await tariff_command(request, account, who, "POST", f"/tariff/accounts/{account}/equipment",
                                    {"equipment": str(form.get("code", ""))})

    @app.post("/a/{account}/tariff/equipment/{equipment}/return")
    async def return_equipment(request: Request, account: str, equipment: str,
                               form: FormData = Depends(checked_form), who: Subscriber = Depends(signed_in)) -> Response:
        return await tariff_command(request, account, who, "DELETE",
                                    f"/tariff/accounts/{account}/equipment/{equipment}")

    @app.get("/a/{account}/block")
    async def block_page(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        return await _block_page(request, account, who)

    async def _block_page(request: Request, account: str, who: Subscriber, status: int = 200,
                          error: str | None = None) -> Response:
        subscription, catalog = await asyncio.gather(who.call("GET", f"/tariff/accounts/{account}"),
                                                     services.catalog("/tariff/catalog"))
        today = app.state.today()
        price = next(r["voluntary_block_price"] for r in catalog["regions"] if r["code"] == subscription["region"])
        running = next((b for b in subscription["voluntary_blocks"] if not b["ended"]
                        and date.fromisoformat(b["last_day"]) >= today), None)
        used = any(date.fromisoformat(b["start"]).year <= today.year <= date.fromisoformat(b["last_day"]).year
                   for b in subscription["voluntary_blocks"])
        return render(request, "block.html", status, running=running, price=price, error=error,
                      days_left=0 if used else BLOCK_DAYS_A_YEAR, title=_("Voluntary block"))

    async def block_command(request: Request, account: str, who: Subscriber, method: str, body: Any = None,
                            done: str = "") -> Response:
        try:
            await who.call(method, f"/tariff/accounts/{account}/voluntary-block", json=body)
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return await _block_page(request, account, who, refused.status, words(request, refused))
        flash(request, done)
        return home(account, "/block")

    @app.post("/a/{account}/block")
    async def start_block(request: Request, account: str, form: FormData = Depends(checked_form),
                          who: Subscriber = Depends(signed_in)) -> Response:
        days = str(form.get("days", ""))
        if not days.isdigit():
            return await _block_page(request, account, who, 422, _("Enter the number of days, 1 to 30."))
        return await block_command(request, account, who, "POST", {"days": int(days)}, _("The block has started."))

    @app.post("/a/{account}/block/end")
    async def end_block(request: Request, account: str, form: FormData = Depends(checked_form),
                        who: Subscriber = Depends(signed_in)) -> Response:
        return await block_command(request, account, who, "DELETE", done=_("The block has ended."))

    async def settings_view(request: Request, who: Subscriber, status: int = 200,
                            password_error: str | None = None, contact_error: str | None = None) -> Response:
        profile = await who.call("GET", "/identity/me")
        notices = {"balance_low": _("the balance runs low"), "payment_credited": _("a payment arrived"),
                   "tariff_changed": _("the plan or options changed"), "voluntary_block": _("a voluntary block"),
                   "debt_block": _("a block for debt")}
        return render(request, "settings.html", status, profile=profile, notices=notices, password_error=password_error,
                      contact_error=contact_error, code_sent_to=request.session.get(CONTACT_CODE_SENT_TO),
                      title=_("Settings"))

    async def settings_refusal(request: Request, who: Subscriber, refused: Refused) -> Response:
        if refused.status >= 500:
            raise refused
        said = next(iter(refused.field_messages().values()), None)  # what is wrong with the contact typed
        return await settings_view(request, who, refused.status, contact_error=said or words(request, refused))

    @app.post("/settings/contact")
    async def change_contact(request: Request, form: FormData = Depends(checked_form),
                             who: Subscriber = Depends(signed_in)) -> Response:
        """A new mobile number or e-mail: identity sends a code to it, and the change waits for the code."""
        kind = "email" if form.get("kind") == "email" else "phone"
        try:
            sent = await who.call("POST", "/identity/me/contact-changes",
                                  json={kind: str(form.get("contact", "")).strip()})
        except Refused as refused:
            return await settings_refusal(request, who, refused)
        request.session[CONTACT_CODE_SENT_TO] = sent["masked_destination"]
        flash(request, _("A code is on its way to {destination}.").format(destination=sent["masked_destination"]))
        return RedirectResponse("/settings", status_code=303)

    @app.post("/settings/contact/confirm")
    async def confirm_contact(request: Request, form: FormData = Depends(checked_form),
                              who: Subscriber = Depends(signed_in)) -> Response:
        try:
            await who.call("POST", "/identity/me/contact-changes/confirm", json={"code": str(form.get("code", ""))})
        except Refused as refused:
            return await settings_refusal(request, who, refused)
        request.session.pop(CONTACT_CODE_SENT_TO, None)
        flash(request, _("The contact is changed; the previous one was told."))
        return RedirectResponse("/settings", status_code=303)

    @app.get("/settings")
    async def settings_page(request: Request, who: Subscriber = Depends(signed_in)) -> Response:
        return await settings_view(request, who)

    @app.post("/settings/password")
    async def change_password(request: Request, form: FormData = Depends(checked_form),
                              who: Subscriber = Depends(signed_in)) -> Response:
        """A new password; identity ends every other sign-in of the account (this one goes on)."""
        try:
            await who.call("PUT", "/identity/me/password", json={
                "current_password": str(form.get("current_password", "")),
                "new_password": str(form.get("new_password", ""))})
        except Refused as refused:
            if refused.status >= 500:
                raise
            known = {"wrong_current_password": _("This is not your current password."),
                     "invalid_request": _("The new password needs at least 10 characters.")}
            return await settings_view(request, who, refused.status, known.get(refused.code, words(request, refused)))
        flash(request, _("The password is changed; every other sign-in has ended."))
        return RedirectResponse("/settings", status_code=303)

    @app.get("/a/{account}/notifications")
    async def notifications(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        log = await optional(who.call("GET", f"/notifier/accounts/{account}/deliveries", params={"limit": "50"}),
                             "unknown_account")
        return render(request, "notifications.html", deliveries=log["deliveries"] if log else [],
                      title=_("Notifications"))

    @app.post("/settings/notices")
    async def choose_notices(request: Request, form: FormData = Depends(checked_form),
                             who: Subscriber = Depends(signed_in)) -> Response:
        wanted = set(map(str, form.getlist("notice")))
        await who.call("PUT", "/identity/me/notices",
                       json={"turned_off": [kind for kind in NOTICES if kind not in wanted]})
        flash(request, _("Saved."))
        return RedirectResponse("/settings", status_code=303)

    @app.get("/a/{account}/top-up")
    async def top_up_page(request: Request, account: str, who: Subscriber = Depends(signed_in)) -> Response:
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        return render(request, "top_up.html", balance=balance, title=_("Top up"))

    @app.post("/a/{account}/top-up")
    async def top_up(request: Request, account: str, form: FormData = Depends(checked_form),
                     who: Subscriber = Depends(signed_in)) -> Response:
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        minor = _minor_units(str(form.get("amount", "")))
        if minor is None:
            return render(request, "top_up.html", 422, balance=balance, title=_("Top up"),
                          error=_("Enter an amount more than zero, e.g. 150.00."))
        try:  # the ledger's card door (the account is the token's): an intent, and the acquirer's page
            intent = await who.call("POST", "/ledger/card-payments", json={
                "amount": {"minor": minor, "currency": balance["main"]["currency"]}})
        except Refused as refused:
            if refused.status >= 500 or refused.code == "wrong_account":
                raise
            return render(request, "top_up.html", refused.status, balance=balance, title=_("Top up"),
                          error=words(request, refused))
        pay_url = str(intent["pay_url"])  # in development a path on the ledger's address
        return RedirectResponse(settings.browser_ledger_url + pay_url if pay_url.startswith("/") else pay_url,
                                status_code=303)

    @app.get("/card-payments/{intent_id}")
    async def back_from_acquirer(intent_id: uuid.UUID, who: Subscriber = Depends(signed_in)) -> Response:
        """Where the acquirer's page sends the subscriber back (the ledger's BILLING_LEDGER_CARD_RETURN_URL):
        the payment's own account's result page, the account being the ledger's word on the token's
        payment (another's is 404), never a URL the request names."""
        intent = await who.call("GET", f"/ledger/card-payments/{intent_id}")
        return home(intent["account_number"], f"/top-up/{intent['intent_id']}")

    @app.get("/a/{account}/top-up/{intent_id}")
    async def top_up_result(request: Request, account: str, intent_id: uuid.UUID,
                            who: Subscriber = Depends(signed_in)) -> Response:
        """Back from the acquirer: whether the card payment went through."""
        intent = await who.call("GET", f"/ledger/card-payments/{intent_id}")
        balance = await who.call("GET", f"/ledger/accounts/{account}")
        return render(request, "top_up.html", balance=balance, intent=intent, title=_("Top up"))

    return app


def client_address(request: Request) -> str | None:
    """The browser's address as the cabinet's server sees it (behind a proxy: uvicorn's
    --forwarded-allow-ips decides which X-Forwarded-For it believes)."""
    return request.client.host if request.client else None


def _templates(settings: CabinetSettings) -> Environment:
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(),
                              extensions=["jinja2.ext.i18n"])
    environment.install_gettext_callables(i18n._, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    environment.filters["money"] = i18n.money
    environment.filters["day"] = i18n.day
    environment.filters["moment"] = lambda value: i18n.moment(value, settings.time_zone)
    return environment


def _state(balance: dict[str, Any], subscription: dict[str, Any], today: date) -> dict[str, Any]:
    """The account's state in words' terms: closed, blocked for debt, voluntarily blocked (until), active."""
    if not balance["is_open"]:
        return {"kind": "closed"}
    for block in subscription["voluntary_blocks"]:
        if not block["ended"] and date.fromisoformat(block["start"]) <= today <= date.fromisoformat(block["last_day"]):
            return {"kind": "voluntary_block", "until": block["last_day"]}
    if subscription["debt_blocked"]:
        return {"kind": "debt_block"}
    if subscription["terms"]["plan"] is None:
        return {"kind": "no_plan"}
    return {"kind": "active"}


def _period_asked(request: Request, today: date) -> tuple[date, date]:
    """The statement's days, first and last (inclusive): the query's, else this month so far."""
    try:
        first = date.fromisoformat(request.query_params.get("from", ""))
    except ValueError:
        first = today.replace(day=1)
    try:
        last = date.fromisoformat(request.query_params.get("to", ""))
    except ValueError:
        last = today
    return (first, last) if first <= last else (last, first)


def _minor_units(typed: str) -> int | None:
    """An amount as a person types it (150, 150.5, 150,50) in kopecks; None unless more than zero
    with at most two decimals."""
    try:
        amount = Decimal(typed.replace(",", ".").replace(" ", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    return int(amount * 100)
