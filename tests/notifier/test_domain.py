"""Which events become which messages, the low-balance alarm, sealed contacts, retry delays."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from itertools import pairwise

import pytest
from billing_contracts.catalog.identity import (
    LoginLocked,
    PasswordIssued,
    PasswordPurpose,
    SubscriberRegistered,
)
from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_events.errors import DomainError, ErrorKind
from billing_contracts.money import Money, PositiveMoney
from billing_contracts.refusal import Refusal
from hypothesis import given
from hypothesis import strategies as st
from nacl.encoding import Base64Encoder
from nacl.public import PrivateKey
from notifier.crypto import SealOpener
from notifier.domain import (
    PASSWORD_TEMPLATES,
    Destination,
    ErrorCode,
    LowBalanceAlarm,
    NoticeContext,
    NotifierError,
    RetryPolicy,
    SubscriberProfile,
    TemplateKey,
    decide,
    profile_from_registration,
)
from notifier.domain.errors import KINDS

THRESHOLD = Money(minor=100_00)


def context(now: datetime, alarm: LowBalanceAlarm | None = None) -> NoticeContext:
    return NoticeContext(occurred_at=now, low_balance_threshold=THRESHOLD, low_balance_alarm=alarm)


# --- profile and sealed contact ---------------------------------------------------------------


def registration(
    subscriber, seal, *, email: str | None, language: str = "ru"
) -> SubscriberRegistered:
    return SubscriberRegistered(
        account_number=subscriber.account,
        contract_number="C-2026-0001",
        region="Bratislava",
        legal_status="person",
        language=language,
        masked_phone=subscriber.masked_phone,
        masked_email=subscriber.masked_email if email else None,
        sealed_contact=seal({"phone": subscriber.phone, "email": email}),
    )


def test_profile_keeps_the_unsealed_contact_with_the_identity_masks(subscriber, seal, opener):
    profile = profile_from_registration(
        registration(subscriber, seal, email=subscriber.email, language="en"), opener
    )
    assert profile.account_number == subscriber.account
    assert profile.language == "en"
    assert profile.phone == Destination(subscriber.phone, subscriber.masked_phone)
    assert profile.email == Destination(subscriber.email, subscriber.masked_email)
    assert subscriber.phone not in repr(profile)
    assert str(profile.phone) == subscriber.masked_phone


def test_profile_without_email(subscriber, seal, opener):
    profile = profile_from_registration(registration(subscriber, seal, email=None), opener)
    assert profile.email is None
    assert profile.notice_destination.address == subscriber.phone


def test_sealed_for_another_key_is_refused(subscriber, seal):
    stranger = SealOpener.from_base64(PrivateKey.generate().encode(Base64Encoder).decode())
    with pytest.raises(NotifierError) as refused:
        profile_from_registration(registration(subscriber, seal, email=None), stranger)
    assert refused.value.code == "unseal_failed"
    assert refused.value.field == "sealed_contact"


@pytest.mark.parametrize(
    ("sealed_data", "sealed_text"),
    [({"email": None}, None), (None, "not base64 at all!"), (["phone"], None)],
    ids=["no-phone", "garbage", "not-an-object"],
)
def test_malformed_sealed_contact_is_refused(opener, seal, sealed_data, sealed_text):
    sealed = sealed_text if sealed_text is not None else seal(sealed_data)
    with pytest.raises(NotifierError) as refused:
        opener.contact(sealed)
    assert refused.value.code == "unseal_failed"


def test_email_notices_need_an_email(subscriber):
    with pytest.raises(NotifierError) as refused:
        SubscriberProfile(
            account_number=subscriber.account,
            language="sk",
            phone=Destination(subscriber.phone, subscriber.masked_phone),
            notify_by=DeliveryChannel.EMAIL,
        )
    assert (refused.value.code, refused.value.field) == ("no_email", "notify_by")


# --- payment credited -------------------------------------------------------------------------


def test_payment_credited_tells_amount_and_new_balance(subscriber, balance_changed, opener, now):
    change = balance_changed(1_234_50 + 500_00, 1_234_50, cause="PaymentReceived")
    decision = decide(
        change, subscriber.profile("ru"), context(now, LowBalanceAlarm(armed=True)), opener
    )
    [intent] = decision.intents
    assert intent.template is TemplateKey.PAYMENT_CREDITED
    assert intent.language == "ru"
    assert intent.channel is DeliveryChannel.SMS
    assert intent.destination.address == subscriber.phone
    assert intent.variables["amount"] == Money(minor=1_234_50)
    assert intent.variables["balance"] == Money(minor=1_734_50)
    assert intent.variables["account"] == subscriber.account
    assert not intent.contains_secret


def test_notices_go_by_email_when_the_subscriber_chose_it(subscriber, balance_changed, opener, now):
    profile = subscriber.profile()
    by_email = SubscriberProfile(
        account_number=profile.account_number,
        language=profile.language,
        phone=profile.phone,
        email=profile.email,
        notify_by=DeliveryChannel.EMAIL,
    )
    change = balance_changed(500_00, 500_00, cause="PaymentReceived")
    [intent] = decide(change, by_email, context(now), opener).intents
    assert intent.channel is DeliveryChannel.EMAIL
    assert intent.destination.address == subscriber.email


@pytest.mark.parametrize("cause", ["TransferRequested", "ChargeApplied"])
def test_other_balance_movements_are_not_payments(subscriber, balance_changed, opener, now, cause):
    change = balance_changed(900_00, 200_00, cause=cause)
    assert decide(change, subscriber.profile(), context(now), opener).intents == ()


def test_a_payment_credit_is_what_the_ledger_says_it_is(subscriber, balance_changed, opener, now):
    profile = subscriber.profile()
    resolved = balance_changed(900_00, 200_00, cause="SuspenseResolved", credited_payment=True)
    bonus = balance_changed(900_00, 200_00, cause="PaymentReceived", credited_payment=False)
    [intent] = decide(resolved, profile, context(now), opener).intents
    assert (intent.template, intent.variables["amount"]) == (TemplateKey.PAYMENT_CREDITED, Money(minor=200_00))
    assert decide(bonus, profile, context(now), opener).intents == ()


def test_a_balance_change_is_not_decided_without_a_threshold(subscriber, balance_changed, opener, now):
    with pytest.raises(NotifierError) as refused:
        decide(balance_changed(90_00, -10_00), subscriber.profile(), NoticeContext(occurred_at=now), opener)
    assert (refused.value.code, refused.value.kind) == ("no_low_balance_threshold", ErrorKind.BROKEN_INVARIANT)


# --- balance running low ----------------------------------------------------------------------


def test_a_fall_below_the_threshold_is_told_once(subscriber, balance_changed, opener, now):
    profile = subscriber.profile()
    alarm = None
    told = []
    # 150 -> 120 (above) -> 90 (falls) -> 50 (still low) -> 300 (paid, re-arms) -> 80 (falls again)
    for main, delta, cause in [
        (120_00, -30_00, "ChargeApplied"),
        (90_00, -30_00, "ChargeApplied"),
        (50_00, -40_00, "ChargeApplied"),
        (300_00, 250_00, "PaymentReceived"),
        (80_00, -220_00, "ChargeApplied"),
    ]:
        decision = decide(
            balance_changed(main, delta, cause=cause), profile, context(now, alarm), opener
        )
        alarm = decision.low_balance_alarm
        told += [
            (main, intent.variables["balance"].minor)
            for intent in decision.intents
            if intent.template is TemplateKey.BALANCE_LOW
        ]
    assert told == [(90_00, 90_00), (80_00, 80_00)]


def test_balance_low_names_the_threshold(subscriber, balance_changed, opener, now):
    [intent] = decide(
        balance_changed(99_99, -1_00), subscriber.profile(), context(now), opener
    ).intents
    assert intent.template is TemplateKey.BALANCE_LOW
    assert intent.variables["threshold"] == THRESHOLD


def test_a_new_account_already_low_is_not_told_until_it_falls_again(
    subscriber, balance_changed, opener, now
):
    """The first payment of 50 leaves the account below 100, but nothing fell: no alarm."""
    decision = decide(
        balance_changed(50_00, 50_00, cause="PaymentReceived"),
        subscriber.profile(),
        context(now),
        opener,
    )
    assert [i.template for i in decision.intents] == [TemplateKey.PAYMENT_CREDITED]
    assert decision.low_balance_alarm == LowBalanceAlarm(armed=False)


def test_the_refund_of_a_closing_account_is_not_a_low_balance(subscriber, balance_changed, opener, now):
    """Closing with 500 left pays it back (a balance of zero, caused by SubscriptionClosed): the
    account is closing, not running low."""
    decision = decide(balance_changed(0, -500_00, cause="SubscriptionClosed"), subscriber.profile(),
                      context(now), opener)
    assert decision.intents == ()


def test_exactly_the_threshold_is_not_low(subscriber, balance_changed, opener, now):
    decision = decide(balance_changed(100_00, -1_00), subscriber.profile(), context(now), opener)
    assert decision.intents == ()
    assert decision.low_balance_alarm == LowBalanceAlarm(armed=True)


def test_a_credit_account_is_low_when_its_headroom_is(subscriber, balance_changed, opener, now):
    profile = subscriber.profile()
    credit = {"payment_type": PaymentType.CREDIT, "credit_limit": 1_000_00}
    above = decide(balance_changed(-800_00, -100_00, **credit), profile, context(now), opener)
    assert above.intents == ()  # 200 left to spend
    below = decide(
        balance_changed(-950_00, -150_00, **credit),
        profile,
        context(now, above.low_balance_alarm),
        opener,
    )
    assert [i.template for i in below.intents] == [TemplateKey.BALANCE_LOW]


def test_threshold_in_another_currency_is_refused(subscriber, balance_changed, opener, now):
    with pytest.raises(NotifierError) as refused:
        decide(
            balance_changed(10_00, -5_00, currency="EUR"),
            subscriber.profile(),
            context(now),
            opener,
        )
    assert refused.value.code == "currency_mismatch"


@given(balances=st.lists(st.integers(min_value=-500_00, max_value=500_00), min_size=1, max_size=40))
def test_alarm_tells_exactly_once_per_crossing_from_above_to_below(balances):
    threshold = Money(minor=0)
    alarm = LowBalanceAlarm(armed=True)
    tells = 0
    for minor in balances:
        alarm, tell = alarm.observe(Money(minor=minor), threshold)
        tells += tell
    walk = [0, *balances]  # the account starts at the threshold, i.e. not low
    crossings = sum(1 for before, after in pairwise(walk) if before >= 0 > after)
    assert tells == crossings


# --- blocks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_cls", "template"),
    [
        (AccountBlocked, TemplateKey.ACCOUNT_BLOCKED_FOR_DEBT),
        (AccountUnblocked, TemplateKey.ACCOUNT_UNBLOCKED),
    ],
)
def test_debt_blocks_and_unblocks(subscriber, opener, now, event_cls, template):
    moment = {"blocked_at": now} if event_cls is AccountBlocked else {"unblocked_at": now}
    event = event_cls(account_number=subscriber.account, reason=BlockReason.DEBT, **moment)
    alarm = LowBalanceAlarm(armed=False)
    decision = decide(event, subscriber.profile("en"), context(now, alarm), opener)
    assert [(i.template, i.language, i.channel) for i in decision.intents] == [
        (template, "en", DeliveryChannel.SMS)
    ]
    assert decision.low_balance_alarm == alarm


def voluntary_block(subscriber, now) -> tuple[AccountBlocked, VoluntaryBlockStarted]:
    """What the tariff service publishes when a voluntary block starts."""
    return (
        AccountBlocked(
            account_number=subscriber.account,
            reason=BlockReason.VOLUNTARY,
            blocked_at=now,
            until=date(2026, 12, 24),
        ),
        VoluntaryBlockStarted(
            account_number=subscriber.account,
            start=date(2026, 11, 25),
            last_day=date(2026, 12, 24),
            days=30,
            price=Money(minor=150_00),
            requested_via="cabinet",
        ),
    )


def test_a_voluntary_block_start_is_told_once_with_its_price_and_last_day(subscriber, opener, now):
    intents = [
        intent
        for event in voluntary_block(subscriber, now)
        for intent in decide(event, subscriber.profile(), context(now), opener).intents
    ]
    [intent] = intents
    assert intent.template is TemplateKey.VOLUNTARY_BLOCK_STARTED
    assert intent.variables == {
        "account": subscriber.account,
        "last_day": date(2026, 12, 24),
        "days": 30,
        "price": PositiveMoney(minor=150_00),
    }


@pytest.mark.parametrize("early", [True, False])
def test_a_voluntary_block_end_is_told_once_saying_whether_it_was_early(
    subscriber, opener, now, early
):
    events = (
        AccountUnblocked(
            account_number=subscriber.account, reason=BlockReason.VOLUNTARY, unblocked_at=now
        ),
        VoluntaryBlockEnded(
            account_number=subscriber.account,
            start=date(2026, 11, 1),
            last_day=date(2026, 11, 24),
            early=early,
            ended_at=now,
        ),
    )
    intents = [
        intent
        for event in events
        for intent in decide(event, subscriber.profile(), context(now), opener).intents
    ]
    assert [(i.template, i.variables["early"]) for i in intents] == [
        (TemplateKey.VOLUNTARY_BLOCK_ENDED, early)
    ]


def test_tariff_change(subscriber, opener, now):
    event = TariffChanged(
        account_number=subscriber.account,
        previous_plan="internet-100",
        plan="combo-500-premium",
        monthly_price=Money(minor=650_00),
        effective_from=date(2026, 11, 26),
    )
    [intent] = decide(event, subscriber.profile("ru"), context(now), opener).intents
    assert (intent.template, intent.language) == (TemplateKey.TARIFF_CHANGED, "ru")
    assert intent.variables == {
        "account": subscriber.account,
        "plan": "combo-500-premium",
        "monthly_price": PositiveMoney(minor=650_00),
        "effective_from": date(2026, 11, 26),
    }


def test_login_locked(subscriber, opener, now):
    event = LoginLocked(
        account_number=subscriber.account,
        locked_until=now + timedelta(minutes=30),
        failed_attempts=5,
    )
    [intent] = decide(event, subscriber.profile(), context(now), opener).intents
    assert intent.template is TemplateKey.LOGIN_LOCKED
    assert intent.destination.address == subscriber.phone
    assert intent.variables["until"] == now + timedelta(minutes=30)


def test_events_nobody_is_told_about(subscriber, opener, now):
    payment = PaymentReceived(
        account_number=subscriber.account,
        channel="terminal",
        reference="T-1",
        amount=Money(minor=100_00),
        received_at=now,
    )
    decision = decide(
        payment, subscriber.profile(), context(now, LowBalanceAlarm(armed=True)), opener
    )
    assert decision.intents == ()
    assert decision.low_balance_alarm == LowBalanceAlarm(armed=True)


# --- passwords and codes ----------------------------------------------------------------------


def password_issued(
    subscriber, seal, now, purpose, *, channel="sms", expires_in=None
) -> PasswordIssued:
    destination = subscriber.phone if channel == "sms" else subscriber.email
    return PasswordIssued(
        account_number=subscriber.account,
        purpose=purpose,
        channel=channel,
        masked_destination=subscriber.masked_phone if channel == "sms" else subscriber.masked_email,
        sealed_secret=seal({"secret": "Xk7-pq9Z", "destination": destination}),
        expires_at=now + expires_in if expires_in else None,
    )


@pytest.mark.parametrize("purpose", list(PasswordPurpose))
def test_each_password_purpose_has_its_template_and_carries_the_secret(
    subscriber, seal, opener, now, purpose
):
    event = password_issued(subscriber, seal, now, purpose)
    [intent] = decide(event, subscriber.profile(), context(now), opener).intents
    assert intent.template is PASSWORD_TEMPLATES[purpose]
    assert intent.contains_secret
    assert intent.variables["secret"] == "Xk7-pq9Z"
    assert intent.destination == Destination(subscriber.phone, subscriber.masked_phone)
    assert "Xk7-pq9Z" not in repr(intent) and subscriber.phone not in repr(intent)


def test_reset_code_by_email_states_its_validity(subscriber, seal, opener, now):
    event = password_issued(
        subscriber,
        seal,
        now,
        PasswordPurpose.RESET_CODE,
        channel="email",
        expires_in=timedelta(minutes=15),
    )
    issued_a_moment_later = now + timedelta(milliseconds=40)
    [intent] = decide(event, subscriber.profile(), context(issued_a_moment_later), opener).intents
    assert intent.channel is DeliveryChannel.EMAIL
    assert intent.destination == Destination(subscriber.email, subscriber.masked_email)
    assert intent.variables["valid_minutes"] == 15


def test_only_password_and_code_templates_carry_secrets():
    assert {key for key in TemplateKey if key.carries_secret} == {*PASSWORD_TEMPLATES.values(), TemplateKey.CONTACT_CODE}


# --- retry policy -----------------------------------------------------------------------------


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_delays_double_up_to_the_cap_then_give_up():
    policy = RetryPolicy(
        max_attempts=6, base_delay=timedelta(seconds=1), max_delay=timedelta(seconds=10)
    )
    almost_one = FixedRandom(0.999999)
    ceilings = [policy.next_delay(attempt, almost_one) for attempt in range(1, 6)]
    assert [round(d.total_seconds()) for d in ceilings] == [1, 2, 4, 8, 10]
    assert policy.next_delay(6, almost_one) is None
    assert policy.next_delay(1, FixedRandom(0.0)) == timedelta(0)


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    max_attempts=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(),
)
def test_full_jitter_stays_between_zero_and_the_ceiling(attempt, max_attempts, seed):
    policy = RetryPolicy(
        max_attempts=max_attempts,
        base_delay=timedelta(milliseconds=200),
        max_delay=timedelta(minutes=2),
    )
    delay = policy.next_delay(attempt, random.Random(seed))
    if attempt >= max_attempts:
        assert delay is None
    else:
        assert delay is not None
        ceiling = min(120.0, 0.2 * 2 ** min(attempt - 1, 64))
        assert 0 <= delay.total_seconds() <= ceiling


def test_jitter_spreads_the_retries():
    policy = RetryPolicy(
        max_attempts=10, base_delay=timedelta(seconds=1), max_delay=timedelta(minutes=1)
    )
    rng = random.Random(7)
    delays = {policy.next_delay(5, rng) for _ in range(50)}
    assert len(delays) == 50


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"base_delay": timedelta(0)}, "base_delay"),
        ({"base_delay": timedelta(seconds=5), "max_delay": timedelta(seconds=1)}, "max_delay"),
    ],
)
def test_nonsense_policies_are_refused(kwargs, field):
    with pytest.raises(NotifierError) as refused:
        RetryPolicy(**kwargs)
    assert (refused.value.code, refused.value.field) == ("invalid_retry_policy", field)


def test_tries_are_counted_from_one():
    with pytest.raises(ValueError):
        RetryPolicy().next_delay(0, FixedRandom(0.5))


# --- refusals ---------------------------------------------------------------------------------


def test_every_notifier_code_is_a_domain_error_of_a_declared_kind():
    assert set(KINDS) == set(ErrorCode)
    refused = NotifierError(ErrorCode.UNKNOWN_ACCOUNT, "the notifier knows nothing of 100000000008")
    assert isinstance(refused, DomainError)
    assert (refused.http_status, refused.field_errors()) == (404, [])
    assert refused.refusal() == Refusal("unknown_account", "the notifier knows nothing of 100000000008")


def test_a_balance_change_no_newer_than_the_alarm_saw_tells_nothing(subscriber, balance_changed, opener, now):
    """An old BalanceChanged delivered again (the inbox forgot it) neither re-arms the alarm nor
    tells of a payment or a low balance again."""
    profile = subscriber.profile()
    low = balance_changed(50_00, -100_00).model_copy(update={"account_version": 7})
    decision = decide(low, profile, context(now), opener)
    assert decision.low_balance_alarm == LowBalanceAlarm(armed=False, balance_version=7)
    for version in (6, 7, None):
        paid = balance_changed(300_00, 250_00, cause="PaymentReceived", credited_payment=True)
        again = decide(paid.model_copy(update={"account_version": version}), profile,
                       context(now, decision.low_balance_alarm), opener)
        assert again.not_newer and again.intents == () and again.low_balance_alarm == decision.low_balance_alarm
    paid = balance_changed(300_00, 250_00, cause="PaymentReceived", credited_payment=True)
    newer = decide(paid.model_copy(update={"account_version": 8}), profile, context(now, decision.low_balance_alarm),
                   opener)
    assert not newer.not_newer and newer.low_balance_alarm == LowBalanceAlarm(armed=True, balance_version=8)
    assert [intent.template for intent in newer.intents] == [TemplateKey.PAYMENT_CREDITED]
