"""The cabinet in a real browser (headless Chromium) over the whole suite: a subscriber signs in,
sees the overview, moves money with a confirmation step, changes the language and signs out; the
cabinet keeps another subscriber's account closed to them, refuses a form without its CSRF token,
and after sign-out the back button shows nothing private. Each page is photographed at a phone's
width and a desktop's (conftest.SCREENSHOTS)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from babel.numbers import format_currency
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_events.testing.file_channel import sent_secrets
from billing_events.testing.plugin import eventually
from tests.flows.conftest import Suite, registration_form

from .conftest import Browser

OTHER_PERSON = {"surname": "Кузнецов", "first_name": "Олег", "patronymic": "Петрович", "passport_number": "771204",
                "mobile_phone": "+7 926 301-44-18", "email": "oleg.k@example.ru"}


async def _subscriber(suite: Suite, http: httpx.AsyncClient, **form: Any) -> tuple[str, str]:
    """A new subscriber registered on the site: their account number and the password the SMS brought."""
    answer = await http.post(f"{suite.urls()['identity']}/identity/registrations", json={**registration_form(), **form})
    assert answer.status_code == 201, answer.text
    account = answer.json()["account_number"]
    passwords = await eventually(lambda: sent_secrets(suite.messages(), "sms", account), what="the password by SMS")
    await eventually(_knows(suite, account), what="every service knows the account")
    return account, passwords[-1]


def _knows(suite: Suite, account: str) -> Any:
    async def check() -> bool:
        return await suite.ledger_account_open(account) and await suite.tariff_balance(account) is not None
    return check


async def _pay(suite: Suite, account: str, minor: int) -> None:
    """A card payment arrives from the acquirer, as a channel publishes it."""
    event = PaymentReceived.model_validate({
        "account_number": account, "channel": "card", "reference": f"ACQ-{account}-{minor}",
        "amount": {"minor": minor, "currency": "RUB"}, "received_at": suite.clock.now()})
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS), Envelope.new(
        event, account=account, producer=event.channel, clock=suite.clock))
    await eventually(lambda: _balance_is(suite, account, minor), what="the payment on the balance")


async def _balance_is(suite: Suite, account: str, minor: int) -> bool:
    return await suite.ledger_balance(account) == minor


def _session(browser: Browser) -> tuple[str, dict[str, Any]]:
    """The session cookie as the browser keeps it, and what it holds (signed, not secret from its owner)."""
    cookie = browser.driver.get_cookie("cabinet_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    payload = cookie["value"].split(".")[0]
    return cookie["value"], json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def plain(text: str) -> str:
    """Text with its non-breaking spaces as plain ones (a browser's text shows some of each)."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


def rub(minor: int, locale: str) -> str:
    """An amount as the locale writes it, spaced as plain() reads the page."""
    return plain(format_currency(Decimal(minor) / 100, "RUB", locale=locale))


async def test_a_subscriber_signs_in_moves_money_changes_language_and_signs_out(
        suite: Suite, browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="billing_cabinet")
    async with httpx.AsyncClient(timeout=30) as http:
        mine, password = await _subscriber(suite, http, language="sk")
        theirs, _ = await _subscriber(suite, http, **OTHER_PERSON)
        second, _ = await _subscriber(suite, http)  # the same person's second contract (phone and passport)
        await _pay(suite, mine, 100_000)

        def signs_in_and_moves_money() -> None:
            browser.open("/a/" + mine)
            assert browser.path == "/sign-in"  # no page of an account without a sign-in
            browser.shoot("sign-in")
            browser.fill("login", mine)
            browser.fill("password", password)
            browser.press("form[action='/sign-in'] button")
            assert browser.path == f"/a/{mine}"
            assert plain(browser.find("#main-balance").text) == rub(100_000, "sk_SK")
            assert browser.find("html").get_attribute("lang") == "sk"  # the profile's language
            assert browser.find("h1").text == "Prehľad" and "Анна Петрова" in browser.text
            browser.shoot("overview")
            for page in ("statement", "tariff", "block", "top-up"):
                browser.open(f"/a/{mine}/{page}")
                assert browser.find("h1").text and not browser.driver.find_elements(By.CSS_SELECTOR, ".error"), page
                browser.shoot(page)
            browser.open(f"/a/{mine}/bonus")
            browser.shoot("bonus")
            browser.press("#buy-router-stand")  # no bonuses yet: refused in words
            assert browser.find(".error").text == "Na tento nákup nemáte dosť bonusov."
            browser.open(f"/a/{mine}/transfer")
            browser.shoot("transfer")
            browser.fill("to_account", theirs)
            browser.fill("amount", "150")
            browser.press("main form button")
            assert browser.find("#confirm-to").text == theirs
            assert plain(browser.find("#confirm-amount").text) == rub(15_000, "sk_SK")
            browser.shoot("transfer-confirm")
            browser.press("#confirm")
            assert browser.path == f"/a/{mine}"
            assert plain(browser.find("#main-balance").text) == rub(85_000, "sk_SK")
            browser.press("form.languages button[value='ru']")
            assert browser.find("html").get_attribute("lang") == "ru"
            assert browser.find("h1").text == "Обзор"
            assert plain(browser.find("#main-balance").text) == rub(85_000, "ru_RU")
            browser.open("/settings")
            browser.find("#notice-balance_low").click()  # no "balance low" messages, please
            browser.press("#save-notices")
            assert browser.find(".flash").text == "Сохранено."
            assert not browser.find("#notice-balance_low").is_selected()
            browser.shoot("settings")
            browser.open(f"/a/{mine}/notifications")
            assert "+7 *** ***-33-71" in browser.text  # the password's SMS, to the masked phone
            browser.shoot("notifications")

        await asyncio.to_thread(signs_in_and_moves_money)
        assert await suite.ledger_balance(theirs) == 15_000
        _cookie, session = await asyncio.to_thread(_session, browser)
        profile = await http.get(f"{suite.urls()['identity']}/identity/me",
                                 headers={"Authorization": f"Bearer {session['token']}"})
        assert profile.json()["language"] == "ru"  # the profile keeps the language chosen
        assert profile.json()["notices_off"] == ["balance_low"]

        # Eleven minutes on (a token lasts fifteen), the next page trades the tokens for new ones first.
        suite.clock.advance(timedelta(minutes=11))

        def looks_at_another_account() -> str:
            browser.open(f"/a/{mine}")
            assert browser.find("h1").text == "Обзор"
            browser.open(f"/a/{theirs}")  # another subscriber's account, by editing the URL
            return browser.text

        shown = await asyncio.to_thread(looks_at_another_account)
        cookie, refreshed = await asyncio.to_thread(_session, browser)
        assert refreshed["token"] != session["token"] and refreshed["refresh"] != session["refresh"]
        session = refreshed
        assert "не среди ваших" in shown and theirs not in shown.replace(f"/a/{theirs}", "")
        assert "Кузнецов" not in shown and rub(15_000, "ru_RU") not in shown

        # A form without its CSRF token is refused, and so is a form acting on another's account.
        cabinet = browser.base
        http.cookies.set("cabinet_session", cookie)
        refused = await http.post(f"{cabinet}/a/{mine}/transfer/confirm",
                                  data={"to_account": theirs, "minor": "1000", "request_id": "0190f4a2-7c1e-7d3a-9b2f-5c8e1a2b3c4d"})
        assert refused.status_code == 403
        forged = await http.post(f"{cabinet}/a/{mine}/transfer/confirm", data={
            "csrf": "made-up", "to_account": theirs, "minor": "1000"})
        assert forged.status_code == 403
        theirs_moved = await http.post(f"{cabinet}/a/{theirs}/transfer/confirm", data={
            "csrf": session["csrf"], "to_account": mine, "minor": "1000"})
        assert theirs_moved.status_code == 403 and "не среди ваших" in theirs_moved.text
        assert await suite.ledger_balance(mine) == 85_000 and await suite.ledger_balance(theirs) == 15_000

        # The statement as CSV and the payment's receipt as PDF, as the page's links download them.
        today = suite.clock.now().date()
        csv = await http.get(f"{cabinet}/a/{mine}/statement.csv", params={"from": str(today), "to": str(today)})
        assert csv.headers["content-type"].startswith("text/csv") and "attachment" in csv.headers["content-disposition"]
        header, *lines = csv.text.splitlines()
        assert header.startswith("occurred_at,kind,") and [line.split(",")[1] for line in lines] == ["payment", "transfer"]
        payment = lines[0].split(",")[header.split(",").index("transaction_id")]
        receipt = await http.get(f"{cabinet}/a/{mine}/receipts/{payment}.pdf")
        assert receipt.headers["content-type"] == "application/pdf" and receipt.content.startswith(b"%PDF-")
        others = await http.get(f"{cabinet}/a/{theirs}/statement.csv")
        assert others.status_code == 403 and "occurred_at" not in others.text

        def signs_out() -> tuple[str, str]:
            browser.open(f"/a/{mine}")
            Select(browser.find("#switch-account")).select_by_value(second)  # the same person's other account
            browser.press("#open-account")
            assert browser.path == f"/a/{second}" and plain(browser.find("#main-balance").text) == rub(0, "ru_RU")
            last_cookie, last_session = _session(browser)
            browser.press("form.sign-out button")
            assert browser.path == "/sign-in"
            browser.driver.back()
            return browser.text, last_session["token"]

        after, last_token = await asyncio.to_thread(signs_out)
        assert browser.path == "/sign-in" and "Анна" not in after
        ended = await http.get(f"{suite.urls()['identity']}/identity/me",
                               headers={"Authorization": f"Bearer {last_token}"})
        assert ended.status_code == 401 and ended.json()["code"] == "token_revoked"

    # The cabinet logged each request by its route, never an account, a login, a password or a token.
    logged = [record.getMessage() for record in caplog.records if record.name == "billing_cabinet"]
    assert any(line.startswith("POST /a/{account}/transfer/confirm 303") for line in logged)
    assert [line for line in logged if mine in line or theirs in line or password in line or "Bearer" in line] == []


async def test_a_new_subscriber_registers_chooses_a_plan_and_a_channel_package_then_blocks_for_ten_days(
        suite: Suite, browser: Browser) -> None:
    form = {key: value for key, value in registration_form().items()
            if key not in ("contract_accepted", "legal_status", "region", "date_of_birth", "date_of_issue")}

    def registers() -> str:
        """The contract signed on the site, in Russian; a mistake first, refused beside its field."""
        browser.open("/register")
        browser.press("form.languages button[value='ru']")
        assert browser.find("h1").text == "Заключить договор"
        for attempt, passport_number in enumerate((form["passport_number"][:5], form["passport_number"])):
            browser.find("#contract_accepted").click()
            for name, value in {**form, "passport_number": passport_number}.items():
                browser.fill(name, value)
            for name in ("date_of_birth", "date_of_issue"):  # a date input types in the browser's locale
                browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find(f"#{name}"),
                                              registration_form()[name])
            if attempt == 0:
                browser.shoot("register")
            browser.press("#register")
            if attempt == 0:
                assert browser.find("#passport_number-error").text
                assert browser.find("#passport_number").get_attribute("value") == ""  # never echoed
                assert browser.find("#surname").get_attribute("value") == form["surname"]
        browser.shoot("registered")
        return browser.find("#new-account").text

    mine = await asyncio.to_thread(registers)
    password = (await eventually(lambda: sent_secrets(suite.messages(), "sms", mine), what="the password by SMS"))[-1]
    await eventually(_knows(suite, mine), what="every service knows the account")
    await _pay(suite, mine, 300_000)

    def chooses_a_plan_and_a_package() -> str:
        browser.open("/sign-in")
        browser.fill("login", mine)
        browser.fill("password", password)
        browser.press("form[action='/sign-in'] button")
        assert browser.find("h1").text == "Обзор"
        browser.open(f"/a/{mine}/tariff")
        # Moscow: Интернет 100 at 550,00 and ТВ Оптимальный at 400,00 apart, 800,00 together.
        assert plain(browser.find("#saving-combo-100-optimum").text) == (
            "Экономия 150,00 ₽ в месяц по сравнению с Интернет 100 + ТВ Оптимальный по отдельности")
        assert not browser.driver.find_elements(By.ID, "saving-internet-100")  # a single plan saves nothing
        browser.find("#plan-combo-100-optimum").click()
        browser.press("#choose-plan")
        assert "Готово" in browser.find(".flash").text
        browser.press("#add-kino")
        assert "Готово" in browser.find(".flash").text
        assert browser.driver.find_elements(By.ID, "remove-kino")  # planned: it can be taken back
        assert "бесплатно с вашим тарифом" in browser.find("#rent-stb-hd").find_element(By.XPATH, "../../..").text
        browser.press("#rent-stb-4k")  # not free with this plan: rented at its price
        assert "Готово" in browser.find(".flash").text
        assert browser.driver.find_elements(By.ID, "return-stb-4k")
        browser.shoot("tariff-chosen")
        browser.open(f"/a/{mine}")
        return browser.text

    overview = await asyncio.to_thread(chooses_a_plan_and_a_package)
    assert "Комбо" in overview and "kino" in overview  # from tomorrow: the plan and the package
    subscription = await _subscription(suite, mine)
    assert subscription["schedule"][-1]["terms"] == {"plan": "combo-100-optimum", "options": ["kino"],
                                                     "equipment": ["stb-4k"]}

    suite.clock.advance(timedelta(days=1))  # the plan is in effect from the next billing day
    before = await suite.ledger_balance(mine)

    def blocks_for_ten_days() -> tuple[str, str]:
        browser.open(f"/a/{mine}/block")
        assert "Осталось дней в этом году: 30." in browser.text
        browser.fill("days", "10")
        browser.press("#start-block")
        assert browser.find(".flash").text == "Блокировка началась."
        running = browser.find("#block-running").text
        browser.shoot("block-running")
        browser.open(f"/a/{mine}")
        return plain(running), plain(browser.find("#state").text)

    running, state = await asyncio.to_thread(blocks_for_ten_days)
    assert running.startswith("Ваш счёт заблокирован до 11 марта 2026")  # the 2nd to the 11th of March
    assert state == "добровольно заблокирован до 11 марта 2026 г."
    assert before is not None
    await eventually(lambda: _balance_below(suite, mine, before), what="the block's price charged")

    def reads_the_statement() -> str:
        browser.open(f"/a/{mine}/statement")
        browser.shoot("statement-charged")
        return browser.text

    assert "списание: voluntary block" in await asyncio.to_thread(reads_the_statement)


