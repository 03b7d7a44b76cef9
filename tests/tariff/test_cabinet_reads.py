"""The cabinet's reads of the tariff service, over the broker on PostgreSQL and SQLite: the
forecast (today's fee, the day the money lasts until, what to pay to stay unblocked to the end of
the month) against a hand computation for prepaid and credit accounts across a month end, and
the tariff history (each plan and option with its days and what it cost); each for its own
account only.

Hand computation, internet-100 (55000 a month in moscow) with antivirus (9900): a month of D
days charges D shares, the first ``price mod D`` days one kopeck more.
- January 2027 (31 days): 55000 = 31 * 1774 + 6 and 9900 = 31 * 319 + 11, so from the 12th a
  day costs 1774 + 319 = 2093.
- February 2027 (28 days): 55000 = 28 * 1964 + 8 and 9900 = 28 * 353 + 16: days 1-8 cost
  1965 + 354 = 2319, from the 17th 1964 + 353 = 2317.
- March 2027 (31 days): the 1st costs 1775 + 320 = 2095.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import httpx

from billing_contracts.accounts import luhn_check_digit
from billing_contracts.catalog.ledger import PaymentType
from billing_events.clock import ManualClock
from billing_events.testing.plugin import token_minter
from tariff.service import close_days

from .conftest import noon as tariff_noon

ONE_DAY = timedelta(days=1)


def number(n: int) -> str:
    body = f"10000000{n:03d}"
    return body + luhn_check_digit(body)


PREPAID, CREDIT, RICH, STRANGER = number(301), number(302), number(303), number(304)


def rub(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "RUB"}


def _client(runtime: Any, account: str | None) -> httpx.AsyncClient:
    """A subscriber's client for ``account`` (None: anonymous)."""
    headers = {}
    if account is not None:
        token, _ = token_minter(runtime.clock).issue("subscriber", account)
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://tariff/tariff",
                             headers=headers)


@asynccontextmanager
async def _subscribed(tariff: Any, database_url: str, clock: ManualClock,
                      balances: dict[str, dict[str, Any]]) -> AsyncIterator[tuple[Any, Any]]:
    """A running tariff whose accounts have the ledger's balances given and, each by its own
    token, internet-100 with antivirus from tomorrow."""
    settings = await tariff.settings(database="given", database_url=database_url)
    async with tariff.running(settings, clock) as (runtime, ctx, producer, _):
        for account, balance in balances.items():
            await tariff.register(runtime, producer, account)
            await tariff.send_balance(runtime, producer, account, **balance)
            async with _client(runtime, account) as mine:
                for path, body in (("plan", {"plan": "internet-100"}), ("options", {"option": "antivirus"})):
                    answer = await mine.post(f"/accounts/{account}/{path}", json=body)
                    assert answer.status_code == 200, answer.text
        yield runtime, ctx


async def _forecast(runtime: Any, account: str) -> dict[str, Any]:
    async with _client(runtime, account) as mine:
        answer = await mine.get(f"/accounts/{account}/forecast")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_the_forecast_on_the_30th_of_a_31_day_month(tariff: Any, database_url: str) -> None:
    clock = ManualClock(tariff.noon(date(2027, 1, 27)))  # the plan takes effect on the 28th
    balances = {PREPAID: {"main": 6_000},
                CREDIT: {"main": -3_000, "payment_type": PaymentType.CREDIT, "credit_limit": 10_000},
                RICH: {"main": 12_000}}
    async with _subscribed(tariff, database_url, clock, balances) as (runtime, ctx):
        clock.set(tariff.noon(date(2027, 1, 30)))
        closed = await close_days(ctx, date(2027, 1, 29))  # the 28th and the 29th: 2 * 2093 each, unsettled
        assert (closed.days_closed, closed.charged_minor) == (6, 3 * 2 * 2_093)
        prepaid, credit, rich = [await _forecast(runtime, account) for account in (PREPAID, CREDIT, RICH)]

    for forecast in (prepaid, credit, rich):
        assert (forecast["today"], forecast["first_day_to_charge"], forecast["month_end"]) == (
            "2027-01-30", "2027-01-30", "2027-01-31")
        assert forecast["daily_fee"] == rub(2_093)
        assert [(item["item"], item["code"], item["daily_fee"]["minor"]) for item in forecast["items"]] == [
            ("plan", "internet-100", 1_774), ("option", "antivirus", 319)]
    # 6000 - 4186 = 1814 left: not the 30th's 2093; the 30th and the 31st need 4186 - 1814
    assert (prepaid["available"], prepaid["lasts_until"], prepaid["to_pay_now"]) == (
        rub(1_814), "2027-01-29", rub(2_372))
    # -3000 - 4186 + a limit of 10000 = 2814: the 30th (721 left), not the 31st; 4186 - 2814
    assert (credit["available"], credit["lasts_until"], credit["to_pay_now"]) == (
        rub(2_814), "2027-01-30", rub(1_372))
    # 12000 - 4186 = 7814: the 30th and 31st (3628 left), 1 February (2319: 1309 left), not the 2nd
    assert (rich["available"], rich["lasts_until"], rich["to_pay_now"]) == (rub(7_814), "2027-02-01", rub(0))


