"""Top up by card in a real browser, end to end: the cabinet's form, the development acquirer's
page (the ledger's, standing in for the acquirer's under `make run`), back to the cabinet's result
page, and the overview's balances. On 7 December 2026 (Moscow) the "20 % back" campaign runs
(1 December 2026 to 1 March 2027, card payments of 500.00 or more)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from billing_events.testing.plugin import eventually
from tests.flows.conftest import Suite

from .conftest import Browser
from .test_cabinet_in_browser import OTHER_PERSON, _balance_is, _session, _subscriber, plain, rub

IN_THE_CAMPAIGN = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


@pytest.fixture
def start() -> datetime:
    return IN_THE_CAMPAIGN


def _pays_by_card(browser: Browser, ledger: str, account: str, amount: str, button: str) -> tuple[str, str]:
    """The subscriber's top-up: the amount, the acquirer's page and its ``button``; the page the
    browser comes back to and its verdict."""
    browser.open(f"/a/{account}/top-up")
    browser.fill("amount", amount)
    browser.press("form.card button")
    assert browser.driver.current_url.startswith(f"{ledger}/ledger/dev-acquirer/") and "Development acquirer" in browser.text
    browser.press(f"form[action$='/{button}'] button")
    return browser.path, browser.find("#card-payment").text


async def test_a_subscriber_tops_up_by_card_through_the_acquirer_page_and_sees_the_money_once(
        suite: Suite, browser: Browser) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        mine, password = await _subscriber(suite, http, language="en")
    ledger = suite.urls()["ledger"]

    def signs_in_and_pays_1000() -> tuple[str, str]:
        browser.open("/sign-in")
        browser.fill("login", mine)
        browser.fill("password", password)
        browser.press("form[action='/sign-in'] button")
        assert browser.path == f"/a/{mine}"
        return _pays_by_card(browser, ledger, mine, "1000", "approve-twice")  # the second callback changes nothing

    back, verdict = await asyncio.to_thread(signs_in_and_pays_1000)
    assert back.startswith(f"/a/{mine}/top-up/")
    assert plain(verdict).startswith(f"Paid: {rub(100_000, 'en_GB')} by card (reference DEV-")
    await eventually(lambda: _balance_is(suite, mine, 100_000), what="the card payment on the balance")

    def reads_the_overview() -> tuple[str, str]:
        browser.open(f"/a/{mine}")
        browser.shoot("overview-after-card")
        return plain(browser.find("#main-balance").text), plain(browser.find("#bonus-balance").text)

    assert await asyncio.to_thread(reads_the_overview) == (rub(100_000, "en_GB"), rub(20_000, "en_GB"))

    def declines_600() -> tuple[str, str]:
        back, verdict = _pays_by_card(browser, ledger, mine, "600", "decline")
        browser.shoot("top-up-declined")
        return back, verdict

    back, verdict = await asyncio.to_thread(declines_600)
    assert back.startswith(f"/a/{mine}/top-up/")
    assert plain(verdict) == f"The bank declined the payment of {rub(60_000, 'en_GB')}."
    assert await suite.ledger_balance(mine) == 100_000  # the decline was settled before the page came back

    # The way back names a payment, never a place: another subscriber's payment is not found, and
    # the ledger's redirect goes only to the address the operator configured.
    async with httpx.AsyncClient(timeout=30) as http:
        theirs, their_password = await _subscriber(suite, http, **OTHER_PERSON)
        login = await http.post(f"{suite.urls()['identity']}/identity/login",
                                json={"login": theirs, "password": their_password})
        their_intent = await http.post(f"{suite.urls()['ledger']}/ledger/card-payments",
                                       json={"amount": {"minor": 50_000, "currency": "RUB"}},
                                       headers={"Authorization": f"Bearer {login.json()['token']}"})
        assert their_intent.status_code == 201, their_intent.text
        cookie, _ = await asyncio.to_thread(_session, browser)
        http.cookies.set("cabinet_session", cookie)
        peek = await http.get(f"{browser.base}/card-payments/{their_intent.json()['intent_id']}")
        assert peek.status_code == 404 and theirs not in peek.text
        paid = await http.post(f"{suite.urls()['ledger']}{their_intent.json()['pay_url']}/decline",
                               params={"next": "https://evil.example/"})
        assert paid.status_code == 303
        assert paid.headers["location"] == f"{browser.base}/card-payments/{their_intent.json()['intent_id']}"
