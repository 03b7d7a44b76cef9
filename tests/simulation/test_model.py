"""The reference model, held to what the documents print, and the shrinker: the simulation's
two parts that must be right on their own before they judge the suite."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from simulation.actions import generate
from simulation.model import BILLING_ZONE, Model, daily_share, end_of, luhn_digit, mistyped
from simulation.shrink import shrink


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=BILLING_ZONE)


def test_a_months_daily_shares_add_up_to_the_price_on_every_kind_of_month() -> None:
    for month in (date(2026, 12, 1), date(2027, 2, 1), date(2028, 2, 1), date(2027, 4, 1)):
        days = [month + timedelta(days=n) for n in range(31) if (month + timedelta(days=n)).month == month.month]
        for price in (55_000, 80_000, 29_900, 1):
            shares = [daily_share(price, day) for day in days]
            assert sum(shares) == price
            assert max(shares) - min(shares) <= 1
    # the walkthrough: 800.00 and 299.00 a month, 2 December: 35.46 together
    assert daily_share(80_000, date(2026, 12, 2)) + daily_share(29_900, date(2026, 12, 2)) == 3_546


def test_the_campaign_gives_a_fifth_back_on_card_and_e_wallet_inside_its_dates() -> None:
    model = Model(_at(date(2026, 12, 1)))
    model.register("A1")
    model.pay("card:1", "A1", 100_000, "RUB", channel="card")
    model.pay("terminal:1", "A1", 100_000, "RUB", channel="terminal")
    model.pay("ewallet:1", "A1", 49_999, "RUB", channel="ewallet")  # under the campaign's minimum
    model.pay("ewallet:2", "A1", 900_000, "RUB", channel="ewallet")  # a fifth is over the cap
    assert model.balances() == {"A1": (1_149_999, 20_000 + 100_000)}
    model.move_clock(_at(date(2027, 3, 1)))
    model.pay("card:2", "A1", 100_000, "RUB", channel="card")
    assert model.balances()["A1"][1] == 120_000


def test_a_payments_first_fate_wins() -> None:
    model = Model(_at(date(2026, 3, 2)))
    model.register("A1")
    model.pay("bank:1", "A1", 5_000, "RUB", channel="bank")
    model.pay("bank:1", "A1", 5_000, "RUB", channel="bank")  # a redelivery
    model.pay("bank:1", "A1", 7_000, "RUB", channel="bank")  # a conflict
    model.pay("bank:2", "A2", 3_000, "RUB", channel="bank")  # before the account exists
    model.register("A2")
    model.pay("bank:2", "A2", 3_000, "RUB", channel="bank")  # again, once it exists: still parked
    model.pay("bank:3", "A1", 100, "USD", channel="bank")
    model.pay("bank:4", "A1", 100_000_001, "RUB", channel="bank")
    model.pay("bank:5", "A1", 100, "RUB", channel="bank", copy=True)
    assert model.fates() == {"bank:1": "credited", "bank:2": "parked", "bank:3": "parked", "bank:4": "parked",
                             "bank:5": "refused"}
    assert model.conflicts == 1
    assert model.balances() == {"A1": (5_000, 0), "A2": (0, 0)}
    assert model.open_suspense() == {"bank:2": (3_000, "RUB"), "bank:3": (100, "USD"),
                                     "bank:4": (100_000_001, "RUB")}
    assert model.place("bank:2", "A2") and not model.place("bank:2", "A2")
    assert not model.place("bank:3", "A2")  # dollars do not go on a rouble account
    assert model.fates()["bank:2"] == "placed" and model.balances()["A2"] == (3_000, 0)


def test_a_catch_up_blocks_on_the_day_the_money_ran_out_and_charges_nothing_after() -> None:
    model = Model(_at(date(2026, 12, 1)))
    model.register("A1")
    model.pay("terminal:1", "A1", 5_000, "RUB", channel="terminal")
    assert model.activate("A1", "internet-100") and not model.activate("A1", "tv-basic")
    model.move_clock(_at(date(2026, 12, 10)))
    model.close_days(date(2026, 12, 9))
    # 550.00 over 31 days: 17.75 on the first 23 days, 17.74 after; from 2 December
    charged = [day for _, day, _ in model.charges]
    assert charged[0] == date(2026, 12, 2)
    assert sum(amount for *_, amount in model.charges) == 5_000 - model.balances()["A1"][0]
    broke = charged[-1]
    assert model.balances()["A1"][0] < 0 <= model.balances()["A1"][0] + model.charges[-1][2]
    assert model.blocks == [("A1", "blocked", end_of(broke))]
    model.transfer("A1", "A1", 1)  # refused: nothing changes
    model.pay("terminal:2", "A1", 10_000, "RUB", channel="terminal")
    assert model.blocks[-1] == ("A1", "unblocked", _at(date(2026, 12, 10)))
    assert model.notices() == {("A1", "blocked"): 1, ("A1", "unblocked"): 1}


def test_a_transfer_moves_only_money_the_giver_has() -> None:
    model = Model(_at(date(2026, 3, 2)))
    model.register("A1")
    model.register("A2")
    model.pay("shop:1", "A1", 1_000, "RUB", channel="shop")
    assert not model.transfer("A1", "A2", 1_001)
    assert model.transfer("A1", "A2", 1_000)
    assert model.balances() == {"A1": (0, 0), "A2": (1_000, 0)}


def test_a_mistyped_number_fails_the_check_digit() -> None:
    assert luhn_digit("10000000001") == "6"  # the walkthrough's first account: 100000000016
    assert mistyped("100000000016") != "100000000016"
    assert luhn_digit(mistyped("100000000016")[:-1]) != mistyped("100000000016")[-1]


def test_the_same_seed_chooses_the_same_run_and_another_seed_another() -> None:
    assert generate(7, 300) == generate(7, 300)
    assert generate(7, 300) != generate(8, 300)
    kinds = {step.get("do") or step.get("fault") for seed in range(5) for step in generate(seed, 300)}
    assert kinds >= {"register", "pay", "pay_again", "days", "activate", "transfer", "place", "register_mistyped",
                     "crash", "restart", "broker", "rewind", "prune", "cut_db", "redeliver", "clock_wobble"}


async def test_the_shrinker_keeps_only_the_steps_the_failure_needs() -> None:
    tried: list[list[int]] = []

    async def fails(steps: list[int]) -> bool:
        tried.append(steps)
        return 13 in steps and 71 in steps and steps.index(13) < steps.index(71)

    steps = list(range(100))
    assert await shrink(steps, fails) == [0, 13, 71]  # the first step (the clock's start) stays
    assert all(candidate[0] == 0 for candidate in tried)


async def test_the_shrinker_stops_within_its_budget_with_what_still_fails() -> None:
    async def fails(steps: list[int]) -> bool:
        return len(steps) > 10

    shrunk = await shrink(list(range(100)), fails, budget=3)
    assert len(shrunk) > 10 and shrunk[0] == 0


def test_no_payment_takes_the_suspense_or_a_channels_cash_past_what_money_may_hold() -> None:
    model = Model(_at(date(2026, 3, 2)))
    model.pay("terminal:1", "100000000099", 6 * 10**14, "RUB", channel="terminal")
    model.pay("terminal:2", "100000000099", 6 * 10**14, "RUB", channel="terminal")  # suspense past 10^15
    model.pay("terminal:3", "100000000099", 6 * 10**14, "USD", channel="terminal")  # another currency's room
    assert model.fates() == {"terminal:1": "parked", "terminal:2": "refused", "terminal:3": "parked"}
    assert model.open_suspense() == {"terminal:1": (6 * 10**14, "RUB"), "terminal:3": (6 * 10**14, "USD")}
