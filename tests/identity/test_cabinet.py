"""The subscriber's cabinet over HTTP: self-registration to the first login, sessions (refresh
tokens rotated, reuse, sign-out), the profile and the accounts one holds, and the settings.

Over the real broker and PostgreSQL (self-registration on SQLite too); every password is read
from the identity topic and unsealed as the notifier would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_contracts.catalog.ledger import AccountClosed
from billing_contracts.catalog.tariff import ClosureSettlement
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.sealing import unseal
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.plugin import eventually, operations_token
from identity import service
from identity.domain.errors import ResetCodeRefused, UnknownAccount

INITIAL = PasswordPurpose.INITIAL


@contextlib.asynccontextmanager
async def cabinet(start_identity: Any, make_flow: Any, bootstrap_servers: str,
                  **settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A running identity, a reader of its topic (as ``flow``) and an HTTP client of its door."""
    runtime, ctx = await start_identity(**settings)
    async with runtime:
        async with (
            TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://identity") as http,
        ):
            yield make_flow(runtime, ctx, reader), http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signed_in(flow: Any, http: httpx.AsyncClient, login: str, password: str) -> dict[str, Any]:
    answer = await http.post("/identity/login", json={"login": login, "password": password})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def registered(flow: Any, http: httpx.AsyncClient, **changes: Any) -> tuple[str, str]:
    """A subscriber who signed the contract on the site: the account and its SMS password."""
    answer = await http.post("/identity/registrations", json=flow.form(**changes))
    assert answer.status_code == 201, answer.text
    account = answer.json()["account_number"]
    return account, await flow.secret(account, INITIAL)


# --- self-registration ------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
async def test_a_subscriber_signs_the_contract_on_the_site_and_logs_in(
        start_identity: Any, make_flow: Any, bootstrap_servers: str, database: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers, database=database) as (flow, http):
        answer = await http.post("/identity/registrations", json=flow.form(email="ivan@mail.ru"))
        assert answer.status_code == 201, answer.text
        assert set(answer.json()) == {"account_number", "contract_number", "password_sent_to"}
        assert answer.json()["password_sent_to"] == "+7 *** ***-67-89"
        account = answer.json()["account_number"]
        password = await flow.secret(account, INITIAL)
        tokens = await signed_in(flow, http, account, password)
        me = await http.get("/identity/me", headers=bearer(tokens["token"]))
        assert me.status_code == 200
        assert me.json() | {"contract_number": "-"} == {
            "account_number": account, "contract_number": "-", "region": "moscow", "legal_status": "person",
            "surname": "Иванов", "first_name": "Иван", "patronymic": "Сергеевич",
            "masked_phone": "+7 *** ***-67-89", "masked_email": "i***@mail.ru", "language": "ru",
            "notices_off": [], "notices_always_on": ["passwords_and_codes", "security"],
        }
        assert me.json()["contract_number"] == answer.json()["contract_number"]
        assert "4508" not in me.text and "731942" not in me.text  # never the passport


