"""The tariff service's pure rules: daily shares, subscriptions, charges, debt, voluntary blocks."""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_contracts.catalog.ledger import BalanceChanged, PaymentType
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    ChargeApplied,
    FeeKind,
    OptionAdded,
    OptionRemoved,
    RequestChannel,
    SubscriptionActivated,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_contracts.envelope import Event
from billing_contracts.money import Money
from tariff.catalog import Catalog
from tariff.domain import (
    AccountBalance,
    Outcome,
    Subscription,
    SubscriptionStatus,
    activate,
    add_option,
    apply_balance,
    balance_changed,
    change_plan,
    charges_for_day,
    charges_published,
    close_account_day,
    close_day,
    daily_share,
    days_in_month,
    end_voluntary_block,
    register,
    remove_option,
    share_of_day,
    start_voluntary_block,
)
from tariff.errors import (
    AlreadyActive,
    BlockAlreadyRunning,
    BlockAlreadyUsedThisYear,
    BlockDaysOutOfRange,
    BlockNeedsHomeInternet,
    BlockNotAffordable,
    NoRunningBlock,
    NotActive,
    OptionAlreadyAdded,
    OptionNotPresent,
    OptionNotSoldInRegion,
    OptionNotSoldWithPlan,
    OptionsNotSoldWithNewPlan,
    PlanNotSoldInRegion,
    PlanUnchanged,
    TariffError,
    UnknownPlan,
    UnknownRegion,
    VoluntaryBlockRefused,
)

ACCOUNT = "100000000008"
OTHER_ACCOUNT = "100000000016"
MONTHS_BY_LENGTH = {
    28: date(2026, 2, 1),
    29: date(2028, 2, 1),
    30: date(2026, 4, 1),
    31: date(2026, 1, 1),
}
ONE_DAY = timedelta(days=1)
Request = Callable[[Subscription, Catalog], Outcome]


def rub(minor: int) -> Money:
    return Money(minor=minor)


