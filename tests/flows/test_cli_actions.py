"""The `billing` command line's actions against the four running services: each command goes
to the owning service's API (or, for a payment, the payments topic), never a database."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from billing_events.testing.plugin import eventually


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


async def _balance_is(suite: Any, number: str, minor: int) -> bool:
    return await suite.ledger_balance(number) == minor == await suite.tariff_balance(number)
