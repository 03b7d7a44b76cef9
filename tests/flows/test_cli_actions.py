"""The `billing` command line's actions against the four running services: each command goes
to the owning service's API (or, for a payment, the payments topic), never a database."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from billing_cli.output import money

from billing_contracts import topics
from billing_events.event_log import published
from billing_events.testing.plugin import eventually
from ledger import store as ledger_store
from tariff import service as tariff


async def test_register_activate_block_unblock_reset_and_tail(suite: Any, form: dict[str, Any]) -> None:
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(form).encode())
    assert code == 0, err
    number = json.loads(out)["account_number"]
    code, _, err = await suite.billing("do", "register", "-", stdin=json.dumps(form).encode())
    assert code == 4 and "already" in err.lower()  # the same passport twice

    await eventually(lambda: suite.ledger_account_open(number), what="ledger account")
    code, out, err = await suite.billing("do", "pay", number, "2000")
    assert code == 0, err
    await eventually(lambda: _balance_is(suite, number, 200_000), what="payment posted and known to tariff")
    history = json.loads((await suite.billing("history", number, "--json"))[1])
    kinds = [e["event_type"] for e in history]
    assert {"SubscriberRegistered", "PaymentReceived", "BalanceChanged"} <= set(kinds)
    assert [e["balance_after"] for e in history if e["event_type"] == "BalanceChanged"] == [200_000]
    code, _, err = await suite.billing("do", "pay", number, "1000000.01")
    assert code == 2 and "1000000.01 RUB is over the limit of 1000000.00 RUB" in err
    code, _, err = await suite.billing("do", "redeem", number, "10", "--purpose", "gift")
    assert code == 4 and f"{number} has 0.00 RUB in bonuses, not 10.00 RUB" in err

    code, out, err = await suite.billing("do", "activate", number, "internet-100", "--json")
    assert code == 0, err
    code, _, err = await suite.billing("do", "change-plan", number, "no-such-plan")
    assert code == 4 and "no-such-plan" in err
    suite.clock.advance(timedelta(days=1))  # the plan is active from the next billing day
    code, out, err = await suite.billing("do", "block", number, "7", "--json")
    assert code == 0, err
    assert "VoluntaryBlockStarted" in out
    code, out, err = await suite.billing("do", "unblock", number, "--json")
    assert code == 0, err
    code, _, err = await suite.billing("do", "block", number, "5")
    assert code == 4 and "once" in err.lower()  # one voluntary block a year

    code, out, err = await suite.billing("do", "reset-password", "--login", number,
                                    "--contact", form["mobile_phone"], "--json")
    assert code == 0, err
    assert "***" in out and form["mobile_phone"] not in out  # only the masked destination

    code, out, err = await suite.billing("events", "tail", "--account", number, "--from-beginning",
                                    "--limit", "3", "--json")
    assert code == 0, err
    tailed = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00") if chunk.strip()]
    assert len(tailed) == 3 and all(e["account"] == number for e in tailed)

    code, out, err = await suite.billing("token", "--account", number)
    assert code == 0 and out.count(".") == 2  # a JWT


async def test_bonuses_buy_an_item_of_the_rewards_catalogue(shared_clock_suite: Any, form: dict[str, Any]) -> None:
    """`billing do redeem --item`: the item's price and kind are the ledger's catalogue's; too few
    bonuses or an unknown item are refused in words. The packaged 20 % card campaign earns them."""
    suite = shared_clock_suite
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(form).encode())
    assert code == 0, err
    number = json.loads(out)["account_number"]
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account")
    suite.clock.move_to(datetime(2026, 12, 5, 9, tzinfo=UTC))  # the 20 % card campaign runs
    assert (await suite.billing("do", "pay", number, "1000", "--channel", "card"))[0] == 0
    await eventually(lambda: _bonus_is(suite, number, 200_00), what="20 % back credited")

    code, out, err = await suite.billing("do", "redeem", number, "--item", "discount-100", "--json")
    assert code == 0, err
    assert "BonusRedeemed" in out
    await eventually(lambda: _bonus_is(suite, number, 100_00), what="the item's price spent")
    code, _, err = await suite.billing("do", "redeem", number, "--item", "kino-month")
    assert code == 4 and f"{number} has 100.00 RUB in bonuses, not 250.00 RUB" in err
    code, _, err = await suite.billing("do", "redeem", number, "--item", "no-such-item")
    assert code == 4 and "no-such-item" in err
    for neither_or_both in ((), ("10", "--item", "discount-100")):
        code, _, err = await suite.billing("do", "redeem", number, *neither_or_both)
        assert code == 2 and "--item" in err


async def _bonus_is(suite: Any, number: str, minor: int) -> bool:
    async with suite.ledger.db.connect() as conn:
        state = await ledger_store.account(conn, number)
    return state is not None and state.bonus == minor


async def _balance_is(suite: Any, number: str, minor: int) -> bool:
    return await suite.ledger_balance(number) == minor == await suite.tariff_balance(number)


async def test_a_month_with_a_debt_block_drawn_and_stated(suite: Any, form: dict[str, Any],
                                                                       tmp_path: Any) -> None:
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(form).encode())
    assert code == 0, err
    number = json.loads(out)["account_number"]
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account")
    assert (await suite.billing("do", "pay", number, "20"))[0] == 0
    await eventually(lambda: _balance_is(suite, number, 2_000), what="the first payment")
    assert (await suite.billing("do", "activate", number, "internet-100"))[0] == 0
    for _ in range(5):  # day by day until the debt blocks the account
        suite.clock.advance(timedelta(days=1))
        await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
        if (await tariff.get_subscription(suite.tariff_context, number)).debt_blocked:
            break
    in_debt = await eventually(lambda: _negative(suite, number), what="a debt")
    for _ in range(2):  # blocked for two days: no fees
        suite.clock.advance(timedelta(days=1))
        await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
    assert (await suite.billing("do", "pay", number, "500"))[0] == 0
    await eventually(lambda: _balance_is(suite, number, in_debt + 50_000), what="the debt paid")

    async def unblocked() -> Any:
        history = json.loads((await suite.billing("history", number, "--json"))[1])
        return history if "AccountUnblocked" in {e["event_type"] for e in history} else None
    history = await eventually(unblocked, what="the unblock in the history")
    changes = [e for e in history if e["event_type"] == "BalanceChanged"]

    picture = tmp_path / "month.svg"
    code, out, err = await suite.billing("history", number, "--svg", str(picture))
    assert code == 0 and str(picture) in out, err
    root = ElementTree.parse(picture).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    main = root.find("svg:polyline[@class='balance main']", ns)
    bonus = root.find("svg:polyline[@class='balance bonus']", ns)
    assert main is not None and bonus is not None
    assert len(main.get("points", "").split()) == 2 * len(changes)  # a step per change, held to the end
    [block] = root.findall("svg:rect[@class='block debt']", ns)
    assert float(block.get("width", "0")) > 2 and "blocked (debt) from" in block.findtext("svg:title", "", ns)
    payments = [marker.findtext("svg:title", "", ns) for marker in root.findall("svg:circle[@class='payment']", ns)]
    assert [title.split(" at ")[0] for title in payments] == ["payment 20.00 RUB", "payment 500.00 RUB"]
    axis = [label.text for label in root.findall("svg:text[@class='axis']", ns)]
    assert axis[:3] == [money(in_debt), "0.00 RUB", money(in_debt + 50_000)]

    code, out, err = await suite.billing("statement", number, "--from", "2026-03-01", "--to", "2026-04-01",
                                    "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["kind"] == "opening balance" and rows[-1]["kind"] == "total"
    assert {row["currency"] for row in rows} == {"RUB"}
    assert int(rows[0]["balance_after"]) + sum(int(row["amount"]) for row in rows[1:-1]) \
        == int(rows[-1]["balance_after"]) == in_debt + 50_000
    assert int(rows[-1]["amount"]) == sum(int(row["amount"]) for row in rows[1:-1])
    charges = [row for row in rows if row["kind"] == "charge"]
    assert charges and {row["charged_for"] for row in charges} == {"plan internet-100"}
    assert [row["billing_day"] for row in charges] == sorted({row["billing_day"] for row in charges})
    code, out, err = await suite.billing("statement", number, "--from", "2026-03-01", "--to", "2026-04-01")
    assert code == 0 and f"plan internet-100, {charges[0]['billing_day']}" in out and "20.00 RUB" in out, err

    code, out, err = await suite.billing("events", "tail", "--account", number, "--from-beginning",
                                    "--limit", "12", "--json")
    assert code == 0, err
    tailed = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00") if chunk.strip()]
    moments = [e["occurred_at"] for e in tailed]
    assert len(tailed) == 12 and moments == sorted(moments), moments  # in the order it happened
    assert tailed[0]["event_type"] == "SubscriberRegistered"

    code, out, err = await suite.billing("history", number, "--chart")
    assert code == 0, err
    drawn = out.splitlines()
    marks = drawn[-3]
    assert marks.strip().startswith("P") and "D" in marks and marks.count("P") == 2
    assert any("█" in row for row in drawn) and drawn[-1].strip().startswith("█ main")


async def _negative(suite: Any, number: str) -> int | None:
    balance = await suite.ledger_balance(number)
    return balance if balance is not None and balance < 0 and balance == await suite.tariff_balance(number) else None


async def test_the_mistyped_number_shows_where_its_payment_was_placed(suite: Any, form: dict[str, Any]) -> None:
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(form).encode())
    assert code == 0, err
    number, mistyped = json.loads(out)["account_number"], "999999999999"
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account")
    code, _, err = await suite.billing("do", "pay", mistyped, "75", "--reference", "WRONG-NUMBER")
    assert code == 0, err

    async def parked() -> Any:
        async with suite.ledger.db.connect() as conn:
            items = await ledger_store.open_suspense(conn)
        return items[0] if items else None

    item = await eventually(parked, what="payment parked in suspense")
    code, _, err = await suite.billing("do", "move-suspense", str(item.transaction_id), number,
                                       "--reason", "typo in the number")
    assert code == 0, err

    wide = {"COLUMNS": "400"}  # one table row a line
    for account in (mistyped, number):
        code, out, err = await suite.billing("history", account, "--json")
        assert code == 0, err
        placed = [e["payload"] for e in json.loads(out) if e["event_type"] == "SuspenseResolved"]
        assert [(p["account_number"], p["typed_account"], p["amount"]["minor"]) for p in placed] \
            == [(number, mistyped, 7_500)], account
    code, out, err = await suite.billing("history", mistyped, env=wide)
    assert code == 0, err
    assert "PaymentUnmatched" in out and "SuspenseResolved" in out and f"account_number={number}" in out
    assert "amount=75.00 RUB" in out
    code, out, err = await suite.billing("history", number, env=wide)
    assert code == 0 and f"typed_account={mistyped}" in out, err

    # Kept under the typed number for its history only: the ledger's topic carries the placement
    # once, and a restore of the topic from the archive sends it once.
    async with suite.ledger.db.connect() as conn:
        kept = [row async for rows in published(conn, topics=[suite.ledger.topics(topics.LEDGER)]) for row in rows]
    assert [row.key for row in kept if row.headers.get("event_type") == "SuspenseResolved"] == [number]
