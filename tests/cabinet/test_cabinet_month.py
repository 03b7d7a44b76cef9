"""A subscriber's first weeks in the browser, the whole way, in each of the cabinet's three
languages: sign the contract on the site, sign in with the SMS password, top up by card, take
the bundle and a channel package, send money to another account, see the first charges and the
forecast move as the clock does, block for ten days, download a payment's receipt, sign out.
Every word checked is the language's own (the cabinet's catalogs), every amount in its locale's
form."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from billing_cabinet.i18n import CATALOGS
from billing_events.testing.file_channel import sent_secrets
from billing_events.testing.plugin import eventually
from tariff import service as tariff
from tests.flows.conftest import Suite, registration_form

from .conftest import Browser
from .test_cabinet_card_payment import _pays_by_card
from .test_cabinet_in_browser import OTHER_PERSON, _balance_is, _knows, _session, _subscriber, plain, rub

LOCALES = {"sk": "sk_SK", "ru": "ru_RU", "en": "en_GB"}
TYPED = {key: value for key, value in registration_form().items()
         if key not in ("contract_accepted", "legal_status", "region", "date_of_birth", "date_of_issue")}


@pytest.mark.parametrize("language", sorted(LOCALES))
async def test_a_subscribers_first_weeks_in_the_browser(suite: Suite, browser: Browser, language: str) -> None:
    said, locale, ledger = CATALOGS[language].gettext, LOCALES[language], suite.urls()["ledger"]
    async with httpx.AsyncClient(timeout=30) as http:
        brother, _ = await _subscriber(suite, http, **OTHER_PERSON)

    def signs_the_contract() -> str:
        browser.open("/register")
        browser.press(f"form.languages button[value='{language}']")
        assert browser.find("h1").text == said("Sign the contract")
        browser.find("#contract_accepted").click()
        for name, value in TYPED.items():
            browser.fill(name, value)
        for name in ("date_of_birth", "date_of_issue"):  # a date input types in the browser's locale
            browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find(f"#{name}"),
                                          registration_form()[name])
        browser.press("#register")
        assert browser.find("h1").text == said("Welcome!")
        return browser.find("#new-account").text

    mine = await asyncio.to_thread(signs_the_contract)
    password = (await eventually(lambda: sent_secrets(suite.messages(), "sms", mine), what="the SMS password"))[-1]
    await eventually(_knows(suite, mine), what="every service knows the account")

    def signs_in_and_pays_by_card() -> tuple[str, str]:
        browser.open("/sign-in")
        browser.fill("login", mine)
        browser.fill("password", password)
        browser.press("form[action='/sign-in'] button")
        assert browser.path == f"/a/{mine}" and browser.find("html").get_attribute("lang") == language
        assert browser.find("h1").text == said("Overview")
        return _pays_by_card(browser, ledger, mine, "1000", "approve")

    back, _verdict = await asyncio.to_thread(signs_in_and_pays_by_card)
    assert back.startswith(f"/a/{mine}/top-up/")
    await eventually(lambda: _balance_is(suite, mine, 100_000), what="the card payment on the balance")

    def takes_the_bundle_and_a_package_then_sends_100() -> str:
        browser.open(f"/a/{mine}/tariff")
        browser.find("#plan-combo-100-optimum").click()
        browser.press("#choose-plan")
        assert browser.find(".flash").text == said("Done: the change takes effect from tomorrow.")
        browser.press("#add-kino")
        assert browser.find(".flash").text == said("Done: the change takes effect from tomorrow.")
        browser.open(f"/a/{mine}/transfer")
        browser.fill("to_account", brother)
        browser.fill("amount", "100")
        browser.press("main form button")
        assert browser.find("h1").text == said("Confirm the transfer") and browser.find("#confirm-to").text == brother
        browser.press("#confirm")
        assert plain(browser.find(".flash").text) == said("{amount} moved to account {number}.").format(
            amount=rub(10_000, locale), number=brother)
        assert plain(browser.find("#main-balance").text) == rub(90_000, locale)
        return plain(browser.find("section[aria-labelledby='forecast']").text)

    forecast_before = await asyncio.to_thread(takes_the_bundle_and_a_package_then_sends_100)
    await eventually(lambda: _balance_is(suite, brother, 10_000), what="the 100 on the brother's account")

    # They start tomorrow and are charged once that day has closed: two midnights on, closed as
    # the tariff's billing clock closes them.
    suite.clock.advance(timedelta(days=2))
    await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
    await eventually(lambda: _balance_below(suite, mine, 90_000), what="the first day's charges")

    def sees_the_charges_and_the_forecast_move() -> tuple[str, str]:
        browser.open(f"/a/{mine}")
        forecast = plain(browser.find("section[aria-labelledby='forecast']").text)
        browser.open(f"/a/{mine}/statement")
        assert browser.find("h1").text == said("Statement")
        return forecast, browser.text

    forecast_after, statement = await asyncio.to_thread(sees_the_charges_and_the_forecast_move)
    assert forecast_after != forecast_before
    assert "combo-100-optimum" in statement and "option kino" in statement  # what each charge paid for

    def blocks_for_ten_days() -> str:
        browser.open(f"/a/{mine}/block")
        assert browser.find("h1").text == said("Voluntary block")
        browser.fill("days", "10")
        browser.press("#start-block")
        return browser.find(".flash").text

    assert await asyncio.to_thread(blocks_for_ten_days) == said("The block has started.")

    def finds_a_receipt() -> tuple[str, str]:
        browser.open(f"/a/{mine}/statement")
        return browser.find("a[href$='.pdf']").get_attribute("href"), _session(browser)[0]

    receipt, cookie = await asyncio.to_thread(finds_a_receipt)
    async with httpx.AsyncClient(timeout=30, cookies={"cabinet_session": cookie}) as http:
        downloaded = await http.get(receipt)
    assert downloaded.headers["content-type"] == "application/pdf" and downloaded.content.startswith(b"%PDF-")

    def signs_out() -> str:
        browser.press("form.sign-out button")
        assert browser.path == "/sign-in" and browser.find(".flash").text == said("You have signed out.")
        browser.driver.back()  # the page before: nothing private comes back
        return browser.path

    assert await asyncio.to_thread(signs_out) == "/sign-in"

    async with httpx.AsyncClient(timeout=30, cookies={"cabinet_session": cookie}) as http:
        after = await http.get(f"{browser.base}/settings")  # a cookie copied before the sign-out
    assert after.status_code == 303 and after.headers["location"] == "/sign-in"  # identity refuses its tokens


async def _balance_below(suite: Suite, account: str, minor: int) -> bool:
    balance = await suite.ledger_balance(account)
    return balance is not None and balance < minor
