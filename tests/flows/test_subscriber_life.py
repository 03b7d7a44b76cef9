"""A subscriber's life through the whole suite, over the real broker and PostgreSQL.

Registered (identity) -> account opened (ledger), subscription (tariff), contact (notifier) ->
initial password delivered sealed through the broker -> pays -> charged every day -> goes into
debt -> blocked -> pays -> unblocked; then the account's history, merged from every topic,
shows all of it in order with the running balance; and no personal data or secret appears on
any topic or in any log line.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from billing_cli.history import read_account, timeline
from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.testing.clock import at_dates_that_matter
from billing_events.testing.plugin import eventually
from identity import service as identity
from tariff import commands as tariff_commands
from tariff import service as tariff

PASSWORD = re.compile(r"\b[A-Za-z2-9]{12}\b")


async def _pay(suite: Any, number: str, minor: int, reference: str) -> None:
    payment = PaymentReceived(account_number=number, channel="terminal", reference=reference,
                              amount=Money(minor=minor), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))


async def _settled(suite: Any, number: str, expected: int) -> None:
    """The ledger has posted ``expected``, and the tariff knows that balance."""
    async def agree() -> bool:
        return await suite.ledger_balance(number) == expected == await suite.tariff_balance(number)
    await eventually(agree, what=f"ledger and tariff to agree on {expected}")


@at_dates_that_matter()
async def test_a_subscribers_life(suite: Any, form: dict[str, Any], capsys: Any) -> None:
    registered = await identity.register(suite.identity_context, form)
    number = registered.account_number
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account opened")
    await eventually(lambda: _tariff_knows(suite, number), what="tariff subscription")

    # The initial password travels sealed through the broker; only the notifier opens it.
    initial = await eventually(lambda: [m for m in suite.messages() if "password" in m["template"]],
                               what="initial password delivered")
    password = PASSWORD.findall(initial[0]["body"])[0]
    logged_in = await identity.login(suite.identity_context, {"login": number, "password": password})
    assert logged_in.account_number == number

    await _pay(suite, number, 30_000, "T-1")
    balance = 30_000
    await _settled(suite, number, balance)
    await tariff.activate_plan(suite.tariff_context, tariff_commands.ActivatePlan(account_number=number, plan="internet-100"))

    blocked_on, last_fee = None, 0
    for _ in range(25):  # day by day, as the billing clock does
        suite.clock.advance(timedelta(days=1))
        closed = await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
        balance -= closed.charged_minor
        last_fee = closed.charged_minor
        await _settled(suite, number, balance)
        subscription = await tariff.get_subscription(suite.tariff_context, number)
        if subscription.debt_blocked:
            blocked_on = suite.clock.now()
            break
    assert blocked_on is not None, "a prepaid account below zero must be blocked"
    in_debt = balance
    assert 0 < last_fee and -last_fee <= in_debt < 0  # blocked on the first day that ended below zero
    for _ in range(3):  # no fees while blocked
        suite.clock.advance(timedelta(days=1))
        closed = await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
        assert closed.charged_minor == 0
    await _settled(suite, number, in_debt)

    await _pay(suite, number, 50_000, "T-2")
    await _settled(suite, number, in_debt + 50_000)
    await eventually(lambda: _unblocked(suite, number), what="unblocked after the payment")
    await eventually(lambda: {"account_blocked_debt", "account_unblocked", "payment_credited"}
                     <= {m["template"] for m in suite.messages()}, what="the subscriber told")

    # The account's whole life, merged from every topic, in order, with the running balance.
    lines = timeline(await read_account(suite.urls(), suite.service_token(), number))
    kinds = [line.envelope.event_type for line in lines]
    for earlier, later in [("SubscriberRegistered", "PaymentReceived"), ("PaymentReceived", "SubscriptionActivated"),
                           ("SubscriptionActivated", "ChargeApplied"), ("ChargeApplied", "AccountBlocked"),
                           ("AccountBlocked", "AccountUnblocked")]:
        assert kinds.index(earlier) < kinds.index(later), (earlier, later, kinds)
    balances = [line.balance for line in lines if line.balance is not None]
    deltas = [line.envelope.payload.delta_main.minor for line in lines if line.balance is not None]
    running = 0
    for balance, delta in zip(balances, deltas, strict=True):
        running += delta
        assert balance == running
    assert balances[-1] == await suite.ledger_balance(number) == in_debt + 50_000
    assert "NotificationSent" in kinds and "PasswordIssued" in kinds

    # Personal data and secrets stay home: not on any topic, not in any log line.
    secrets = [form["passport_number"], form["passport_series"] + " " + form["passport_number"], password,
               "2043371", "204-33-71", "anna.petrova"]
    everything = await _all_topics(suite)
    logs = capsys.readouterr()
    for secret in secrets:
        assert secret.encode() not in everything, f"{secret!r} found on a topic"
        assert secret not in logs.out and secret not in logs.err, f"{secret!r} found in the logs"


async def _tariff_knows(suite: Any, number: str) -> bool:
    return await suite.tariff_balance(number) is not None


async def _unblocked(suite: Any, number: str) -> bool:
    return not (await tariff.get_subscription(suite.tariff_context, number)).debt_blocked


async def _all_topics(suite: Any) -> bytes:
    consumer = AIOKafkaConsumer(bootstrap_servers=suite.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        prefix = suite.ledger.settings.kafka.topic_prefix
        mine = [t for t in await consumer.topics() if t.startswith(prefix)]
        consumer.subscribe(mine)
        found = bytearray()
        while True:
            batches = await consumer.getmany(timeout_ms=1500)
            if not batches:
                return bytes(found)
            for records in batches.values():
                for record in records:
                    found += (record.key or b"") + (record.value or b"")
    finally:
        await consumer.stop()
