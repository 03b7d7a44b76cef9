"""The reference model, held to what the documents print, and the shrinker: the simulation's
two parts that must be right on their own before they judge the suite."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from simulation.actions import generate
from simulation.invariants import SENT_SECRET, _leaks
from simulation.model import (BILLING_ZONE, PLAN_PRICES, VOLUNTARY_BLOCK_PRICE, Model, daily_share,
                              end_of, luhn_digit, mistyped)
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
    assert model.notices() == {("A1", "password_initial"): 1, ("A1", "blocked"): 1, ("A1", "unblocked"): 1}


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
                     "change_plan", "option", "payment_type", "voluntary_block", "end_voluntary_block", "redeem",
                     "reverse", "secret", "crash", "restart", "broker", "rewind", "prune", "cut_db", "redeliver", "clock_wobble"}


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


def _funded(day: date, money: int, plan: str | None = "internet-100") -> Model:
    """A model on ``day`` with one account holding ``money``, its plan chosen the day before."""
    model = Model(_at(day - timedelta(days=1)))
    model.register("A1")
    model.pay("shop:1", "A1", money, "RUB", channel="shop")
    if plan:
        assert model.activate("A1", plan)
    model.move_clock(_at(day))
    model.close_days(day - timedelta(days=1))
    return model


def _charged(model: Model, label: str = "A1") -> dict[date, list[int]]:
    days: dict[date, list[int]] = {}
    for who, day, amount in model.charges:
        if who == label:
            days.setdefault(day, []).append(amount)
    return days


def test_options_and_plan_changes_are_charged_from_tomorrow_each_share_rounded_on_its_own() -> None:
    model = _funded(date(2026, 12, 1), 500_000, "combo-100-optimum")
    assert model.add_option("A1", "kino") and not model.add_option("A1", "kino")  # once
    assert model.add_option("A1", "antivirus")  # the combo has internet
    model.move_clock(_at(date(2026, 12, 3)))
    model.close_days(date(2026, 12, 2))
    # 1 December: the combo only (the options were asked for on the 1st); 2 December: each fee's share
    assert _charged(model)[date(2026, 12, 1)] == [daily_share(80_000, date(2026, 12, 1))]
    assert _charged(model)[date(2026, 12, 2)] == [2_581, 320, 965]  # 800.00, 99.00, 299.00 over 31 days
    assert sum(_charged(model)[date(2026, 12, 2)]) != daily_share(80_000 + 9_900 + 29_900, date(2026, 12, 2))
    # A TV-only plan does not take the antivirus: remove it first; the change is from tomorrow.
    assert not model.change_plan("A1", "tv-optimum")
    assert model.remove_option("A1", "antivirus") and not model.remove_option("A1", "antivirus")
    assert model.change_plan("A1", "tv-optimum") and not model.change_plan("A1", "tv-optimum")
    assert not model.add_option("A1", "antivirus")
    model.move_clock(_at(date(2026, 12, 5)))
    model.close_days(date(2026, 12, 4))
    assert _charged(model)[date(2026, 12, 3)] == [2_581, 320, 965]
    assert _charged(model)[date(2026, 12, 4)] == [daily_share(PLAN_PRICES["tv-optimum"], date(2026, 12, 4)), 965]
    assert model.notices()[("A1", "tariff_changed")] == 1


def test_a_change_asked_for_twice_the_same_day_is_the_second() -> None:
    model = _funded(date(2026, 12, 1), 100_000)
    assert model.change_plan("A1", "internet-300") and model.change_plan("A1", "internet-100")
    model.move_clock(_at(date(2026, 12, 3)))
    model.close_days(date(2026, 12, 2))
    assert _charged(model)[date(2026, 12, 2)] == [daily_share(55_000, date(2026, 12, 2))]


def test_credit_takes_the_balance_down_to_its_limit_before_a_debt_block() -> None:
    model = _funded(date(2026, 12, 1), 0, "internet-300")  # 700.00 a month: 22.59 a day in December
    assert not model.change_payment_type("A1", 100_001)  # past the self-service ceiling
    assert model.change_payment_type("A1", 10_000)
    model.move_clock(_at(date(2026, 12, 7)))
    model.close_days(date(2026, 12, 6))
    # 1-4 December: -90.34; the 5th takes it past -100.00: blocked at its end, the 6th not charged
    assert sorted(_charged(model)) == [date(2026, 12, n) for n in range(1, 6)]
    assert model.blocks == [("A1", "blocked", end_of(date(2026, 12, 5)))]
    assert not model.transfer("A1", "A1", 1) and model.balances()["A1"][0] == -11_292
    assert not model.change_payment_type("A1", 0)  # prepaid needs the debt paid first
    assert not model.change_payment_type("A1", 11_000)  # a limit must cover the debt there is
    assert model.change_payment_type("A1", 20_000)  # a larger limit: back within it, unblocked now
    assert model.blocks[-1] == ("A1", "unblocked", _at(date(2026, 12, 7)))
    model.pay("shop:2", "A1", 11_292, "RUB", channel="shop")
    assert model.change_payment_type("A1", 0)


def test_credit_does_not_transfer() -> None:
    model = _funded(date(2026, 12, 1), 1_000, plan=None)
    model.register("A2")
    assert model.change_payment_type("A1", 50_000)
    assert not model.transfer("A1", "A2", 1_001) and model.transfer("A1", "A2", 1_000)


def test_a_voluntary_block_is_paid_at_once_and_no_fee_is_taken_while_it_lasts() -> None:
    model = _funded(date(2026, 12, 3), 100_000)
    assert not model.start_voluntary_block("A1", 31)
    assert model.start_voluntary_block("A1", 7)  # 3 to 9 December
    assert _charged(model)[date(2026, 12, 3)] == [VOLUNTARY_BLOCK_PRICE]
    assert not model.start_voluntary_block("A1", 1)  # one at a time, once a year
    model.move_clock(_at(date(2026, 12, 12)))
    model.close_days(date(2026, 12, 11))
    charged = _charged(model)
    assert [day for day in charged if date(2026, 12, 3) <= day <= date(2026, 12, 9)] == [date(2026, 12, 3)]
    assert charged[date(2026, 12, 3)] == [VOLUNTARY_BLOCK_PRICE] and date(2026, 12, 10) in charged
    assert model.voluntary == [("A1", "blocked", _at(date(2026, 12, 3))),
                               ("A1", "unblocked", end_of(date(2026, 12, 9)))]
    assert model.notices()[("A1", "voluntary_blocked")] == model.notices()[("A1", "voluntary_unblocked")] == 1


def test_a_voluntary_block_across_new_year_is_the_use_of_both_years() -> None:
    model = _funded(date(2026, 12, 20), 1_000_000)
    assert model.start_voluntary_block("A1", 30)  # 20 December to 18 January
    model.move_clock(_at(date(2027, 1, 20)))
    model.close_days(date(2027, 1, 19))
    assert not model.start_voluntary_block("A1", 1)  # 2027's use is spent
    model.move_clock(_at(date(2028, 1, 2)))
    model.close_days(date(2028, 1, 1))
    assert model.start_voluntary_block("A1", 1)
    # The year of the start counts even when the block ended before covering a day.
    other = _funded(date(2026, 12, 30), 100_000)
    assert other.start_voluntary_block("A1", 5) and other.end_voluntary_block("A1")
    other.move_clock(_at(date(2027, 1, 2)))
    other.close_days(date(2027, 1, 1))
    assert other.start_voluntary_block("A1", 3)  # it covered no day of 2027 (nor of 2026)
    assert not other.start_voluntary_block("A1", 3)


def test_a_voluntary_block_ended_early_charges_the_day_it_ended_on() -> None:
    model = _funded(date(2026, 12, 3), 100_000)
    assert model.start_voluntary_block("A1", 10) and model.end_voluntary_block("A1")  # on its first day
    model.move_clock(_at(date(2026, 12, 5)))
    model.close_days(date(2026, 12, 4))
    assert not model.end_voluntary_block("A1")  # ended already (above)
    assert date(2026, 12, 3) in _charged(model) and date(2026, 12, 4) in _charged(model)
    assert model.voluntary == [("A1", "blocked", _at(date(2026, 12, 3))), ("A1", "unblocked", _at(date(2026, 12, 3)))]


def test_a_voluntary_block_needs_home_internet_today_and_the_money_for_its_price() -> None:
    tv = _funded(date(2026, 12, 3), 100_000, "tv-basic")
    assert not tv.start_voluntary_block("A1", 3)
    tomorrow = Model(_at(date(2026, 12, 3)))
    tomorrow.register("A1")
    tomorrow.pay("shop:1", "A1", 100_000, "RUB", channel="shop")
    assert tomorrow.activate("A1", "internet-100") and not tomorrow.start_voluntary_block("A1", 3)
    poor = _funded(date(2026, 12, 3), VOLUNTARY_BLOCK_PRICE - 1)
    assert not poor.start_voluntary_block("A1", 3)
    assert poor.change_payment_type("A1", 1) and poor.start_voluntary_block("A1", 3)  # the limit counts
    assert poor.balances()["A1"][0] == -1 and not poor.debt_blocked()["A1"]


def test_a_redemption_spends_bonuses_only_and_a_retry_gets_its_first_answer() -> None:
    model = Model(_at(date(2026, 12, 2)))
    model.register("A1")
    model.pay("card:1", "A1", 150_000, "RUB", channel="card")  # 300.00 back
    assert model.redeem("R-1", "A1", "discount-300")  # 270.00
    assert not model.redeem("R-2", "A1", "discount-100")  # 30.00 left
    assert model.redeem("R-1", "A1", "discount-300")  # the retry: taken, once
    assert not model.redeem("R-3", "A1", "router-stand")  # 50.00
    assert model.balances()["A1"] == (150_000, 3_000)  # real money untouched


def test_a_reversed_payment_leaves_once_whatever_balance_it_leaves() -> None:
    model = _funded(date(2026, 12, 2), 1_000, plan=None)
    model.pay("card:9", "A1", 60_000, "RUB", channel="card")  # 120.00 back
    assert model.reverse("card:9") and not model.reverse("card:9")
    model.pay("card:9", "A1", 60_000, "RUB", channel="card")  # delivered again: its fate stands
    assert model.balances()["A1"] == (1_000, 12_000) and model.fates()["card:9"] == "credited"
    assert model.reverse("shop:1")
    assert model.balances()["A1"][0] == 0 and not model.debt_blocked()["A1"]
    model.register("A2")
    model.pay("shop:2", "A2", 500, "RUB", channel="shop")
    model.transfer("A2", "A1", 500)
    assert model.reverse("shop:2") and model.debt_blocked() == {"A1": False, "A2": True}
    assert model.blocks == [("A2", "blocked", _at(date(2026, 12, 2)))]


def test_five_passwords_or_codes_an_hour_per_account_each_told_once() -> None:
    model = Model(_at(date(2026, 12, 2)))
    model.register("A1")
    model.register("A2")
    asked = [model.request_secret("A1", kind) for kind in ["password_sms", "reset_code"] * 3]
    assert asked == [True] * 5 + [False]
    assert model.request_secret("A2", "reset_code")
    model.move_clock(_at(date(2026, 12, 2)) + timedelta(hours=1))
    assert model.request_secret("A1", "reset_code")
    assert model.notices() == {("A1", "password_initial"): 1, ("A2", "password_initial"): 1,
                               ("A1", "password_sms"): 3, ("A1", "reset_code"): 3, ("A2", "reset_code"): 1}


def test_a_sent_password_or_code_is_found_where_it_leaked_and_not_in_ids_or_amounts() -> None:
    """The secret check reads what the notifier sent (each template puts it after the account)."""
    sms = "Код восстановления пароля к счёту 100000000016: 042917. Действует 15 мин. Никому его не сообщайте."
    password = "Новый пароль к счёту 100000000016: Kx7pQm2RtV9a. Он был запрошен"
    secrets = [SENT_SECRET.search(text).group(1).encode() for text in (sms, password)]
    assert secrets == [b"042917", b"Kx7pQm2RtV9a"]
    assert _leaks(b'{"code": "042917"}', secrets) == ["042917"]
    assert _leaks(b'{"note": "Kx7pQm2RtV9a"}', secrets) == ["Kx7pQm2RtV9a"]
    assert _leaks(b'{"id": "01a25-1042917a", "amount": 1042917, "at": "T06:00:00.042917"}', secrets) == []
    assert _leaks(b'{"phone": "+7 915 204-33-71"}', []) == ["204-33-71"]
