"""Credit on and off in the cabinet, in a real browser: the overview's form, the ledger's word on
the payment type shown back, and a limit above what a subscriber may choose refused in words."""

from __future__ import annotations

import asyncio

import httpx

from tests.flows.conftest import Suite

from .conftest import Browser
from .test_cabinet_in_browser import _subscriber, plain, rub


async def _payment_type(suite: Suite, account: str) -> tuple[str, int]:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{suite.urls()['ledger']}/ledger/accounts/{account}",
                                headers={"Authorization": f"Bearer {suite.service_token()}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["payment_type"], answer.json()["credit_limit"]["minor"]


async def test_a_subscriber_turns_credit_on_within_the_ceiling_and_off_again(suite: Suite, browser: Browser) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        mine, password = await _subscriber(suite, http, language="en")

    def asks_for_too_much_then_500() -> tuple[str, str, str]:
        browser.open("/sign-in")
        browser.fill("login", mine)
        browser.fill("password", password)
        browser.press("form[action='/sign-in'] button")
        assert plain(browser.find("#payment-type").text) == "prepaid"
        browser.fill("credit_limit", "5000")  # the self-service ceiling is 1,000.00
        browser.press("#credit-on")
        refused = browser.find("#credit-error").text
        browser.fill("credit_limit", "500")
        browser.press("#credit-on")
        browser.shoot("overview-credit")
        return refused, browser.find(".flash").text, plain(browser.find("#payment-type").text)

    refused, done, shown = await asyncio.to_thread(asks_for_too_much_then_500)
    assert refused == "This credit limit is more than you may choose yourself: for a larger one, call 0890."
    assert plain(done) == f"Credit is on, up to {rub(50_000, 'en_GB')}."
    assert shown == f"credit, limit {rub(50_000, 'en_GB')}"
    assert await _payment_type(suite, mine) == ("credit", 50_000)

    def turns_it_off() -> tuple[str, str]:
        browser.press("#credit-off")
        return browser.find(".flash").text, plain(browser.find("#payment-type").text)

    assert await asyncio.to_thread(turns_it_off) == ("Credit is off: the account is prepaid.", "prepaid")
    assert await _payment_type(suite, mine) == ("prepaid", 0)
