"""The whole notifier over the real broker and PostgreSQL: events in, messages and outcomes out.

Events are published as the owning services publish them (RawProducer on the prefixed topics);
what was sent is read from the file channel, the SMTP server or the HTTP gateway, and from the
delivery log and the billing.notifier topic.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr
from billing_contracts import topics
from billing_contracts.catalog.identity import (
    ContactChanged,
    ContactCodeIssued,
    LoginLocked,
    NoticeKind,
    NoticePreferencesChanged,
    PasswordIssued,
    PasswordPurpose,
    SubscriberRegistered,
)
from billing_contracts.catalog.ledger import AccountClosed, BalanceChanged, PaymentType
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    ClosureSettlement,
    RequestChannel,
    SubscriptionClosed,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_contracts.envelope import Envelope, Event
from billing_contracts.money import Money
from billing_events.runtime import ServiceRuntime
from billing_events.schema import inbox, outbox
from billing_events.sealing import generate_keypair, seal
from billing_events.testing.clock import RunningClock
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.memory import staged_by
from billing_events.testing.plugin import eventually, operations_token
from notifier import store
from notifier.app import build
from notifier.channels import REDACTED
from notifier.domain import TemplateKey
from notifier import handlers
from notifier.rendering import Renderer
from notifier.context import NotifierContext
from notifier.service import DeliveryLogQuery, delivery_log
from notifier.settings import NotifierSettings
from notifier.store import DeliveryStatus
from sqlalchemy import select
from structlog.testing import capture_logs

clock = RunningClock()
KEYS = generate_keypair()
PUBLIC, PRIVATE = KEYS
LOCKED_UNTIL = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
FAST_RETRIES = {"retry_base_delay_seconds": 0.05, "retry_max_delay_seconds": 0.1}


class Person:
    def __init__(self, account: str, language: str, phone: str, email: str | None = None) -> None:
        self.account, self.language, self.phone, self.email = account, language, phone, email
        self.masked_phone = f"+7 *** *** {phone[-4:-2]} {phone[-2:]}"
        self.masked_email = f"{email[0]}***@{email.split('@')[1]}" if email else None

    def envelope(self, payload: Event) -> Envelope[Any]:
        return Envelope.new(payload, account=self.account, producer=topics.spec(payload.topic).owner, clock=clock)

    def registered(self) -> Envelope[SubscriberRegistered]:
        return self.envelope(SubscriberRegistered(
            account_number=self.account, contract_number=f"C-{self.account}", region="Bratislava",
            legal_status="person", language=self.language, masked_phone=self.masked_phone,
            masked_email=self.masked_email,
            sealed_contact=seal(PUBLIC, {"phone": self.phone, "email": self.email}),
        ))

    def password(self, secret: str, *, purpose: PasswordPurpose = PasswordPurpose.INITIAL,
                 channel: str = "sms", expires_in: timedelta | None = None,
                 sealed_for: str = PUBLIC) -> Envelope[PasswordIssued]:
        """Exactly as identity publishes it: the secret and where it goes, sealed (for ``sealed_for``)."""
        destination = self.email if channel == "email" else self.phone
        masked = self.masked_email if channel == "email" else self.masked_phone
        return self.envelope(PasswordIssued(
            account_number=self.account, purpose=purpose, channel=channel, masked_destination=masked,
            sealed_secret=seal(sealed_for, {"secret": secret, "destination": destination}),
            expires_at=clock.now() + expires_in if expires_in else None,
        ))

    def balance(self, main: int, delta: int, cause: str) -> Envelope[BalanceChanged]:
        return self.envelope(BalanceChanged(
            account_number=self.account, transaction_id=uuid4(), main=Money(minor=main), bonus=Money.zero(),
            delta_main=Money(minor=delta), delta_bonus=Money.zero(), cause_event_id=uuid4(), cause_type=cause,
            payment_type=PaymentType.PREPAID, credit_limit=Money.zero(),
        ))

    def login_locked(self) -> Envelope[LoginLocked]:
        return self.envelope(LoginLocked(account_number=self.account, locked_until=LOCKED_UNTIL, failed_attempts=5))


@pytest.fixture
def start(make_settings: Callable[..., Any]) -> Callable[..., Any]:
    """``async with start(**settings) as (runtime, ctx)``: a running notifier and its context,
    stopped at the end of the test."""

    @contextlib.asynccontextmanager
    async def running(settings: NotifierSettings | None = None,
                      **overrides: Any) -> AsyncIterator[tuple[ServiceRuntime, NotifierContext]]:
        if settings is None:
            settings = await make_settings(NotifierSettings, notifier_private_key=PRIVATE, **overrides)
        runtime, ctx = build(settings, clock)
        async with runtime:
            yield runtime, ctx

    return running


def file_lines(runtime: ServiceRuntime) -> list[dict[str, Any]]:
    path: Path = runtime.settings.resolved_file_channel_path()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def table_rows(runtime: ServiceRuntime, table: Any) -> list[dict[str, Any]]:
    async with runtime.db.connect() as conn:
        return [dict(row._mapping) for row in (await conn.execute(select(table))).all()]


async def publish(runtime: ServiceRuntime, bootstrap: str, *envelopes: Envelope[Any]) -> None:
    async with RawProducer(bootstrap) as producer:
        for envelope in envelopes:
            await producer.send(runtime.topics(envelope.topic), envelope)


def outcomes(runtime: ServiceRuntime, bootstrap: str) -> TopicReader:
    return TopicReader(bootstrap, runtime.topics(topics.NOTIFIER))


# --- every event type, in every language ------------------------------------------------------

PEOPLE = [
    Person("100000000008", "sk", "+421901000008"),
    Person("100000000016", "ru", "+79160000016"),
    Person("100000000024", "en", "+447700000024"),
]

EXPECTED_SMS = {
    # A few words per language and template that the templates must produce, beside the
    # full comparison with the renderer below.
    ("sk", "payment_credited"): "Platba 1 234,50 ₽ bola pripísaná na účet 100000000008. Zostatok: 1 234,50 ₽.",
    ("ru", "payment_credited"): "На счёт 100000000016 зачислен платёж 1 234,50 ₽. Баланс: 1 234,50 ₽.",
    ("en", "payment_credited"): "A payment of 1 234,50 ₽ was credited to account 100000000024. Balance: 1 234,50 ₽.",
    ("ru", "balance_low"): "Баланс счёта 100000000016: 50,00 ₽. Пополните счёт вовремя, чтобы услуги не были заблокированы.",
    ("en", "login_locked"): "25.11.2026 12:30 UTC",
    ("sk", "voluntary_block_started"): "do 14.12.2026 vrátane. Cena: 150,00 ₽.",
    ("ru", "tariff_changed"): "Тариф по счёту 100000000016 с 01.12.2026: home-200 (650,00 ₽/мес.).",
}


def story(person: Person) -> tuple[list[Envelope[Any]], dict[str, dict[str, Any]]]:
    """Every event the subscriber must hear about (and two they must not), with the variables
    each expected message is written from."""
    account = person.account
    block_start, block_end = date(2026, 11, 25), date(2026, 12, 14)
    events = [
        person.registered(),
        person.password(f"pw-{person.language}-1"),
        person.login_locked(),
        person.balance(1_234_50, 1_234_50, "PaymentReceived"),
        person.balance(50_00, -1_184_50, "ChargeApplied"),
        person.balance(40_00, -10_00, "ChargeApplied"),  # still low: told once per fall
        person.envelope(AccountBlocked(account_number=account, reason=BlockReason.DEBT, blocked_at=clock.now())),
        person.envelope(AccountUnblocked(account_number=account, reason=BlockReason.DEBT, unblocked_at=clock.now())),
        person.envelope(AccountBlocked(account_number=account, reason=BlockReason.VOLUNTARY,
                                       blocked_at=clock.now(), until=block_end)),  # its own event tells
        person.envelope(VoluntaryBlockStarted(account_number=account, start=block_start, last_day=block_end,
                                              days=20, price=Money(minor=150_00), requested_via=RequestChannel.CABINET)),
        person.envelope(VoluntaryBlockEnded(account_number=account, start=block_start, last_day=date(2026, 12, 1),
                                            early=True, ended_at=clock.now())),
        person.envelope(TariffChanged(account_number=account, previous_plan="home-100", plan="home-200",
                                      monthly_price=Money(minor=650_00), effective_from=date(2026, 12, 1))),
    ]
    expected = {
        "password_initial": {"account": account, "secret": f"pw-{person.language}-1"},
        "login_locked": {"account": account, "until": LOCKED_UNTIL},
        "payment_credited": {"account": account, "amount": Money(minor=1_234_50), "balance": Money(minor=1_234_50)},
        "balance_low": {"account": account, "balance": Money(minor=50_00), "threshold": Money(minor=100_00)},
        "account_blocked_debt": {"account": account},
        "account_unblocked": {"account": account},
        "voluntary_block_started": {"account": account, "last_day": block_end, "days": 20, "price": Money(minor=150_00)},
        "voluntary_block_ended": {"account": account, "early": True},
        "tariff_changed": {"account": account, "plan": "home-200", "monthly_price": Money(minor=650_00),
                           "effective_from": date(2026, 12, 1)},
    }
    return events, expected


async def test_each_event_type_produces_the_right_message_in_each_language(start, bootstrap_servers):
    renderer = Renderer()
    stories = {person.account: story(person) for person in PEOPLE}
    total = sum(len(expected) for _, expected in stories.values())
    async with start() as (runtime, ctx), outcomes(runtime, bootstrap_servers) as reader:
        await publish(runtime, bootstrap_servers, *(e for events, _ in stories.values() for e in events))
        sent = await reader.wait_for_type("NotificationSent", total)
        await eventually(lambda: len(file_lines(runtime)) >= total, what="every message in the file")
        lines = file_lines(runtime)
        logs = {p.account: await delivery_log(ctx, DeliveryLogQuery(account_number=p.account)) for p in PEOPLE}

    assert len(lines) == total and len(sent) == total
    for person in PEOPLE:
        _, expected = stories[person.account]
        mine = {line["template"]: line for line in lines if line["to"] == person.phone}
        assert set(mine) == set(expected), person.language
        for template, variables in expected.items():
            line = mine[template]
            want = renderer.render(TemplateKey(template), person.language, variables, DeliveryChannel.SMS)
            assert (line["language"], line["subject"], line["body"]) == (person.language, want.subject, want.body)
        for (language, template), words in EXPECTED_SMS.items():
            if language == person.language:
                assert words in mine[template]["body"]

        log = logs[person.account]
        assert log.subscriber is not None and log.subscriber.masked_phone == person.masked_phone
        assert sorted(d.template for d in log.deliveries) == sorted(expected)
        assert {(d.status, d.attempts, d.language, d.masked_destination, d.channel) for d in log.deliveries} == {
            (DeliveryStatus.SENT, 1, person.language, person.masked_phone, DeliveryChannel.SMS)
        }
        outcomes_of = [e.payload for e in sent if e.account == person.account]
        assert sorted(o.template for o in outcomes_of) == sorted(expected)
        assert {o.language for o in outcomes_of} == {person.language}
    by_event = {d.about_event_id: d for log in logs.values() for d in log.deliveries}
    for envelope in sent:
        assert envelope.causation_id == envelope.payload.about_event_id
        assert by_event[envelope.payload.about_event_id].about_event_type == envelope.payload.about_event_type


# --- exactly once ------------------------------------------------------------------------------


async def test_a_redelivered_event_sends_once_even_across_a_restart(start, make_settings, bootstrap_servers):
    person = Person("100000000032", "ru", "+79160000032")
    payment = person.balance(500_00, 500_00, "PaymentReceived")
    settings = await make_settings(NotifierSettings, notifier_private_key=PRIVATE)
    async with contextlib.AsyncExitStack() as stack:
        first, _ = await stack.enter_async_context(start(settings))
        reader = await stack.enter_async_context(outcomes(first, bootstrap_servers))
        await publish(first, bootstrap_servers, person.registered(), payment, payment, payment)
        await reader.wait_for_type("NotificationSent", 1, template="payment_credited", timeout=60)
        await first.stop()
        async with start(settings) as (runtime, _):  # the same database and consumer group
            await publish(runtime, bootstrap_servers, payment, person.login_locked())
            # A rejoin of the consumer group can be slow on a loaded broker: a wider window.
            await reader.wait_for_type("NotificationSent", 1, template="login_locked", timeout=60)
            templates = [line["template"] for line in file_lines(runtime)]
            rows = await table_rows(runtime, store.deliveries)
    assert templates == ["payment_credited", "login_locked"]
    assert sorted(row["template"] for row in rows) == ["login_locked", "payment_credited"]
    assert len([e for e in reader.envelopes if e.event_type == "NotificationSent"]) == 2


async def test_notices_turned_off_are_not_sent_and_passwords_and_security_notices_always_are(
        start, bootstrap_servers):
    """The subscriber turned off low-balance notices (and an older choice, turning nothing off,
    arrives again after it): a fall below the threshold tells nothing; a payment, a password and
    a lockout still go."""
    person = Person("100000000040", "ru", "+79160000040")

    def preferences(turned_off: list[NoticeKind], version: int) -> Envelope[NoticePreferencesChanged]:
        return person.envelope(NoticePreferencesChanged(account_number=person.account, turned_off=turned_off,
                                                        preferences_version=version))

    async def chosen() -> list[Any]:
        return [(row["turned_off"], row["preferences_version"]) for row in
                await table_rows(runtime, store.notice_preferences)]

    async with start() as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
        await publish(runtime, bootstrap_servers, person.registered(), preferences([], 1),
                      preferences([NoticeKind.BALANCE_LOW], 2), preferences([], 1), person.password("pw-kept-on"))
        # The balance comes on another topic: the choice counts from when the notifier has it.
        await reader.wait_for_type("NotificationSent", 1, template="password_initial", timeout=60)
        assert await chosen() == [(["balance_low"], 2)]
        await publish(runtime, bootstrap_servers, person.balance(500_00, 500_00, "PaymentReceived"),
                      person.balance(50_00, -450_00, "ChargeApplied"), person.login_locked(),
                      person.balance(600_00, 550_00, "PaymentReceived"))  # decided after the fall
        await reader.wait_for_type("NotificationSent", 1, template="login_locked", timeout=60)
        await reader.wait_for_type("NotificationSent", 2, template="payment_credited", timeout=60)
        rows = await table_rows(runtime, store.deliveries)
    assert sorted(row["template"] for row in rows) == [
        "login_locked", "password_initial", "payment_credited", "payment_credited"]


async def test_a_closed_account_is_told_nothing_more(start, bootstrap_servers):
    """Closing with money left refunds it (a BalanceChanged to zero, caused by the tariff's
    SubscriptionClosed) and closes the account: no low-balance notice for the settlement, and
    nothing about the account after it closed (a late block or balance change, a tariff notice)."""
    person = Person("100000000057", "ru", "+79160000057")
    closed = person.envelope(AccountClosed(
        account_number=person.account, settlement=ClosureSettlement.REFUND, settled=Money(minor=500_00),
        forfeited_bonus=Money.zero(), requested_by="operator:op", reason="moved abroad"))
    closing = person.envelope(SubscriptionClosed(
        account_number=person.account, last_day=date(2026, 11, 30), settlement=ClosureSettlement.REFUND,
        requested_by="operator:op", reason="moved abroad", closed_at=clock.now()))
    after = [person.balance(0, 0, "ChargeApplied"),
             person.envelope(AccountBlocked(account_number=person.account, reason=BlockReason.DEBT,
                                            blocked_at=clock.now())),
             person.envelope(TariffChanged(account_number=person.account, previous_plan="home-100", plan="home-200",
                                           monthly_price=Money(minor=650_00), effective_from=date(2026, 12, 1)))]
    async with start() as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
        # The payment is told before the closing starts: the tariff's topic does not wait for the
        # ledger's, so a closure published beside it could be heard first.
        await publish(runtime, bootstrap_servers, person.registered(),
                      person.balance(500_00, 500_00, "PaymentReceived"))
        await reader.wait_for_type("NotificationSent", 1, template="payment_credited", timeout=60)
        await publish(runtime, bootstrap_servers,
                      person.balance(0, -500_00, "SubscriptionClosed"), closed, closing, *after)

        async def decided() -> bool:
            claimed = {row["event_id"] for row in await table_rows(runtime, inbox)}
            return {closed.event_id, closing.event_id, *(event.event_id for event in after)} <= claimed

        await eventually(decided, timeout=60)
        rows = await table_rows(runtime, store.deliveries)
    assert [row["template"] for row in rows] == ["payment_credited"]


async def test_what_waited_for_the_profile_before_the_closure_is_still_told(start, bootstrap_servers):
    """The identity topic can lag the ledger's: a payment parked (no profile yet) before the
    closure arrived happened while the account was open and is told once the profile comes; a
    balance change parked after the closure is not."""
    person = Person("100000000065", "en", "+447700000065")
    closed = person.envelope(AccountClosed(
        account_number=person.account, settlement=ClosureSettlement.REFUND, settled=Money(minor=500_00),
        forfeited_bonus=Money.zero(), requested_by="operator:op", reason="moved abroad"))
    async with start() as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
        await publish(runtime, bootstrap_servers, person.balance(500_00, 500_00, "PaymentReceived"))
        await eventually(lambda: _count(runtime, store.parked_events), what="the payment parked")
        await publish(runtime, bootstrap_servers, closed)
        await eventually(lambda: _count(runtime, store.closed_accounts), what="the closure kept")
        await publish(runtime, bootstrap_servers, person.balance(700_00, 200_00, "PaymentReceived"))
        await eventually(lambda: _parked_count_is(runtime, 2), what="the late payment parked")
        await publish(runtime, bootstrap_servers, person.registered())
        await reader.wait_for_type("NotificationSent", 1, template="payment_credited", timeout=60)
        await eventually(lambda: _parked_count_is(runtime, 0), what="the parked events decided")
        rows = await table_rows(runtime, store.deliveries)
    assert [row["template"] for row in rows] == ["payment_credited"]
    assert "500,00" in file_lines(runtime)[0]["body"]


async def _parked_count_is(runtime: ServiceRuntime, expected: int) -> bool:
    return await _count(runtime, store.parked_events) == expected


async def test_a_changed_phone_is_told_to_the_old_one_and_used_after(start, bootstrap_servers):
    """The code goes to the new phone; the change is told to the old phone; later notices go to
    the new one; the change delivered again after it (the inbox forgot) changes nothing."""
    person = Person("100000000057", "en", "+79160000057")
    new_phone = "+79039990057"
    code = person.envelope(ContactCodeIssued(
        account_number=person.account, channel="sms", masked_destination="+7 *** ***-00-57",
        sealed_secret=seal(PUBLIC, {"secret": "482913", "destination": new_phone}),
        expires_at=clock.now() + timedelta(minutes=15)))
    changed = person.envelope(ContactChanged(
        account_number=person.account, changed="phone", masked_phone="+7 *** ***-00-57", contact_version=1,
        sealed_contact=seal(PUBLIC, {"phone": new_phone, "email": None})))
    async with start() as (runtime, ctx), outcomes(runtime, bootstrap_servers) as reader:
        await publish(runtime, bootstrap_servers, person.registered(), code, changed, person.login_locked())
        await reader.wait_for_type("NotificationSent", 1, template="login_locked", timeout=60)
        await reader.wait_for_type("NotificationSent", 1, template="contact_changed", timeout=60)
        await reader.wait_for_type("NotificationSent", 1, template="contact_code", timeout=60)
        # the same change again, as after the inbox forgot it
        again, staged = await staged_by(ctx, lambda uow: handlers.on_contact_changed(ctx, uow, changed))
        assert (again, staged) == ([], [])
        sent = {line["template"]: line["to"] for line in file_lines(runtime)}
        rows = await table_rows(runtime, store.deliveries)
    assert sent == {"contact_code": new_phone, "contact_changed": person.phone, "login_locked": new_phone}
    assert len(rows) == 3


async def test_a_rotation_of_the_sealing_key_strands_no_secret(start, make_settings, bootstrap_servers):
    """The notifier gets the new private key beside the old one, then identity seals with the new
    public key: what was sealed with the old key before the switch is still delivered."""
    person = Person("100000000099", "en", "+447700000099")
    new_public, new_private = generate_keypair()
    settings = await make_settings(NotifierSettings, notifier_private_key=PRIVATE)
    async with contextlib.AsyncExitStack() as stack:
        before, _ = await stack.enter_async_context(start(settings))
        reader = await stack.enter_async_context(outcomes(before, bootstrap_servers))
        await publish(before, bootstrap_servers, person.registered(), person.password("111111"))
        await reader.wait_for_type("NotificationSent", 1, template="password_initial", timeout=60)
        await before.stop()
        # In flight while the notifier restarts with both keys: one sealed before identity switched
        # to the new public key, one after.
        await publish(before, bootstrap_servers,
                      person.password("222222", purpose=PasswordPurpose.SMS_REISSUE),
                      person.password("333333", purpose=PasswordPurpose.SMS_REISSUE, sealed_for=new_public))
        rotated = settings.model_copy(update={"notifier_private_key": SecretStr(f"{new_private},{PRIVATE}")})
        async with start(rotated) as (runtime, _):
            await reader.wait_for_type("NotificationSent", 3, timeout=60)
            sent = file_lines(runtime)
    assert [("111111" in str(line), "222222" in str(line), "333333" in str(line)) for line in sent] == [
        (True, False, False), (False, True, False), (False, False, True)]
    assert not [e for e in reader.envelopes if e.event_type == "NotificationFailed"]


async def test_an_event_before_the_profile_waits_for_it(start, bootstrap_servers):
    person = Person("100000000040", "en", "+447700000040")
    async with start() as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
        await publish(runtime, bootstrap_servers, person.balance(300_00, 300_00, "PaymentReceived"))
        await eventually(lambda: _count(runtime, store.parked_events), what="the payment parked")
        assert file_lines(runtime) == []
        await publish(runtime, bootstrap_servers, person.registered())
        [sent] = await reader.wait_for_type("NotificationSent", 1)
        assert await _count(runtime, store.parked_events) == 0
    assert sent.payload.template == "payment_credited" and sent.payload.language == "en"
    assert file_lines(runtime)[0]["body"].startswith("A payment of 300,00 ₽ was credited")


async def _count(runtime: ServiceRuntime, table: Any) -> int:
    return len(await table_rows(runtime, table))


# --- a failing gateway -------------------------------------------------------------------------


async def test_a_gateway_failing_twice_then_working_delivers_once_with_two_retries_logged(
    start, fakes, bootstrap_servers
):
    person = Person("100000000057", "sk", "+421901000057")
    gateway = fakes.SmsGateway([503, 503])
    async with gateway.serving() as url:
        with capture_logs() as logs:
            async with start(channel="http_sms", sms_gateway={"url": url, "api_token": "t0k3n"},
                             **FAST_RETRIES) as (runtime, ctx), outcomes(runtime, bootstrap_servers) as reader:
                await publish(runtime, bootstrap_servers, person.registered(), person.login_locked())
                [sent] = await reader.wait_for_type("NotificationSent", 1)
                log = await delivery_log(ctx, DeliveryLogQuery(account_number=person.account))
    assert sent.payload.attempts == 3 and sent.payload.masked_destination == person.masked_phone
    assert len(gateway.requests) == 3
    assert {r.body["to"] for r in gateway.requests} == {person.phone}
    assert all("prihlásenie k účtu 100000000057 zablokované" in r.body["text"] for r in gateway.requests)
    [delivery] = log.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 3, "SMS gateway answered 503")
    assert [(t.attempt, t.outcome, t.reason) for t in delivery.tries] == [
        (1, "retry", "SMS gateway answered 503"), (2, "retry", "SMS gateway answered 503"), (3, "sent", None),
    ]
    retries = [entry for entry in logs if entry["event"] == "notifier.delivery_retry"]
    assert [(r["attempt"], r["reason"], r["masked_destination"]) for r in retries] == [
        (1, "SMS gateway answered 503", person.masked_phone), (2, "SMS gateway answered 503", person.masked_phone),
    ]
    assert person.phone not in str(logs)


async def test_a_gateway_that_always_fails_ends_in_notification_failed(start, fakes, bootstrap_servers):
    person = Person("100000000065", "ru", "+79160000065")
    gateway = fakes.SmsGateway([503] * 10)
    async with gateway.serving() as url:
        async with start(channel="http_sms", sms_gateway={"url": url, "api_token": "t"}, retry_max_attempts=3,
                         http_port=0, **FAST_RETRIES) as (runtime, ctx), outcomes(runtime, bootstrap_servers) as reader:
            await publish(runtime, bootstrap_servers, person.registered(), person.login_locked())
            [failed] = await reader.wait_for_type("NotificationFailed", 1)
            log = await delivery_log(ctx, DeliveryLogQuery(account_number=person.account))
            token = operations_token(runtime.clock)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}",
                                         headers={"Authorization": f"Bearer {token}"}) as http:
                over_http = await http.get(f"/notifier/accounts/{person.account}/deliveries", params={"status": "failed"})
                unknown = await http.get("/notifier/accounts/100000000990/deliveries")
                malformed = await http.get("/notifier/accounts/12345/deliveries")
    assert over_http.status_code == 200
    assert [(d["template"], d["status"], d["last_error"]) for d in over_http.json()["deliveries"]] == [
        ("login_locked", "failed", "SMS gateway answered 503")
    ]
    assert over_http.json()["subscriber"]["masked_phone"] == person.masked_phone
    assert person.phone not in over_http.text
    assert (unknown.status_code, malformed.status_code) == (404, 422)
    assert failed.account == person.account
    assert (failed.payload.attempts, failed.payload.reason, failed.payload.template) == (3, "SMS gateway answered 503", "login_locked")
    assert failed.payload.masked_destination == person.masked_phone
    assert not [e for e in reader.envelopes if e.event_type == "NotificationSent"]
    assert len(gateway.requests) == 3
    [delivery] = log.deliveries
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.FAILED, 3, None)
    assert [t.outcome for t in delivery.tries] == ["retry", "retry", "failed"]


# --- e-mail through a real SMTP server ---------------------------------------------------------


async def test_a_reset_code_by_email_goes_through_smtp(start, fakes, bootstrap_servers):
    person = Person("100000000073", "sk", "+421901000073", email="jana.novakova@mail.sk")
    mailbox = fakes.Mailbox()
    with fakes.smtp_server(mailbox) as port:
        smtp = {"host": "127.0.0.1", "port": port, "sender": "billing@operator.example", "tls": "none", "timeout_seconds": 5}
        async with start(channel="smtp", smtp=smtp) as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
            code = person.password("483920", purpose=PasswordPurpose.RESET_CODE, channel="email",
                                   expires_in=timedelta(minutes=15))
            await publish(runtime, bootstrap_servers, person.registered(), code, person.login_locked())
            sent = await reader.wait_for_type("NotificationSent", 2)
            sms_lines = file_lines(runtime)
    by_template = {e.payload.template: e.payload for e in sent}
    assert by_template["password_reset_code"].channel is DeliveryChannel.EMAIL
    assert by_template["password_reset_code"].masked_destination == person.masked_email
    assert by_template["login_locked"].channel is DeliveryChannel.SMS  # notices keep going by SMS (file)
    assert [line["template"] for line in sms_lines] == ["login_locked"]
    [(sender, recipients, raw)] = mailbox.received
    assert (sender, recipients) == ("billing@operator.example", [person.email])
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Kód na obnovenie hesla"
    body = mail.get_content()
    assert "kód na obnovenie hesla k účtu 100000000073: 483920" in body
    assert "Kód platí 15 min." in body


# --- the sealed password round trip ------------------------------------------------------------


@pytest.mark.parametrize("production", [False, True], ids=["development", "production"])
async def test_a_sealed_password_reaches_the_subscriber_and_nothing_else(start, bootstrap_servers, production):
    person = Person("100000000081", "ru", "+79160000081")
    secret = "Zq4-Nw8-Lp2x"
    issued = person.password(secret, purpose=PasswordPurpose.SMS_REISSUE)
    assert secret not in issued.to_bytes().decode()
    with capture_logs() as logs:
        async with start(production=production) as (runtime, _), outcomes(runtime, bootstrap_servers) as reader:
            await publish(runtime, bootstrap_servers, person.registered(), issued)
            [sent] = await reader.wait_for_type("NotificationSent", 1)
            await eventually(lambda: reader.records, what="the outcome's raw record")
            [line] = file_lines(runtime)
            stored = {table.name: await table_rows(runtime, table)
                      for table in (*store.metadata.sorted_tables, outbox)}
    if production:
        assert (line["body"], line["to"]) == (REDACTED, person.masked_phone)
    else:
        assert f"Новый пароль к счёту {person.account}: {secret}." in line["body"]
        assert line["to"] == person.phone
    assert (sent.payload.template, sent.payload.about_event_id) == ("password_sms_reissue", issued.event_id)
    raw_outcomes = b"".join(record.value for record in reader.records)
    for place, text in {"delivery log and tables": repr(stored), "log lines": repr(logs),
                        "NotificationSent": raw_outcomes.decode()}.items():
        assert secret not in text, place
        assert person.phone not in text, place  # the contact is kept sealed, shown masked
    [delivery] = stored["deliveries"]
    assert delivery["sealed_secret"] == issued.payload.sealed_secret
    assert "secret" not in delivery["variables"]
    assert stored["subscribers"][0]["masked_phone"] == person.masked_phone