async def test_a_passport_or_phone_that_holds_accounts_is_answered_the_same(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    """A person may sign several contracts: the same passport and phone get another account, the
    answer the same shape, the work the same (one slow hash each, as the decoy counts)."""
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        first = await http.post("/identity/registrations", json=flow.form())
        again = await http.post("/identity/registrations", json=flow.form())
        assert (first.status_code, again.status_code) == (201, 201)
        assert set(first.json()) == set(again.json())
        assert first.json()["account_number"] != again.json()["account_number"]
        # The call centre's door still refuses the same form twice (a form sent twice by mistake).
        service_token = operations_token(flow.runtime.clock, "call-centre", scopes=("identity:register",))
        twice = await http.post("/identity/subscribers", json=flow.form(), headers=bearer(service_token))
        assert (twice.status_code, twice.json()["code"]) == (409, "passport_already_registered")


async def test_self_registration_refuses_in_words_and_is_throttled_per_address(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers, address_request_limit=6) as (flow, http):
        refusals = {
            "under_age": flow.form(date_of_birth="2015-01-01", date_of_issue="2025-01-01"),
            "issued_in_future": flow.form(date_of_issue="2027-01-01"),
            "issued_before_birth": flow.form(date_of_issue="1980-01-01"),
            "passport_number": flow.form(passport_number="12345"),
            "mobile_phone": flow.form(mobile_phone="12"),
        }
        for what, form in refusals.items():
            answer = await http.post("/identity/registrations", json=form)
            assert (answer.status_code, answer.json()["code"]) == (422, "invalid_request"), what
            errors = answer.json()["errors"]
            assert errors and all(error["message"] for error in errors), what
            assert what in {error["field"] for error in errors} | {error["code"] for error in errors}, errors
        # Refused forms change nothing and count nothing: six registrations from one address...
        for _ in range(6):
            assert (await http.post("/identity/registrations", json=flow.form(unique=True))).status_code == 201
        # ...then the address waits, whatever it sends.
        held = await http.post("/identity/registrations", json=flow.form(unique=True))
        assert (held.status_code, held.json()["code"]) == (429, "too_many_requests_from_address")
        assert "until" in held.json()


# --- who may call each route ------------------------------------------------------------------

MY_ROUTES = [
    ("GET", "/identity/me", None),
    ("GET", "/identity/me/accounts", None),
    ("PUT", "/identity/me/language", {"language": "en"}),
    ("PUT", "/identity/me/notices", {"turned_off": ["balance_low"]}),
    ("PUT", "/identity/me/password", {"current_password": "x", "new_password": "a-new-password-1"}),
    ("POST", "/identity/me/contact-changes", {"email": "new@mail.ru"}),
    ("POST", "/identity/me/contact-changes/confirm", {"code": "123456"}),
    ("POST", "/identity/sign-out", None),
]


async def test_each_cabinet_route_opens_for_its_subscriber_only(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        mine, my_password = await registered(flow, http)
        stranger, _ = await registered(flow, http, unique=True)
        service_token = operations_token(flow.runtime.clock, "call-centre", scopes=("identity:register",))
        switch = ("POST", f"/identity/me/accounts/{mine}/token", None)

        def ask(method: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
            return http.request(method, path, json=body, headers=headers or {})

        for method, path, body in [*MY_ROUTES, switch]:
            anonymous = await ask(method, path, body)
            assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token"), path
            as_service = await ask(method, path, body, bearer(service_token))
            assert (as_service.status_code, as_service.json()["code"]) == (403, "subscriber_only"), path
            # A token without a sign-in (minted, not from a login) opens none of them.
            minted, _ = flow.runtime.tokens.issue("subscriber", mine)
            assert (await ask(method, path, body, bearer(minted))).json()["code"] == "token_revoked", path

        # Another subscriber may not open my account, nor I theirs.
        theirs = await signed_in(flow, http, stranger, await flow.secret(stranger, INITIAL))
        taken = await http.post(f"/identity/me/accounts/{mine}/token", headers=bearer(theirs["token"]))
        assert (taken.status_code, taken.json()["code"]) == (403, "wrong_account")

        # The owner: each route works, then an expired token and a signed-out one are refused.
        tokens = await signed_in(flow, http, mine, my_password)
        owner = bearer(tokens["token"])
        answers = {path: (await ask(method, path, body, owner)).status_code for method, path, body in MY_ROUTES[:4]}
        assert answers == {"/identity/me": 200, "/identity/me/accounts": 200, "/identity/me/language": 204,
                           "/identity/me/notices": 200}
        wrong = await ask(*MY_ROUTES[4], owner)
        assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong_current_password")
        assert (await ask(*MY_ROUTES[5], owner)).status_code == 202
        [issued] = await flow.reader.wait_for_type("ContactCodeIssued", account_number=mine)
        sent = unseal(flow.private_key, issued.payload.sealed_secret)["secret"]
        not_it = await ask("POST", MY_ROUTES[6][1], {"code": f"{(int(sent) + 1) % 1_000_000:06d}"}, owner)
        assert (not_it.status_code, not_it.json()["reason"]) == (400, "wrong_code")
        assert (await ask(*switch, owner)).status_code == 200
        flow.runtime.clock.advance(timedelta(minutes=16))
        for method, path, body in [*MY_ROUTES, switch]:
            expired = await ask(method, path, body, owner)
            assert (expired.status_code, expired.json()["code"]) == (401, "token_expired"), path
        renewed = await http.post("/identity/tokens/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200
        fresh = bearer(renewed.json()["token"])
        out = await http.post("/identity/sign-out", headers=fresh)
        assert (out.status_code, out.json()) == (200, {"sessions_ended": 1})
        for method, path, body in [*MY_ROUTES, switch]:
            revoked = await ask(method, path, body, fresh)
            assert (revoked.status_code, revoked.json()["code"]) == (401, "token_revoked"), path
        gone = await http.post("/identity/tokens/refresh", json={"refresh_token": renewed.json()["refresh_token"]})
        assert (gone.status_code, gone.json()["code"]) == (401, "invalid_refresh_token")


# --- sessions ---------------------------------------------------------------------------------


async def test_a_refresh_token_works_once_and_its_reuse_ends_the_sign_in(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        first = await signed_in(flow, http, account, password)
        other_device = await signed_in(flow, http, account, password)
        second = await http.post("/identity/tokens/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200 and second.json()["account_number"] == account
        assert second.json()["refresh_token"] != first["refresh_token"]
        # The old one again (stolen, or replayed): refused, and the whole sign-in ends with it.
        replay = await http.post("/identity/tokens/refresh", json={"refresh_token": first["refresh_token"]})
        assert (replay.status_code, replay.json()["code"]) == (401, "invalid_refresh_token")
        after = await http.post("/identity/tokens/refresh", json={"refresh_token": second.json()["refresh_token"]})
        assert after.status_code == 401
        assert (await http.get("/identity/me", headers=bearer(second.json()["token"]))).status_code == 401
        # The other device's sign-in is another family: untouched.
        assert (await http.get("/identity/me", headers=bearer(other_device["token"]))).status_code == 200
        unknown = await http.post("/identity/tokens/refresh", json={"refresh_token": "made-up"})
        assert (unknown.status_code, unknown.json()) == (replay.status_code, replay.json())
        flow.runtime.clock.advance(timedelta(days=31))
        stale = await http.post("/identity/tokens/refresh", json={"refresh_token": other_device["refresh_token"]})
        assert (stale.status_code, stale.json()["code"]) == (401, "invalid_refresh_token")


async def test_sign_out_everywhere_ends_every_sign_in(start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        sessions = [await signed_in(flow, http, account, password) for _ in range(3)]
        out = await http.post("/identity/sign-out", params={"everywhere": "true"}, headers=bearer(sessions[0]["token"]))
        assert out.json() == {"sessions_ended": 3}
        for session in sessions:
            assert (await http.get("/identity/me", headers=bearer(session["token"]))).status_code == 401
            assert (await http.post("/identity/tokens/refresh",
                                    json={"refresh_token": session["refresh_token"]})).status_code == 401


# --- settings ---------------------------------------------------------------------------------


async def test_a_password_change_needs_the_current_one_and_signs_out_the_other_sessions(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        here = await signed_in(flow, http, account, password)
        elsewhere = await signed_in(flow, http, account, password)
        short = await http.put("/identity/me/password", headers=bearer(here["token"]),
                               json={"current_password": password, "new_password": "short"})
        assert (short.status_code, short.json()["errors"][0]["field"]) == (422, "new_password")
        changed = await http.put("/identity/me/password", headers=bearer(here["token"]),
                                 json={"current_password": password, "new_password": "my-new-password-42"})
        assert changed.status_code == 204
        assert (await http.get("/identity/me", headers=bearer(here["token"]))).status_code == 200
        assert (await http.get("/identity/me", headers=bearer(elsewhere["token"]))).json()["code"] == "token_revoked"
        assert (await http.post("/identity/tokens/refresh",
                                json={"refresh_token": elsewhere["refresh_token"]})).status_code == 401
        assert (await http.post("/identity/login", json={"login": account, "password": password})).status_code == 401
        await signed_in(flow, http, account, "my-new-password-42")
        await flow.reader.wait_for_type("PasswordChanged", account_number=account)
        # Five wrong current passwords an hour, then the account's changes wait.
        for _ in range(5):
            wrong = await http.put("/identity/me/password", headers=bearer(here["token"]),
                                   json={"current_password": "guess", "new_password": "another-password-1"})
            assert wrong.status_code == 400
        held = await http.put("/identity/me/password", headers=bearer(here["token"]),
                              json={"current_password": "my-new-password-42", "new_password": "another-password-1"})
        assert (held.status_code, held.json()["code"]) == (429, "too_many_requests")


async def test_support_recovery_ends_every_sign_in(start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        session = await signed_in(flow, http, account, password)
        await service.recover_by_support(flow.ctx, {
            "login": account, "passport_series": "4508", "passport_number": "731942", "date_of_birth": "1990-05-17",
            "operator": "op-7", "reason": "the phone was stolen"})
        assert (await http.get("/identity/me", headers=bearer(session["token"]))).json()["code"] == "token_revoked"
        assert (await http.post("/identity/tokens/refresh",
                                json={"refresh_token": session["refresh_token"]})).status_code == 401


async def test_language_and_notices_are_kept_and_told_to_the_notifier(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        session = await signed_in(flow, http, account, password)
        me = bearer(session["token"])
        assert flow.runtime.tokens.verify(session["token"]).language == "ru"  # the profile's, for refusals
        off = await http.put("/identity/me/notices", headers=me, json={"turned_off": ["balance_low", "balance_low"]})
        assert off.json() == {"account_number": account, "notices_off": ["balance_low"]}
        on = await http.put("/identity/me/notices", headers=me, json={"turned_off": []})
        assert on.status_code == 200
        # Passwords and security notices are not a notice kind one may turn off.
        never = await http.put("/identity/me/notices", headers=me, json={"turned_off": ["password_initial"]})
        assert (never.status_code, never.json()["errors"][0]["field"]) == (422, "turned_off.0")
        assert (await http.put("/identity/me/language", headers=me, json={"language": "sk"})).status_code == 204
        assert (await http.put("/identity/me/language", headers=me, json={"language": "xx"})).status_code == 422
        profile = (await http.get("/identity/me", headers=me)).json()
        assert (profile["language"], profile["notices_off"]) == ("sk", [])
        told = await flow.reader.wait_for_type("NoticePreferencesChanged", 2, account_number=account)
        assert [(e.payload.turned_off, e.payload.preferences_version) for e in told] == [(["balance_low"], 1), ([], 2)]
        assert (await flow.reader.wait_for_type("LanguageChanged", account_number=account))[0].payload.language == "sk"
        # The next token names the new language: refusals are written in it.
        refreshed = await http.post("/identity/tokens/refresh", json={"refresh_token": session["refresh_token"]})
        in_slovak = bearer(refreshed.json()["token"])
        wrong = await http.put("/identity/me/password", headers=in_slovak,
                               json={"current_password": "guess", "new_password": "another-password-1"})
        assert (wrong.status_code, wrong.json()["message"]) == (400, "Súčasné heslo nie je správne.")
        assert wrong.json()["errors"] == [{"field": "current_password", "message": "Súčasné heslo nie je správne.",
                                           "code": "wrong_current_password"}]


# --- the accounts one holds -------------------------------------------------------------------


async def test_a_phone_holding_several_accounts_opens_each_and_no_other(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        home, home_password = await registered(flow, http)
        tv, _ = await registered(flow, http, passport_number="600999")  # the same phone, another contract
        stranger, _ = await registered(flow, http, unique=True)
        by_phone = await signed_in(flow, http, "+7 912 345-67-89", home_password)
        assert by_phone["account_number"] == home
        held = (await http.get("/identity/me/accounts", headers=bearer(by_phone["token"]))).json()
        assert [(a["account_number"], a["current"]) for a in held] == [(home, True), (tv, False)]
        opened = await http.post(f"/identity/me/accounts/{tv}/token", headers=bearer(by_phone["token"]))
        assert opened.status_code == 200 and opened.json()["account_number"] == tv
        principal = flow.runtime.tokens.verify(opened.json()["token"])
        assert (principal.role, principal.subject) == ("subscriber", tv)
        assert (await http.get("/identity/me", headers=bearer(opened.json()["token"]))).json()["account_number"] == tv
        refused = await http.post(f"/identity/me/accounts/{stranger}/token", headers=bearer(by_phone["token"]))
        assert (refused.status_code, refused.json()["code"]) == (403, "wrong_account")


async def test_a_closed_account_cannot_log_in_in_any_style_nor_be_offered_by_its_phone(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    """The ledger closed the home account (AccountClosed): its right password is refused in words
    by account number, contract number and phone; its sign-ins end; the phone's other account
    logs in and offers only itself."""
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        home, home_password = await registered(flow, http)
        tv, tv_password = await registered(flow, http, passport_number="600999")  # the same phone
        before = await signed_in(flow, http, home, home_password)
        contract = before["contract_number"]
        await service.request_reset_code(flow.ctx, {"login": home, "phone": "+7 912 345-67-89"})
        [code_sent] = await flow.reader.wait_for_type("PasswordIssued", account_number=home,
                                                      purpose=PasswordPurpose.RESET_CODE)
        code = unseal(flow.private_key, code_sent.payload.sealed_secret)["secret"]
        closed = Envelope.new(AccountClosed(
            account_number=home, settlement=ClosureSettlement.REFUND, settled=Money.zero(), forfeited_bonus=Money.zero(),
            requested_by="operator:op", reason="moved abroad"), account=home, producer="ledger", clock=flow.ctx.clock)
        async with RawProducer(bootstrap_servers) as producer:
            await producer.send(flow.runtime.topics(topics.LEDGER), closed)

        async def refused(login: str) -> Any:
            answer = await http.post("/identity/login", json={"login": login, "password": home_password})
            return answer if answer.status_code != 200 else None

        by_number = await eventually(lambda: refused(home), timeout=30, what="the closure reaches identity")
        for answer in (by_number, await refused(contract), await refused("+7 912 345-67-89")):
            assert answer is not None
            assert (answer.status_code, answer.json()["code"]) == (409, "account_closed")
            assert answer.json()["message"] == "this account is closed: log in with another of your accounts"
        assert (await http.get("/identity/me", headers=bearer(before["token"]))).json()["code"] == "token_revoked"
        assert (await http.post("/identity/tokens/refresh",
                                json={"refresh_token": before["refresh_token"]})).status_code == 401

        by_phone = await signed_in(flow, http, "+7 912 345-67-89", tv_password)
        assert by_phone["account_number"] == tv
        held = (await http.get("/identity/me/accounts", headers=bearer(by_phone["token"]))).json()
        assert [a["account_number"] for a in held] == [tv]
        reopened = await http.post(f"/identity/me/accounts/{home}/token", headers=bearer(by_phone["token"]))
        assert (reopened.status_code, reopened.json()["code"]) == (403, "wrong_account")

        # No new password or reset code for it either: asked by its number, it is not known (the
        # same answer as a number never issued); asked by the phone, only the open account gets one.
        with pytest.raises(UnknownAccount):
            await service.reissue_password_by_sms(flow.ctx, {"login": home})
        with pytest.raises(UnknownAccount):
            await service.request_reset_code(flow.ctx, {"login": home, "phone": "+7 912 345-67-89"})
        sent = await service.reissue_password_by_sms(flow.ctx, {"login": "+7 912 345-67-89"})
        assert [result.account_number for result in sent] == [tv]
        with pytest.raises(ResetCodeRefused) as unused:  # the code sent before the closure opens nothing
            await service.redeem_reset_code(flow.ctx, {"login": home, "code": code})
        assert unused.value.reason == "no_code"


async def test_the_openapi_document_says_who_may_call_each_route(start_identity: Any) -> None:
    runtime, _ = await start_identity()
    document = runtime.http_app.openapi()
    callers = {f"{method.upper()} {path}": operation.get("x-callers")
               for path, operations in document["paths"].items() if path.startswith("/identity/")
               for method, operation in operations.items()}
    assert all(who and set(who) <= {"anonymous", "subscriber", "service"} for who in callers.values()), callers
    subscribers = {route for route, who in callers.items() if "subscriber" in who}
    assert subscribers == {
        "POST /identity/sign-out", "GET /identity/me", "GET /identity/me/accounts",
        "POST /identity/me/accounts/{account}/token", "PUT /identity/me/password", "PUT /identity/me/language",
        "PUT /identity/me/notices", "POST /identity/me/contact-changes", "POST /identity/me/contact-changes/confirm",
    }
    assert callers["POST /identity/subscribers"] == callers["POST /identity/support/recoveries"] == ["service"]
    assert callers["POST /identity/registrations"] == callers["POST /identity/tokens/refresh"] == ["anonymous"]


async def test_a_new_phone_is_confirmed_by_a_code_sent_to_it_and_counted_with_every_request(
        start_identity: Any, make_flow: Any, bootstrap_servers: str) -> None:
    async with cabinet(start_identity, make_flow, bootstrap_servers) as (flow, http):
        account, password = await registered(flow, http)
        me = bearer((await signed_in(flow, http, account, password))["token"])
        neither = await http.post("/identity/me/contact-changes", headers=me, json={})
        assert (neither.status_code, neither.json()["errors"][0]["code"]) == (422, "one_contact")
        asked = await http.post("/identity/me/contact-changes", headers=me, json={"phone": "+7 903 111-22-33"})
        assert asked.status_code == 202 and asked.json()["masked_destination"] == "+7 *** ***-22-33"
        [issued] = await flow.reader.wait_for_type("ContactCodeIssued", account_number=account)
        sealed = unseal(flow.private_key, issued.payload.sealed_secret)
        assert sealed["destination"] == "+79031112233"
        code = sealed["secret"]
        wrong = await http.post("/identity/me/contact-changes/confirm", headers=me,
                                json={"code": f"{(int(code) + 1) % 1_000_000:06d}"})
        assert (wrong.status_code, wrong.json()["reason"]) == (400, "wrong_code")
        confirmed = await http.post("/identity/me/contact-changes/confirm", headers=me, json={"code": code})
        assert confirmed.status_code == 200 and confirmed.json()["masked_phone"] == "+7 *** ***-22-33"
        again = await http.post("/identity/me/contact-changes/confirm", headers=me, json={"code": code})
        assert (again.status_code, again.json()["reason"]) == (400, "already_used")
        [changed] = await flow.reader.wait_for_type("ContactChanged", account_number=account)
        assert (changed.payload.changed, changed.payload.contact_version) == ("phone", 1)
        assert unseal(flow.private_key, changed.payload.sealed_contact)["phone"] == "+79031112233"
        # The new phone logs in and gets passwords; the old one names nobody now.
        assert (await signed_in(flow, http, "+7 903 111-22-33", password))["account_number"] == account
        old = await http.post("/identity/login", json={"login": "+7 912 345-67-89", "password": password})
        assert old.status_code == 401
        # The code request was one of the five password and code requests of the hour.
        for _ in range(4):
            await service.reissue_password_by_sms(flow.ctx, {"login": account})
        last = await http.post("/identity/me/contact-changes", headers=me, json={"email": "new@mail.ru"})
        assert (last.status_code, last.json()["code"]) == (429, "too_many_requests")
