"""Every message in every language: rendered from the events, amounts for people, SMS that fit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from billing_contracts.catalog.identity import (
    ContactChanged,
    ContactCodeIssued,
    LoginLocked,
    PasswordIssued,
    PasswordPurpose,
)
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_contracts.envelope import Event
from billing_contracts.money import Money
from hypothesis import given
from hypothesis import strategies as st
from notifier.domain import (
    MessageIntent,
    NoticeContext,
    NotifierError,
    TemplateKey,
    decide,
)
from notifier.rendering import (
    LANGUAGES,
    MAX_SMS_SEGMENTS,
    Renderer,
    format_money,
    sms_size,
)

SECRET = "Xk7-pq9Z"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(default_language="ru")


@dataclass(frozen=True)
class Case:
    """An event that must be told, and what its text must say in every language."""

    template: TemplateKey
    event: Callable[..., Event]
    must_say: tuple[str, ...]


THRESHOLD = Money(minor=2_000_00)


def payment(subscriber, seal, now, balance_changed):
    return balance_changed(12_345_678_90, 1_234_50, cause="PaymentReceived")


def balance_low(subscriber, seal, now, balance_changed):
    return balance_changed(1_234_50, -1_000_00)


def blocked_for_debt(subscriber, seal, now, balance_changed):
    return AccountBlocked(account_number=subscriber.account, reason="debt", blocked_at=now)


def unblocked(subscriber, seal, now, balance_changed):
    return AccountUnblocked(account_number=subscriber.account, reason="debt", unblocked_at=now)


def voluntary_block_started(subscriber, seal, now, balance_changed):
    return VoluntaryBlockStarted(
        account_number=subscriber.account,
        start=date(2026, 11, 25),
        last_day=date(2026, 12, 24),
        days=30,
        price=Money(minor=1_234_50),
        requested_via="support",
    )


def voluntary_block_ended(subscriber, seal, now, balance_changed):
    return VoluntaryBlockEnded(
        account_number=subscriber.account,
        start=date(2026, 11, 1),
        last_day=date(2026, 11, 24),
        early=True,
        ended_at=now,
    )


def tariff_changed(subscriber, seal, now, balance_changed):
    return TariffChanged(
        account_number=subscriber.account,
        previous_plan="internet-100",
        plan="combo-500-premium",
        monthly_price=Money(minor=1_234_50),
        effective_from=date(2026, 11, 26),
    )


def login_locked(subscriber, seal, now, balance_changed):
    return LoginLocked(
        account_number=subscriber.account,
        locked_until=now + timedelta(minutes=30),
        failed_attempts=5,
    )


def password(purpose):
    def event(subscriber, seal, now, balance_changed):
        return PasswordIssued(
            account_number=subscriber.account,
            purpose=purpose,
            channel="sms",
            masked_destination=subscriber.masked_phone,
            sealed_secret=seal({"secret": SECRET, "destination": subscriber.phone}),
            expires_at=now + timedelta(minutes=15)
            if purpose is PasswordPurpose.RESET_CODE
            else None,
        )

    return event


def contact_code(subscriber, seal, now, balance_changed):
    return ContactCodeIssued(
        account_number=subscriber.account, channel="sms", masked_destination=subscriber.masked_phone,
        sealed_secret=seal({"secret": SECRET, "destination": subscriber.phone}),
        expires_at=now + timedelta(minutes=15),
    )


def contact_changed(subscriber, seal, now, balance_changed):
    return ContactChanged(
        account_number=subscriber.account, changed="phone", masked_phone="+7 *** ***-00-11",
        masked_email=subscriber.masked_email, contact_version=1,
        sealed_contact=seal({"phone": "+79160000011", "email": subscriber.email}),
    )


CASES = [
    Case(TemplateKey.PAYMENT_CREDITED, payment, ("1 234,50 ₽", "12 345 678,90 ₽")),
    Case(TemplateKey.BALANCE_LOW, balance_low, ("1 234,50 ₽",)),
    Case(TemplateKey.ACCOUNT_BLOCKED_FOR_DEBT, blocked_for_debt, ()),
    Case(TemplateKey.ACCOUNT_UNBLOCKED, unblocked, ()),
    Case(
        TemplateKey.VOLUNTARY_BLOCK_STARTED, voluntary_block_started, ("24.12.2026", "1 234,50 ₽")
    ),
    Case(TemplateKey.VOLUNTARY_BLOCK_ENDED, voluntary_block_ended, ()),
    Case(
        TemplateKey.TARIFF_CHANGED,
        tariff_changed,
        ("combo-500-premium", "1 234,50 ₽", "26.11.2026"),
    ),
    Case(TemplateKey.LOGIN_LOCKED, login_locked, ("25.11.2026 12:30 UTC",)),
    Case(TemplateKey.PASSWORD_INITIAL, password(PasswordPurpose.INITIAL), (SECRET,)),
    Case(TemplateKey.PASSWORD_SMS_REISSUE, password(PasswordPurpose.SMS_REISSUE), (SECRET,)),
    Case(TemplateKey.PASSWORD_RESET_CODE, password(PasswordPurpose.RESET_CODE), (SECRET, "15")),
    Case(
        TemplateKey.PASSWORD_SUPPORT_RECOVERY, password(PasswordPurpose.SUPPORT_RECOVERY), (SECRET,)
    ),
    Case(TemplateKey.CONTACT_CODE, contact_code, (SECRET, "15")),
    Case(TemplateKey.CONTACT_CHANGED, contact_changed, ("+7 *** ***-00-11",)),
]


@pytest.fixture
def told(subscriber, opener, now, balance_changed, seal):
    """The one message intent a case's event produces for a subscriber speaking ``language``."""

    def intent(case: Case, language: str) -> MessageIntent:
        event = case.event(subscriber, seal, now, balance_changed)
        context = NoticeContext(occurred_at=now, low_balance_threshold=THRESHOLD)
        [intent] = decide(event, subscriber.profile(language), context, opener).intents
        return intent

    return intent