async def test_the_forecast_on_28_february(tariff: Any, database_url: str) -> None:
    clock = ManualClock(tariff.noon(date(2027, 2, 24)))
    balances = {PREPAID: {"main": 10_000},
                CREDIT: {"main": -12_000, "payment_type": PaymentType.CREDIT, "credit_limit": 20_000}}
    async with _subscribed(tariff, database_url, clock, balances) as (runtime, ctx):
        clock.set(tariff.noon(date(2027, 2, 28)))
        await close_days(ctx, date(2027, 2, 27))  # the 25th to the 27th: 3 * 2317 = 6951 unsettled
        prepaid, credit = [await _forecast(runtime, account) for account in (PREPAID, CREDIT)]
    for forecast in (prepaid, credit):
        assert (forecast["today"], forecast["month_end"], forecast["daily_fee"]) == (
            "2027-02-28", "2027-02-28", rub(2_317))
    # 10000 - 6951 = 3049: the 28th (732 left), not 1 March (2095)
    assert (prepaid["available"], prepaid["lasts_until"], prepaid["to_pay_now"]) == (
        rub(3_049), "2027-02-28", rub(0))
    # -12000 - 6951 + 20000 = 1049: not the 28th; 2317 - 1049 keeps it within the limit
    assert (credit["available"], credit["lasts_until"], credit["to_pay_now"]) == (
        rub(1_049), "2027-02-27", rub(1_268))


async def test_the_tariff_history_shows_each_plan_and_option_with_its_days_and_cost(
    tariff: Any, database_url: str
) -> None:
    clock = ManualClock(tariff.noon(date(2027, 1, 27)))
    async with _subscribed(tariff, database_url, clock, {RICH: {"main": 100_000}}) as (runtime, ctx):
        clock.set(tariff.noon(date(2027, 1, 30)))
        async with _client(runtime, RICH) as mine:
            changed = await mine.put(f"/accounts/{RICH}/plan", json={"plan": "internet-300"})  # from the 31st
            assert changed.status_code == 200, changed.text
            await close_days(ctx, date(2027, 1, 29))
            early = (await mine.get(f"/accounts/{RICH}/tariff-history")).json()
        clock.set(tariff.noon(date(2027, 2, 1)))
        await close_days(ctx, date(2027, 1, 31))
        async with _client(runtime, RICH) as mine:  # a new token: two days went by
            answer = await mine.get(f"/accounts/{RICH}/tariff-history")
    assert answer.status_code == 200, answer.text
    # before the change took effect, the history does not know it: it was only planned
    assert [period["code"] for period in early["periods"]] == ["internet-100", "antivirus"]
    history = answer.json()
    assert history["last_closed_day"] == "2027-01-31"
    # internet-300: 70000 = 31 * 2258 + 2, so the 31st costs 2258
    assert [(p["item"], p["code"], p["started"], p["ended"], p["days"], p["charged_days"],
             p["daily_fee"], p["charged"]) for p in history["periods"]] == [
        ("plan", "internet-100", "2027-01-28", "2027-01-30", 3, 3, rub(1_774), rub(3 * 1_774)),
        ("option", "antivirus", "2027-01-28", None, 4, 4, rub(319), rub(4 * 319)),
        ("plan", "internet-300", "2027-01-31", None, 1, 1, rub(2_258), rub(2_258)),
    ]
    assert history["periods"][1]["name"] == "Антивирус"


async def test_each_read_is_for_its_own_account_only(tariff: Any, database_url: str) -> None:
    clock = ManualClock(tariff.noon(date(2027, 1, 27)))
    async with _subscribed(tariff, database_url, clock, {RICH: {"main": 100_000}, STRANGER: {"main": 0}}) as (
            runtime, _):
        async with _client(runtime, RICH) as owner, _client(runtime, STRANGER) as other, \
                _client(runtime, None) as anonymous:
            for path in (f"/accounts/{RICH}/forecast", f"/accounts/{RICH}/tariff-history"):
                assert (await owner.get(path)).status_code == 200, path
                refused = await other.get(path)
                assert (refused.status_code, refused.json()["code"]) == (403, "wrong_account"), path
                missing = await anonymous.get(path)
                assert (missing.status_code, missing.json()["code"]) == (401, "missing_token"), path
            clock.advance(timedelta(minutes=16))  # tokens live 15 minutes
            for path in (f"/accounts/{RICH}/forecast", f"/accounts/{RICH}/tariff-history"):
                expired = await owner.get(path)
                assert (expired.status_code, expired.json()["code"]) == (401, "token_expired"), path
        paths = runtime.http_app.openapi()["paths"]
        for path in ("/tariff/accounts/{account}/forecast", "/tariff/accounts/{account}/tariff-history"):
            assert "subscriber" in paths[path]["get"]["x-callers"], path


def test_a_blocked_day_is_a_day_in_effect_but_not_charged(catalog: Any) -> None:
    from billing_contracts.catalog.tariff import FeeKind
    from tariff.domain import activate, close_account_day, register

    first = date(2027, 1, 28)
    state = activate(register(RICH, "moscow", catalog), catalog, "internet-100", first - ONE_DAY).state
    state = close_account_day(state, catalog, first, tariff_noon(first)).state
    blocked = state.model_copy(update={"debt_blocked": True})
    state = close_account_day(blocked, catalog, first + ONE_DAY, tariff_noon(first)).state
    [period] = state.history
    assert (period.fee_kind, period.code, period.started, period.ended) == (FeeKind.SUBSCRIPTION, "internet-100",
                                                                           first, None)
    assert (period.charged_days, period.charged.minor, period.daily_fee.minor if period.daily_fee else None) == (
        1, 1_774, 1_774)