def moment(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def days_from(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def subscribed(
    catalog: Catalog,
    plan: str,
    *,
    region: str = "moscow",
    options: tuple[str, ...] = (),
    from_day: date = date(2026, 1, 1),
    balance: AccountBalance | None = None,
    account: str = ACCOUNT,
) -> Subscription:
    """Charged for ``plan`` and ``options`` from ``from_day`` (requested the day before)."""
    requested = from_day - ONE_DAY
    state = activate(register(account, region, catalog), catalog, plan, requested).state
    for option in options:
        state = add_option(state, catalog, option, requested).state
    if balance is not None:
        state = state.model_copy(update={"balance": balance})
    return state


def close_days(
    state: Subscription, catalog: Catalog, days: list[date]
) -> tuple[Subscription, list[Outcome]]:
    """Close the days in order, as the billing clock would, threading the state through."""
    outcomes = []
    for day in days:
        outcome = close_account_day(state, catalog, day, moment(day + ONE_DAY))
        outcomes.append(outcome)
        state = outcome.state
    return state, outcomes


def charged(outcomes: list[Outcome]) -> list[ChargeApplied]:
    return [charge for outcome in outcomes for charge in outcome.charges]


def block(state: Subscription, catalog: Catalog, days: int, start: date) -> Outcome:
    """Ask for a voluntary block from ``start``, at noon of that day."""
    return start_voluntary_block(state, catalog, days, start, moment(start))


def prepaid(minor: int) -> AccountBalance:
    return AccountBalance(main=rub(minor), credit_limit=rub(0))


def on_credit(minor: int, limit: int) -> AccountBalance:
    return AccountBalance(main=rub(minor), payment_type=PaymentType.CREDIT, credit_limit=rub(limit))


# Daily shares of a monthly price


@given(
    month=st.sampled_from(sorted(MONTHS_BY_LENGTH.values())),
    monthly=st.integers(min_value=0, max_value=10**9),
)
def test_the_days_of_a_month_add_up_to_the_monthly_price(month: date, monthly: int) -> None:
    days = days_in_month(month)
    shares = [share_of_day(monthly, days, k) for k in range(1, days + 1)]
    assert sum(shares) == monthly
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True), "the remainder kopecks go to the first days"


def test_months_of_every_length_are_covered() -> None:
    assert {days_in_month(month) for month in MONTHS_BY_LENGTH.values()} == {28, 29, 30, 31}
    assert all(days_in_month(month) == length for length, month in MONTHS_BY_LENGTH.items())


def test_remainder_kopecks_go_to_the_first_days() -> None:
    # 1000 kopecks over 30 days: 33 each and 10 left over, one for each of days 1 to 10.
    shares = [daily_share(rub(1000), date(2026, 4, d)).minor for d in range(1, 31)]
    assert shares == [34] * 10 + [33] * 20


@pytest.mark.parametrize("bad", [(100, 30, 0), (100, 30, 31), (-1, 30, 1)])
def test_a_share_outside_the_month_or_of_a_negative_price_is_refused(
    bad: tuple[int, int, int],
) -> None:
    with pytest.raises(ValueError):
        share_of_day(*bad)


@pytest.mark.parametrize("length", sorted(MONTHS_BY_LENGTH))
def test_a_month_of_daily_charges_equals_the_monthly_prices(catalog: Catalog, length: int) -> None:
    first = MONTHS_BY_LENGTH[length]
    last = first.replace(day=length)
    state = subscribed(
        catalog, "combo-100-optimum", options=("multiroom", "antivirus"), from_day=first
    )

    _, outcomes = close_days(state, catalog, days_from(first, last))

    totals: dict[str, int] = defaultdict(int)
    for charge in charged(outcomes):
        totals[charge.charge_id.rsplit(":", 1)[1]] += charge.amount.minor
    assert totals == {
        "combo-100-optimum": catalog.plan_price("combo-100-optimum", "moscow").minor,
        "multiroom": catalog.option_price("multiroom", "moscow").minor,
        "antivirus": catalog.option_price("antivirus", "moscow").minor,
    }
    assert len(charged(outcomes)) == 3 * length


# Subscriptions


def test_a_registered_account_is_pending_until_a_plan_is_activated(catalog: Catalog) -> None:
    state = register(ACCOUNT, "spb", catalog)
    assert state.status is SubscriptionStatus.PENDING
    assert charges_for_day(state, catalog, date(2026, 1, 1)) == ()

    outcome = activate(state, catalog, "internet-300", date(2026, 1, 10))

    assert outcome.state.status is SubscriptionStatus.ACTIVE
    assert outcome.events == (
        SubscriptionActivated(
            account_number=ACCOUNT,
            region="spb",
            plan="internet-300",
            monthly_price=catalog.plan_price("internet-300", "spb"),
            effective_from=date(2026, 1, 11),
        ),
    )
    assert charges_for_day(outcome.state, catalog, date(2026, 1, 10)) == ()
    [charge] = charges_for_day(outcome.state, catalog, date(2026, 1, 11))
    assert charge.charge_id == f"{ACCOUNT}:2026-01-11:subscription:internet-300"
    assert charge.fee_kind is FeeKind.SUBSCRIPTION
    assert charge.billing_day == date(2026, 1, 11)
    assert charge.amount.minor == share_of_day(catalog.plan("internet-300").prices["spb"], 31, 11)


def test_a_plan_change_mid_month_charges_the_old_plan_through_the_change_day(
    catalog: Catalog,
) -> None:
    state = subscribed(catalog, "internet-100", from_day=date(2026, 1, 1))
    state, before = close_days(state, catalog, days_from(date(2026, 1, 1), date(2026, 1, 14)))

    changed = change_plan(state, catalog, "internet-300", date(2026, 1, 15))
    assert changed.events == (
        TariffChanged(
            account_number=ACCOUNT,
            previous_plan="internet-100",
            plan="internet-300",
            monthly_price=catalog.plan_price("internet-300", "moscow"),
            effective_from=date(2026, 1, 16),
        ),
    )
    _, after = close_days(changed.state, catalog, days_from(date(2026, 1, 15), date(2026, 1, 31)))

    plan_by_day = {
        c.billing_day.day: c.charge_id.rsplit(":", 1)[1] for c in charged(before + after)
    }
    assert plan_by_day == {
        day: "internet-100" if day <= 15 else "internet-300" for day in range(1, 32)
    }
    old_monthly, new_monthly = 55000, 70000  # internet-100 and internet-300 in Moscow
    assert (
        catalog.plan("internet-100").prices["moscow"],
        catalog.plan("internet-300").prices["moscow"],
    ) == (
        old_monthly,
        new_monthly,
    )
    # 55000 = 31 * 1774 + 6 and 70000 = 31 * 2258 + 2: the extra kopecks sit on days 1-6 and 1-2.
    expected = (15 * 1774 + 6) + (16 * 2258)
    assert sum(c.amount.minor for c in charged(before + after)) == expected


def test_options_are_charged_from_the_day_after_adding_until_the_day_of_removal(
    catalog: Catalog,
) -> None:
    state = subscribed(catalog, "tv-optimum", region="kazan", from_day=date(2026, 4, 1))
    added = add_option(state, catalog, "kids", date(2026, 4, 10))
    assert added.events == (
        OptionAdded(
            account_number=ACCOUNT,
            option="kids",
            monthly_price=catalog.option_price("kids", "kazan"),
            effective_from=date(2026, 4, 11),
        ),
    )
    removed = remove_option(added.state, "kids", date(2026, 4, 20))
    assert removed.events == (
        OptionRemoved(account_number=ACCOUNT, option="kids", effective_from=date(2026, 4, 21)),
    )

    _, outcomes = close_days(removed.state, catalog, days_from(date(2026, 4, 1), date(2026, 4, 30)))

    option_days = [c.billing_day.day for c in charged(outcomes) if c.fee_kind is FeeKind.OPTION]
    assert option_days == list(range(11, 21))


def test_several_changes_requested_the_same_day_take_effect_together(catalog: Catalog) -> None:
    state = subscribed(catalog, "tv-basic", from_day=date(2026, 1, 1))
    state = add_option(state, catalog, "multiroom", date(2026, 1, 5)).state
    state = change_plan(state, catalog, "combo-300-maximum", date(2026, 1, 5)).state
    state = add_option(state, catalog, "antivirus", date(2026, 1, 5)).state

    assert state.terms_on(date(2026, 1, 5)).options == ()
    assert state.terms_on(date(2026, 1, 6)).plan == "combo-300-maximum"
    assert state.terms_on(date(2026, 1, 6)).options == ("antivirus", "multiroom")
    assert [entry.effective_from for entry in state.schedule] == [
        date(2026, 1, 1),
        date(2026, 1, 6),
    ]


@pytest.mark.parametrize(
    ("request_", "error", "code"),
    [
        (
            lambda s, c: activate(s, c, "internet-500", date(2026, 1, 1)),
            PlanNotSoldInRegion,
            "plan_not_in_region",
        ),
        (
            lambda s, c: activate(s, c, "internet-9000", date(2026, 1, 1)),
            UnknownPlan,
            "unknown_plan",
        ),
        (lambda s, c: change_plan(s, c, "tv-basic", date(2026, 1, 1)), NotActive, "not_active"),
        (lambda s, c: add_option(s, c, "kids", date(2026, 1, 1)), NotActive, "not_active"),
    ],
)
def test_requests_before_activation_are_refused(
    catalog: Catalog, request_: Request, error: type[TariffError], code: str
) -> None:
    state = register(ACCOUNT, "kazan", catalog)
    with pytest.raises(error) as refused:
        request_(state, catalog)
    assert refused.value.code == code


def test_an_unknown_region_is_refused_at_registration(catalog: Catalog) -> None:
    with pytest.raises(UnknownRegion, match="atlantis"):
        register(ACCOUNT, "atlantis", catalog)


@pytest.mark.parametrize(
    ("request_", "error", "field"),
    [
        (lambda s, c: activate(s, c, "tv-basic", date(2026, 1, 5)), AlreadyActive, "plan"),
        (lambda s, c: change_plan(s, c, "tv-optimum", date(2026, 1, 5)), PlanUnchanged, "plan"),
        (
            lambda s, c: change_plan(s, c, "internet-500", date(2026, 1, 5)),
            PlanNotSoldInRegion,
            "plan",
        ),
        (
            lambda s, c: change_plan(s, c, "internet-100", date(2026, 1, 5)),
            OptionsNotSoldWithNewPlan,
            "plan",
        ),
        (
            lambda s, c: add_option(s, c, "antivirus", date(2026, 1, 5)),
            OptionNotSoldWithPlan,
            "option",
        ),
        (lambda s, c: add_option(s, c, "sport", date(2026, 1, 5)), OptionNotSoldInRegion, "option"),
        (
            lambda s, c: add_option(s, c, "multiroom", date(2026, 1, 5)),
            OptionAlreadyAdded,
            "option",
        ),
        (lambda s, c: remove_option(s, "kids", date(2026, 1, 5)), OptionNotPresent, "option"),
    ],
)
def test_bad_subscription_requests_are_refused_and_name_the_field(
    catalog: Catalog, request_: Request, error: type[TariffError], field: str
) -> None:
    state = subscribed(catalog, "tv-optimum", region="kazan", options=("multiroom",))
    with pytest.raises(error) as refused:
        request_(state, catalog)
    assert refused.value.field == field
    assert refused.value.message


# Day closing


def test_closing_a_day_twice_gives_identical_charges(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", options=("antivirus",), from_day=date(2026, 1, 1))
    # A change taking effect the next day must not leak into a repeated close of this day.
    state = change_plan(state, catalog, "combo-100-optimum", date(2026, 1, 20)).state
    day = date(2026, 1, 20)

    first = close_account_day(state, catalog, day, moment(day + ONE_DAY))
    again_from_old_state = close_account_day(state, catalog, day, moment(day + ONE_DAY))
    again_after_restart = close_account_day(first.state, catalog, day, moment(day + 2 * ONE_DAY))

    assert [c.charge_id for c in first.charges] == [
        f"{ACCOUNT}:2026-01-20:subscription:internet-100",
        f"{ACCOUNT}:2026-01-20:option:antivirus",
    ]
    assert again_from_old_state.charges == first.charges
    assert again_after_restart.charges == first.charges
    assert first.state.terms_on(date(2026, 1, 21)).plan == "combo-100-optimum"


def test_closing_a_day_for_all_accounts_charges_each_once(catalog: Catalog) -> None:
    day = date(2026, 2, 14)
    states = [
        subscribed(catalog, "internet-100", account=ACCOUNT),
        subscribed(catalog, "tv-basic", account=OTHER_ACCOUNT, region="spb"),
        register("100000000024", "kazan", catalog),
    ]

    outcomes = close_day(states, catalog, day, moment(day + ONE_DAY))

    assert [o.state.account_number for o in outcomes] == [s.account_number for s in states]
    ids = [c.charge_id for o in outcomes for c in o.charges]
    assert ids == [
        f"{ACCOUNT}:2026-02-14:subscription:internet-100",
        f"{OTHER_ACCOUNT}:2026-02-14:subscription:tv-basic",
    ]


# Blocking for debt


@pytest.mark.parametrize(
    ("balance", "in_debt"),
    [
        (prepaid(0), False),
        (prepaid(-1), True),
        (on_credit(-50000, 50000), False),
        (on_credit(-50001, 50000), True),
        (on_credit(-1, 0), True),
    ],
)
def test_the_debt_rule_for_prepaid_and_credit(balance: AccountBalance, in_debt: bool) -> None:
    assert balance.in_debt() is in_debt


def test_a_prepaid_account_below_zero_is_blocked_and_unblocked_by_a_payment(
    catalog: Catalog,
) -> None:
    state = subscribed(catalog, "internet-100")
    day = date(2026, 1, 10)
    at = moment(day)

    blocked = apply_balance(state, prepaid(-1), at)
    assert blocked.events == (
        AccountBlocked(account_number=ACCOUNT, reason=BlockReason.DEBT, blocked_at=at),
    )
    assert charges_for_day(blocked.state, catalog, day) == ()

    still = apply_balance(blocked.state, prepaid(-5000), at)
    assert still.events == ()
    assert still.state.balance == prepaid(-5000)

    paid = apply_balance(still.state, prepaid(0), at)
    assert paid.events == (
        AccountUnblocked(account_number=ACCOUNT, reason=BlockReason.DEBT, unblocked_at=at),
    )
    assert len(charges_for_day(paid.state, catalog, day)) == 1
    assert apply_balance(paid.state, prepaid(100), at).events == ()


def test_a_credit_account_is_blocked_only_below_minus_its_limit(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100")
    at = moment(date(2026, 1, 10))

    within = apply_balance(state, on_credit(-30000, 30000), at)
    assert within.events == ()
    assert not within.state.debt_blocked

    beyond = apply_balance(within.state, on_credit(-30001, 30000), at)
    assert [type(e) for e in beyond.events] == [AccountBlocked]
    assert beyond.state.debt_blocked

    raised_limit = apply_balance(beyond.state, on_credit(-30001, 40000), at)
    assert [type(e) for e in raised_limit.events] == [AccountUnblocked]
    assert not raised_limit.state.debt_blocked


# Days closed in order: the debt rule between them


def ledger_answer(
    state: Subscription, event_id: UUID, charge: ChargeApplied, *, from_bonus: int = 0
) -> BalanceChanged:
    """What the ledger announces after posting ``charge`` (``from_bonus`` of it paid from
    bonuses, as a separate transaction announced first: then this is the second one)."""
    taken = charge.amount.minor - from_bonus
    return BalanceChanged(
        account_number=state.account_number, transaction_id=uuid4(),
        main=state.balance.main - rub(taken), bonus=rub(0), delta_main=rub(-taken),
        delta_bonus=rub(0), cause_event_id=event_id, cause_type="ChargeApplied",
        payment_type=state.balance.payment_type, credit_limit=state.balance.credit_limit,
    )


def payment(state: Subscription, minor: int) -> BalanceChanged:
    return BalanceChanged(
        account_number=state.account_number, transaction_id=uuid4(),
        main=state.balance.main + rub(minor), bonus=rub(0), delta_main=rub(minor),
        delta_bonus=rub(0), cause_event_id=uuid4(), cause_type="PaymentReceived",
        payment_type=state.balance.payment_type, credit_limit=state.balance.credit_limit,
    )


def close_and_publish(
    state: Subscription, catalog: Catalog, day: date
) -> tuple[Subscription, list[tuple[UUID, ChargeApplied]], tuple[Event, ...]]:
    """Close ``day`` and publish its charges, as the service does in one transaction."""
    at = moment(day + ONE_DAY)
    closed = close_account_day(state, catalog, day, at)
    published = [(uuid4(), charge) for charge in closed.charges]
    judged = charges_published(closed.state, published, at)
    return judged.state, published, (*closed.events, *judged.events)


def answered(
    state: Subscription, published: list[tuple[UUID, ChargeApplied]]
) -> tuple[Subscription, list[Event]]:
    """The ledger's BalanceChanged for each published charge, in order, taken by the tariff."""
    events: list[Event] = []
    for event_id, charge in published:
        answer = ledger_answer(state, event_id, charge)
        outcome = balance_changed(state, answer, moment(charge.billing_day))
        state, events = outcome.state, [*events, *outcome.events]
    return state, events


JUNE = days_from(date(2026, 6, 1), date(2026, 6, 30))


@pytest.mark.parametrize(
    ("balance", "blocked_after"),
    [
        # 55000 a month: 1834 a day for June 1 to 10, then 1833.
        (prepaid(20000), date(2026, 6, 11)),  # 10 days leave 1660; the 11th ends below zero
        (on_credit(5000, 10000), date(2026, 6, 9)),  # 8 days leave -9672; the 9th is past -10000
    ],
)
def test_a_catch_up_blocks_on_the_day_closing_the_days_one_by_one_would(
    catalog: Catalog, balance: AccountBalance, blocked_after: date
) -> None:
    start = subscribed(catalog, "internet-100", from_day=JUNE[0], balance=balance)

    one_by_one, charged_one_by_one, blocks = start, [], []
    for day in JUNE:  # each day closed after the ledger answered the one before
        one_by_one, published, events = close_and_publish(one_by_one, catalog, day)
        one_by_one, answers = answered(one_by_one, published)
        charged_one_by_one += [charge.billing_day for _, charge in published]
        blocks += [e for e in (*events, *answers) if isinstance(e, AccountBlocked)]

    catch_up, all_published, events_at_once = start, [], []
    for day in JUNE:  # the thirty days closed at once, before the ledger answers any of them
        catch_up, published, events = close_and_publish(catch_up, catalog, day)
        all_published += published
        events_at_once += events
    charged_at_once = [charge.billing_day for _, charge in all_published]

    assert charged_one_by_one == charged_at_once == days_from(JUNE[0], blocked_after)
    assert len(blocks) == 1 and one_by_one.debt_blocked
    assert [e for e in events_at_once if isinstance(e, AccountBlocked)] == [
        AccountBlocked(account_number=ACCOUNT, reason=BlockReason.DEBT,
                       blocked_at=moment(blocked_after + ONE_DAY))
    ]
    assert catch_up.debt_blocked and catch_up.balance == balance
    assert catch_up.expected_balance == one_by_one.balance
    # The ledger's answers, one per charge, settle them without a verdict in between: no
    # unblock while the later charges are still on their way.
    settled, answers = answered(catch_up, all_published)
    assert answers == [] and settled.unsettled == () and settled.debt_blocked
    assert settled.balance == one_by_one.balance


def test_a_payment_settles_no_charge_and_a_later_charge_settles_the_earlier_ones(
    catalog: Catalog,
) -> None:
    state = subscribed(catalog, "internet-100", from_day=JUNE[0], balance=prepaid(4000))
    state, _, _ = close_and_publish(state, catalog, JUNE[0])
    state, second, _ = close_and_publish(state, catalog, JUNE[1])
    assert state.expected_balance == prepaid(4000 - 2 * 1834) and not state.debt_blocked

    # A payment announced before the ledger posted the charges: they are still to come.
    paid = balance_changed(state, payment(state, 100), moment(JUNE[2])).state
    assert paid.balance == prepaid(4100)
    assert paid.unsettled == state.unsettled
    assert paid.expected_balance == prepaid(4100 - 2 * 1834)

    # The first charge never reached the ledger's journal (refused, say); the second is posted:
    # the ledger takes an account's charges in order, so the first is no longer awaited.
    [(event_id, charge)] = second
    posted = balance_changed(paid, ledger_answer(paid, event_id, charge), moment(JUNE[2])).state
    assert posted.unsettled == () and posted.expected_balance == prepaid(4100 - 1834)


def test_a_charge_paid_partly_from_bonuses_is_settled_by_both_of_its_transactions(
    catalog: Catalog,
) -> None:
    state = subscribed(catalog, "internet-100", from_day=JUNE[0], balance=prepaid(1000))
    state, [(event_id, charge)], events = close_and_publish(state, catalog, JUNE[0])
    # Counted in full against the main balance: the tariff cannot know the bonus will pay.
    assert [type(e) for e in events] == [ChargeApplied, AccountBlocked]
    assert state.expected_balance == prepaid(1000 - 1834)

    redemption = ledger_answer(state, event_id, charge).model_copy(update={
        "main": rub(1000), "bonus": rub(0), "delta_main": rub(0), "delta_bonus": rub(-1500)
    })
    part = balance_changed(state, redemption, moment(JUNE[1]))
    assert [c.amount.minor for c in part.state.unsettled] == [1834 - 1500]
    # What the bonuses paid is no debt: the block taken on the cautious estimate is lifted.
    assert part.events == (
        AccountUnblocked(account_number=ACCOUNT, reason=BlockReason.DEBT,
                         unblocked_at=moment(JUNE[1])),
    )
    rest = balance_changed(part.state, ledger_answer(part.state, event_id, charge, from_bonus=1500),
                           moment(JUNE[1]))
    assert rest.events == ()
    assert rest.state.unsettled == () and rest.state.balance == prepaid(1000 - 334)


# Voluntary block


def test_a_voluntary_block_is_paid_blocks_and_stops_fees_then_ends_by_itself(
    catalog: Catalog,
) -> None:
    price = catalog.voluntary_block_price("spb")
    state = subscribed(
        catalog, "combo-100-optimum", region="spb", options=("kino",), balance=prepaid(price.minor)
    )
    start = date(2026, 3, 10)

    outcome = start_voluntary_block(state, catalog, 5, start, moment(start), RequestChannel.SUPPORT)

    charge, blocked, started = outcome.events
    assert isinstance(charge, ChargeApplied)
    assert (charge.fee_kind, charge.amount, charge.billing_day) == (
        FeeKind.VOLUNTARY_BLOCK,
        price,
        start,
    )
    assert charge.charge_id == f"{ACCOUNT}:2026-03-10:voluntary_block:spb"
    assert blocked == AccountBlocked(
        account_number=ACCOUNT,
        reason=BlockReason.VOLUNTARY,
        blocked_at=moment(start),
        until=date(2026, 3, 14),
    )
    assert started == VoluntaryBlockStarted(
        account_number=ACCOUNT,
        start=start,
        last_day=date(2026, 3, 14),
        days=5,
        price=price,
        requested_via=RequestChannel.SUPPORT,
    )

    _, outcomes = close_days(outcome.state, catalog, days_from(date(2026, 3, 9), date(2026, 3, 16)))

    charged_days = sorted({c.billing_day.day for c in charged(outcomes)})
    assert charged_days == [9, 15, 16]
    ends = [e for o in outcomes for e in o.events if not isinstance(e, ChargeApplied)]
    assert ends == [
        AccountUnblocked(
            account_number=ACCOUNT,
            reason=BlockReason.VOLUNTARY,
            unblocked_at=moment(date(2026, 3, 15)),
        ),
        VoluntaryBlockEnded(
            account_number=ACCOUNT,
            start=start,
            last_day=date(2026, 3, 14),
            early=False,
            ended_at=moment(date(2026, 3, 15)),
        ),
    ]


@pytest.mark.parametrize("days", [1, 30])
def test_a_block_of_one_to_thirty_days_is_allowed(catalog: Catalog, days: int) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    start = date(2026, 6, 1)

    outcome = block(state, catalog, days, start)

    last_day = start + timedelta(days=days - 1)
    assert outcome.state.voluntary_block_on(last_day) is not None
    assert outcome.state.voluntary_block_on(last_day + ONE_DAY) is None
    assert charges_for_day(outcome.state, catalog, last_day) == ()
    assert charges_for_day(outcome.state, catalog, last_day + ONE_DAY) != ()


@pytest.mark.parametrize("days", [0, 31, -1])
def test_a_block_outside_one_to_thirty_days_is_refused_by_rule_1(
    catalog: Catalog, days: int
) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    with pytest.raises(BlockDaysOutOfRange, match="rule 1") as refused:
        block(state, catalog, days, date(2026, 6, 1))
    assert refused.value.field == "days"


def test_a_block_is_allowed_once_per_calendar_year_of_its_start(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    first = block(state, catalog, 3, date(2026, 2, 1)).state
    first = end_voluntary_block(first, date(2026, 2, 2), moment(date(2026, 2, 2))).state

    with pytest.raises(BlockAlreadyUsedThisYear, match="rule 1.*2026-02-01"):
        block(first, catalog, 3, date(2026, 12, 31))

    next_year = block(first, catalog, 3, date(2027, 1, 1))
    assert [type(e) for e in next_year.events] == [
        ChargeApplied,
        AccountBlocked,
        VoluntaryBlockStarted,
    ]


def test_a_block_crossing_new_year_refuses_a_second_one_while_it_runs(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    december = block(state, catalog, 30, date(2026, 12, 20)).state

    with pytest.raises(BlockAlreadyRunning, match="2027-01-18"):
        block(december, catalog, 5, date(2027, 1, 5))


def test_a_block_crossing_new_year_is_the_use_of_both_years(catalog: Catalog) -> None:
    """The issue's example: 30 days from 2026-12-20 (to 2027-01-18), then 30 from 2027-01-19
    would block 48 days of 2027 in two uses of it."""
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    december = block(state, catalog, 30, date(2026, 12, 20)).state

    with pytest.raises(BlockAlreadyUsedThisYear) as refused:
        block(december, catalog, 30, date(2027, 1, 19))

    assert refused.value.code == "block_once_a_year"
    assert "the 2027 block was already used, by the block from 2026-12-20 to 2027-01-18" in str(
        refused.value
    )
    # The year after is free again.
    assert block(december, catalog, 30, date(2028, 1, 19)).events[-1].start == date(2028, 1, 19)


def test_a_december_block_ended_before_new_year_leaves_the_next_year_free(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    december = block(state, catalog, 30, date(2026, 12, 20)).state
    ended = end_voluntary_block(december, date(2026, 12, 28), moment(date(2026, 12, 28))).state

    january = block(ended, catalog, 30, date(2027, 1, 19))

    assert january.events[-1].start == date(2027, 1, 19)


def test_a_finished_block_is_announced_before_the_next_one_starts(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    december = block(state, catalog, 2, date(2026, 12, 30)).state
    # The close of 31 December has not run yet when the January request arrives.
    january = block(december, catalog, 2, date(2027, 1, 1))

    assert [type(e) for e in january.events] == [
        AccountUnblocked,
        VoluntaryBlockEnded,
        ChargeApplied,
        AccountBlocked,
        VoluntaryBlockStarted,
    ]
    assert january.events[1].early is False


def test_a_block_without_home_internet_is_refused_by_rule_3(catalog: Catalog) -> None:
    state = subscribed(catalog, "tv-maximum", balance=prepaid(100000))
    with pytest.raises(BlockNeedsHomeInternet, match="rule 3.*tv-maximum"):
        block(state, catalog, 7, date(2026, 6, 1))


def test_a_block_before_the_plan_takes_effect_is_refused(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", from_day=date(2026, 6, 2), balance=prepaid(100000))
    with pytest.raises(NotActive):
        block(state, catalog, 7, date(2026, 6, 1))


@pytest.mark.parametrize(
    ("balance", "affordable"),
    [
        (lambda price: prepaid(price), True),
        (lambda price: prepaid(price - 1), False),
        (lambda price: on_credit(-1000, price + 1000), True),
        (lambda price: on_credit(-1001, price + 1000), False),
    ],
)
def test_a_block_the_balance_cannot_pay_is_refused_by_rule_5(
    catalog: Catalog, balance: Callable[[int], AccountBalance], affordable: bool
) -> None:
    price = catalog.voluntary_block_price("kazan").minor
    state = subscribed(catalog, "internet-100", region="kazan", balance=balance(price))
    if affordable:
        assert block(state, catalog, 7, date(2026, 6, 1)).charges[0].amount.minor == price
    else:
        with pytest.raises(BlockNotAffordable, match="rule 5"):
            block(state, catalog, 7, date(2026, 6, 1))


def test_charges_the_ledger_has_not_settled_yet_cannot_pay_for_a_block(catalog: Catalog) -> None:
    price = catalog.voluntary_block_price("moscow").minor
    state = subscribed(catalog, "internet-100", from_day=JUNE[0], balance=prepaid(price))
    state, _, _ = close_and_publish(state, catalog, JUNE[0])  # June 1 costs 1834
    with pytest.raises(BlockNotAffordable, match=r"can pay 131\.66 RUB"):
        block(state, catalog, 7, JUNE[1])


def test_a_debt_blocked_account_cannot_buy_a_block(catalog: Catalog) -> None:
    state = apply_balance(
        subscribed(catalog, "internet-100"), prepaid(-100), moment(date(2026, 6, 1))
    ).state
    with pytest.raises(BlockNotAffordable):
        block(state, catalog, 7, date(2026, 6, 1))


def test_a_block_ended_early_charges_again_from_the_day_of_the_request(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    blocked = block(state, catalog, 10, date(2026, 6, 1)).state

    ended = end_voluntary_block(blocked, date(2026, 6, 4), moment(date(2026, 6, 4)))

    assert ended.events == (
        AccountUnblocked(
            account_number=ACCOUNT,
            reason=BlockReason.VOLUNTARY,
            unblocked_at=moment(date(2026, 6, 4)),
        ),
        VoluntaryBlockEnded(
            account_number=ACCOUNT,
            start=date(2026, 6, 1),
            last_day=date(2026, 6, 3),
            early=True,
            ended_at=moment(date(2026, 6, 4)),
        ),
    )
    _, outcomes = close_days(ended.state, catalog, days_from(date(2026, 6, 1), date(2026, 6, 12)))
    assert sorted({c.billing_day.day for c in charged(outcomes)}) == list(range(4, 13))
    assert all(
        not isinstance(e, (AccountUnblocked, VoluntaryBlockEnded))
        for o in outcomes
        for e in o.events
    )


def test_ending_a_block_that_is_not_running_is_refused_by_rule_6(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(100000))
    with pytest.raises(NoRunningBlock, match="rule 6"):
        end_voluntary_block(state, date(2026, 6, 1), moment(date(2026, 6, 1)))


def test_every_voluntary_block_refusal_has_its_own_code() -> None:
    refusals = [
        BlockDaysOutOfRange,
        BlockAlreadyUsedThisYear,
        BlockNeedsHomeInternet,
        BlockNotAffordable,
        BlockAlreadyRunning,
        NoRunningBlock,
    ]
    assert all(issubclass(refusal, VoluntaryBlockRefused) for refusal in refusals)
    assert len({refusal.code for refusal in refusals}) == len(refusals)
    assert all(refusal.rule.startswith("rule ") for refusal in refusals)


def test_a_subscription_survives_a_json_round_trip_for_the_store(catalog: Catalog) -> None:
    state = subscribed(
        catalog, "combo-100-optimum", options=("kino",), balance=on_credit(-5, 90000)
    )
    state = block(state, catalog, 4, date(2026, 1, 3)).state
    state = change_plan(state, catalog, "combo-300-maximum", date(2026, 1, 3)).state

    restored = Subscription.model_validate_json(state.model_dump_json())

    assert restored == state
    assert restored.terms_on(date(2026, 1, 4)).plan == "combo-300-maximum"


# --- views that never go back (issue 26) ------------------------------------------------------


def versioned(event: BalanceChanged, version: int | None) -> BalanceChanged:
    return event.model_copy(update={"account_version": version})


def test_a_balance_no_newer_than_the_one_held_changes_and_decides_nothing(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(10_000))
    in_debt = balance_changed(state, versioned(payment(state, -20_000), 5), moment(date(2026, 1, 5)))
    assert in_debt is not None and in_debt.state.debt_blocked and in_debt.state.balance.version == 5
    blocked = in_debt.state
    for old in (versioned(payment(blocked, 30_000), 4), versioned(payment(blocked, 30_000), 5),
                versioned(payment(blocked, 30_000), None)):
        assert balance_changed(blocked, old, moment(date(2026, 1, 6))) is None
    newer = balance_changed(blocked, versioned(payment(blocked, 30_000), 6), moment(date(2026, 1, 6)))
    assert newer is not None and not newer.state.debt_blocked and newer.state.balance.version == 6
    assert [type(event).__name__ for event in newer.events] == ["AccountUnblocked"]


def test_a_view_from_before_versions_takes_every_event_until_a_versioned_one(catalog: Catalog) -> None:
    state = subscribed(catalog, "internet-100", balance=prepaid(10_000))
    unversioned = balance_changed(state, payment(state, 1_000), moment(date(2026, 1, 5)))
    assert unversioned is not None and unversioned.state.balance.main == rub(11_000)
    assert unversioned.state.balance.version is None
    versioned_now = balance_changed(unversioned.state, versioned(payment(unversioned.state, 1_000), 3),
                                    moment(date(2026, 1, 5)))
    assert versioned_now is not None and versioned_now.state.balance.version == 3
    assert balance_changed(versioned_now.state, payment(state, 50_000), moment(date(2026, 1, 5))) is None