def test_every_template_has_a_case():
    assert {case.template for case in CASES} == set(TemplateKey)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.template.value)
def test_each_event_renders_in_each_language(renderer, told, subscriber, case, language):
    intent = told(case, language)
    assert intent.template is case.template
    for channel in DeliveryChannel:
        message = renderer.render(intent.template, intent.language, intent.variables, channel)
        assert message.language == language
        assert message.template == case.template.value
        assert message.subject
        assert subscriber.account in message.body
        for phrase in case.must_say:
            assert phrase in message.body, f"{channel} text lacks {phrase!r}: {message.body}"
        assert message.contains_secret == case.template.carries_secret
        if channel is DeliveryChannel.SMS:
            assert "\n" not in message.body
            assert sms_size(message.body).segments <= MAX_SMS_SEGMENTS


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.template.value)
def test_the_languages_really_differ(renderer, told, case):
    bodies = {}
    for language in LANGUAGES:
        intent = told(case, language)
        bodies[language] = renderer.render(
            intent.template, language, intent.variables, DeliveryChannel.SMS
        ).body
    assert len(set(bodies.values())) == len(LANGUAGES)
    assert re.search("[а-яё]", bodies["ru"]) and not re.search(
        "[а-яё]", bodies["sk"] + bodies["en"]
    )


@given(
    amount=st.integers(min_value=1, max_value=9_999_999_999),
    balance=st.integers(min_value=-9_999_999_999, max_value=9_999_999_999),
    plan=st.from_regex(r"[a-z0-9][a-z0-9-]{0,39}", fullmatch=True),  # a catalog code
    language=st.sampled_from(LANGUAGES),
    currency=st.sampled_from(["RUB", "EUR", "USD"]),
)
def test_worst_case_sms_still_fit(renderer, amount, balance, plan, language, currency):
    variables = {
        "account": "100000000008",
        "amount": Money(minor=amount, currency=currency),
        "balance": Money(minor=balance, currency=currency),
        "threshold": Money(minor=amount, currency=currency),
        "monthly_price": Money(minor=amount, currency=currency),
        "price": Money(minor=amount, currency=currency),
        "plan": plan,
        "effective_from": date(2026, 12, 31),
        "last_day": date(2026, 12, 31),
        "days": 30,
    }
    for template in (
        TemplateKey.PAYMENT_CREDITED,
        TemplateKey.BALANCE_LOW,
        TemplateKey.TARIFF_CHANGED,
        TemplateKey.VOLUNTARY_BLOCK_STARTED,
    ):
        body = renderer.render(template, language, variables, DeliveryChannel.SMS).body
        assert sms_size(body).segments <= MAX_SMS_SEGMENTS


