"""`billing clock` under the embedded suite: every service reads one clock file, the command line
moves it, and the tariff service closes each day that passed, in order, as midnight would.

Across a month boundary each day is charged its own month's share; across a year boundary a
voluntary block that spans it ends by itself, and the year's one block is available again."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from billing_cli.output import money
from billing_contracts.money import Money
from billing_events.testing.plugin import eventually
from tariff import service
from tariff.domain.proration import daily_share

INTERNET_100_MOSCOW = Money(minor=55_000, currency="RUB")
BLOCK_PRICE_MOSCOW = 15_000
PAID = 300_000


async def _subscriber(suite: Any, form: dict[str, Any], passport: str, plan: str) -> str:
    """Register, pay 3,000.00 RUB from a terminal and activate ``plan``, through the CLI."""
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(
        {**form, "passport_number": passport, "mobile_phone": f"+7 915 204-{passport[:2]}-{passport[2:4]}"}).encode())
    assert code == 0, err
    number = json.loads(out)["account_number"]
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account")
    code, _, err = await suite.billing("do", "pay", number, "3000")
    assert code == 0, err
    await eventually(lambda: _balances_are(suite, number, PAID), what="payment known to ledger and tariff")
    code, _, err = await suite.billing("do", "activate", number, plan)
    assert code == 0, err
    return number


async def _balances_are(suite: Any, number: str, minor: int) -> bool:
    return await suite.ledger_balance(number) == minor == await suite.tariff_balance(number)


def _closed(through: date, days: int, charges: int, minor: int) -> str:
    return f"days closed through {through}: {days} account-days, {charges} charges, {money(minor)}"


async def test_advancing_across_a_month_boundary_charges_each_day_its_months_share(
    shared_clock_suite: Any, form: dict[str, Any]
) -> None:
    suite = shared_clock_suite
    code, out, err = await suite.billing("clock", "set", "2027-01-30T09:00+03:00")
    assert code == 0, err
    assert "clock: 2027-01-30 06:00 UTC" in out
    number = await _subscriber(suite, form, "482913", "internet-100")  # from 31 January

    code, out, err = await suite.billing("clock", "advance", "3d")  # 2 February, 09:00 in Moscow
    assert code == 0, err
    jan31, feb1 = daily_share(INTERNET_100_MOSCOW, date(2027, 1, 31)), daily_share(INTERNET_100_MOSCOW, date(2027, 2, 1))
    assert jan31 != feb1  # a 31-day month's share against a 28-day month's
    assert "clock: 2027-02-02 06:00 UTC" in out
    assert _closed(date(2027, 2, 1), 2, 2, jan31.minor + feb1.minor) in out
    await eventually(lambda: _balances_are(suite, number, PAID - jan31.minor - feb1.minor), what="two charges posted")

    code, out, err = await suite.billing("tariff", "close-days", "--until", "2027-02-01")  # the catch-up again
    assert code == 0, err
    assert _closed(date(2027, 2, 1), 0, 0, 0) in out  # idempotent: nothing is charged twice
    code, out, err = await suite.billing("tariff", "close-days", "--until", "2027-02-05")
    assert code == 0, err
    assert _closed(date(2027, 2, 1), 0, 0, 0) in out  # never a day that has not ended


async def test_advancing_across_a_year_boundary_ends_a_block_and_gives_the_years_block_back(
    shared_clock_suite: Any, form: dict[str, Any]
) -> None:
    suite = shared_clock_suite
    code, _, err = await suite.billing("clock", "set", "2026-12-29T09:00+03:00")
    assert code == 0, err
    spanning = await _subscriber(suite, form, "482913", "internet-100")  # plans from 30 December
    short = await _subscriber(suite, form, "517304", "internet-100")
    code, out, err = await suite.billing("clock", "advance", "1d")
    assert code == 0, err
    assert _closed(date(2026, 12, 29), 0, 0, 0) in out  # no plan ran on the 29th

    code, out, err = await suite.billing("do", "block", spanning, "3", "--json")  # 30 Dec to 1 Jan
    assert code == 0, err
    code, out, err = await suite.billing("do", "block", short, "1", "--json")  # 30 Dec only
    assert code == 0, err
    fee = PAID - BLOCK_PRICE_MOSCOW
    await eventually(lambda: _balances_are(suite, short, fee), what="block fee posted")

    code, out, err = await suite.billing("clock", "advance", "1d")  # 31 December
    assert code == 0, err
    assert _closed(date(2026, 12, 30), 2, 0, 0) in out  # both blocked: no fees
    code, _, err = await suite.billing("do", "block", short, "1")
    assert code == 4 and "2026" in err  # its block ended by itself; the year's one block is used

    code, out, err = await suite.billing("clock", "advance", "2d")  # 2 January 2027
    assert code == 0, err
    dec31, jan1 = daily_share(INTERNET_100_MOSCOW, date(2026, 12, 31)), daily_share(INTERNET_100_MOSCOW, date(2027, 1, 1))
    assert _closed(date(2027, 1, 1), 4, 2, dec31.minor + jan1.minor) in out  # `short` pays both days
    await eventually(lambda: _balances_are(suite, short, fee - dec31.minor - jan1.minor), what="charges posted")
    ended = await service.get_subscription(suite.tariff_context, spanning)
    assert ended.unended_voluntary_block is None  # ended automatically with its last day, 1 January
    assert [(b.start, b.last_day, b.ended) for b in ended.voluntary_blocks] == [
        (date(2026, 12, 30), date(2027, 1, 1), True)]

    code, out, err = await suite.billing("do", "block", short, "1", "--json")  # a new year, a new block
    assert code == 0, err
    assert "VoluntaryBlockStarted" in out
    await eventually(lambda: _balances_are(suite, spanning, fee), what="no fee while blocked")