async def _subscription(suite: Suite, account: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{suite.urls()['tariff']}/tariff/accounts/{account}",
                                headers={"Authorization": f"Bearer {suite.service_token()}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _balance_below(suite: Suite, account: str, minor: int) -> bool:
    balance = await suite.ledger_balance(account)
    return balance is not None and balance < minor


async def test_a_subscriber_who_forgot_the_password_gets_a_new_one_with_a_code_and_changes_it(suite: Suite, browser: Browser) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        mine, _first_password = await _subscriber(suite, http, language="en")
    passwords_before = len(sent_secrets(suite.messages(), "sms", mine))

    def asks_for_a_code() -> None:
        browser.open("/sign-in")
        browser.press("a[href='/forgot-password']")
        browser.fill("login", mine)
        browser.fill("contact", registration_form()["mobile_phone"])
        browser.press("#send-code")
        browser.shoot("forgot-password")

    await asyncio.to_thread(asks_for_a_code)
    code = (await eventually(lambda: sent_secrets(suite.messages(), "code", mine), what="the code by SMS"))[-1]

    def gives_the_code() -> str:
        browser.fill("code", code)
        browser.press("#redeem")
        return browser.find(".flash").text

    assert await asyncio.to_thread(gives_the_code) == "A new password is on its way by SMS. Sign in with it."
    new_password = (await eventually(lambda: sent_secrets(suite.messages(), "sms", mine)[passwords_before:],
                                     what="the new password by SMS"))[-1]

    def signs_in_with_it() -> str:
        assert browser.find("#login").get_attribute("value") == mine
        browser.fill("password", new_password)
        browser.press("form[action='/sign-in'] button")
        return browser.path

    assert await asyncio.to_thread(signs_in_with_it) == f"/a/{mine}"

    def changes_the_password() -> tuple[str, str]:
        browser.open("/settings")
        browser.fill("current_password", "not-the-password")
        browser.fill("new_password", "a-long-new-password-7")
        browser.press("#change-password")
        refused = browser.find("#password-error").text
        browser.fill("current_password", new_password)
        browser.fill("new_password", "a-long-new-password-7")
        browser.press("#change-password")
        return refused, browser.find(".flash").text

    refused, changed = await asyncio.to_thread(changes_the_password)
    assert refused == "This is not your current password."
    assert changed == "The password is changed; every other sign-in has ended."
    codes_before = len(sent_secrets(suite.messages(), "code", mine))

    def asks_to_change_the_phone() -> tuple[str, str]:
        browser.fill("contact", "+7 915 000")  # too short to be a mobile number
        browser.press("#change-contact")
        wrong = browser.find("#contact-error").text
        browser.fill("contact", "+7 916 555-01-23")
        browser.press("#change-contact")
        browser.shoot("settings-contact-code")
        return wrong, browser.find(".flash").text

    wrong, sent = await asyncio.to_thread(asks_to_change_the_phone)
    assert wrong and sent == "A code is on its way to +7 *** ***-01-23."
    contact_code = (await eventually(lambda: sent_secrets(suite.messages(), "code", mine)[codes_before:],
                                     what="the code at the new phone"))[-1]

    def confirms_it() -> tuple[str, str]:
        browser.fill("contact-code", contact_code)
        browser.press("#confirm-contact")
        return browser.find(".flash").text, browser.find("#masked-phone").text

    confirmed, shown = await asyncio.to_thread(confirms_it)
    assert confirmed == "The contact is changed; the previous one was told."
    assert shown.endswith("01-23") and not browser.driver.find_elements(By.ID, "confirm-contact")
    async with httpx.AsyncClient(timeout=30) as http:
        login = await http.post(f"{suite.urls()['identity']}/identity/login",
                                json={"login": mine, "password": "a-long-new-password-7"})
    assert login.status_code == 200