# --- language fallback and refusals -----------------------------------------------------------


def test_a_missing_language_falls_back_to_the_default(subscriber):
    variables = {"account": subscriber.account}
    message = Renderer(default_language="sk").render(
        TemplateKey.ACCOUNT_UNBLOCKED, "de", variables, DeliveryChannel.SMS
    )
    assert message.language == "sk"
    assert (
        message.body
        == Renderer()
        .render(TemplateKey.ACCOUNT_UNBLOCKED, "sk", variables, DeliveryChannel.SMS)
        .body
    )


def test_a_default_language_without_templates_is_refused():
    with pytest.raises(NotifierError) as refused:
        Renderer(default_language="de")
    assert (refused.value.code, refused.value.field) == ("incomplete_language", "default_language")


def test_a_missing_variable_is_an_error_not_a_blank(renderer):
    with pytest.raises(NotifierError) as refused:
        renderer.render(
            TemplateKey.PAYMENT_CREDITED, "en", {"account": "100000000008"}, DeliveryChannel.SMS
        )
    assert refused.value.code == "template_variable_missing"


def test_an_sms_longer_than_the_cap_is_refused(renderer):
    variables = {
        "account": "100000000008",
        "plan": "Ж" * 300,  # no catalog code is this long; the guard still holds
        "monthly_price": Money(minor=1),
        "effective_from": date(2026, 12, 31),
    }
    with pytest.raises(NotifierError) as refused:
        renderer.render(TemplateKey.TARIFF_CHANGED, "ru", variables, DeliveryChannel.SMS)
    assert refused.value.code == "sms_too_long"
    # An e-mail has no such limit.
    assert (
        "Ж" * 300
        in renderer.render(TemplateKey.TARIFF_CHANGED, "ru", variables, DeliveryChannel.EMAIL).body
    )


def test_a_secret_message_hides_its_body_from_repr(renderer):
    message = renderer.render(
        TemplateKey.PASSWORD_INITIAL,
        "en",
        {"account": "100000000008", "secret": SECRET},
        DeliveryChannel.SMS,
    )
    assert SECRET in message.body
    assert SECRET not in repr(message)


# --- amounts for people -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1_234_50, "RUB", "1 234,50 ₽"),
        (5, "RUB", "0,05 ₽"),
        (0, "EUR", "0,00 €"),
        (-1_234_567_89, "RUB", "-1 234 567,89 ₽"),
        (999_99, "EUR", "999,99 €"),
        (100_000_00, "USD", "100 000,00 $"),
    ],
)
def test_amounts_read_like_people_write_them(minor, currency, expected):
    assert format_money(Money(minor=minor, currency=currency)) == expected


def test_money_after_a_json_round_trip_formats_the_same():
    money = Money(minor=1_234_50)
    assert format_money(money.model_dump(mode="json")) == "1 234,50 ₽"


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(["RUB", "EUR"]),
)
def test_formatted_amounts_read_back_to_the_same_money(minor, currency):
    text = format_money(Money(minor=minor, currency=currency))
    number, sign = text.rsplit(" ", 1)
    assert sign == {"RUB": "₽", "EUR": "€"}[currency]
    assert re.fullmatch(r"-?\d{1,3}( \d{3})*,\d{2}", number)
    assert Money.parse(number.replace(" ", ""), currency) == Money(minor=minor, currency=currency)


# --- SMS length -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 459, "GSM-7", 3),
        ("a" * 460, "GSM-7", 4),
        ("€" * 80, "GSM-7", 1),  # the euro sign takes two septets
        ("€" * 81, "GSM-7", 2),
        ("ж" * 70, "UCS-2", 1),
        ("ж" * 71, "UCS-2", 2),
        ("ж" * 201, "UCS-2", 3),
        ("a" * 201 + "₽", "UCS-2", 4),  # one character outside GSM-7 switches the whole text
        ("Platba pripísaná", "UCS-2", 1),  # Slovak í is not in GSM-7, é is
        ("Café", "GSM-7", 1),
    ],
)
def test_sms_segments(text, encoding, segments):
    size = sms_size(text)
    assert (size.encoding, size.segments) == (encoding, segments)
