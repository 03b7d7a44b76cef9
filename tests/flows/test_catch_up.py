"""Days closed in order, over the real broker, the real ledger and PostgreSQL.

Two pairs of twins (a prepaid account, and a credit account with a limit) are charged for the
same plan over a month of 30 days. The first of each pair has its June closed one day at a
time, the ledger answering each day before the next is closed; the second has its September
closed in one catch-up of 30 days, as after a restart of the tariff service. Both months have
30 days, so every day costs the same in both. The catch-up must block each account on the same
day as the single-day closes did, and charge nothing after it.

A catch-up run on 1 October dates what it decides by the billing days it closes: the block at
the end of the day whose charges took the account into debt, the end of a voluntary block at the
end of its last day, and the ledger's September statement shows September's charges.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope, decode, is_current
from billing_contracts.money import Money
from billing_events.schema import outbox
from billing_events.sealing import seal
from billing_events.testing.plugin import eventually
from ledger import service as ledger
from ledger.commands import ChangePaymentType
from tariff import commands as tariff_commands
from tariff import service as tariff

PREPAID_DAYS, CREDIT_DAYS = "100000000115", "100000000123"  # June, one day at a time
PREPAID_CATCH_UP, CREDIT_CATCH_UP = "100000000131", "100000000149"  # September, all at once
IN_DEBT, ON_A_BREAK = "100000000164", "100000000172"  # September at once: a debt, a voluntary block
PAID = 20_000  # internet-100 in moscow is 55000 a month: 1834 or 1833 a day in a 30-day month
CREDIT_PAID, CREDIT_LIMIT = 5_000, 10_000
ONE_DAY = timedelta(days=1)
MOSCOW = ZoneInfo("Europe/Moscow")


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=MOSCOW).astimezone(UTC)


def _end_of(day: date) -> datetime:
    """The moment billing day ``day`` ends: midnight in Moscow, where billing days are counted."""
    return datetime.combine(day + ONE_DAY, time(0), tzinfo=MOSCOW)


async def _open(suite: Any, number: str, payment_type: PaymentType) -> int:
    """Registered in the ledger and the tariff, paid (on credit: with a limit); what was paid."""
    registered = SubscriberRegistered(
        account_number=number, contract_number=f"C-{number}", region="moscow",
        legal_status=LegalStatus.PERSON, masked_phone="+7 *** *** 45 67",
        sealed_contact=seal(suite.identity.settings.notifier_public_key, {"phone": "+79150000045"}),
    )
    await suite.producer.send(
        suite.ledger.topics(topics.IDENTITY),
        Envelope.new(registered, account=number, producer="identity", clock=suite.clock),
    )
    await eventually(lambda: suite.ledger_account_open(number), what=f"{number} opened")
    paid = PAID
    if payment_type is PaymentType.CREDIT:
        await ledger.change_payment_type(suite.ledger_context, ChangePaymentType(
            account_number=number, payment_type=PaymentType.CREDIT, credit_limit=Money(minor=CREDIT_LIMIT),
            requested_by="operator"))
        paid = CREDIT_PAID
    payment = PaymentReceived(account_number=number, channel="terminal", reference=f"T-{number}",
                              amount=Money(minor=paid), received_at=suite.clock.now())
    await suite.producer.send(
        suite.ledger.topics(topics.PAYMENTS),
        Envelope.new(payment, account=number, producer="terminal", clock=suite.clock),
    )
    await eventually(lambda: _agree(suite, number, paid), what=f"{number} paid")
    return paid


async def _agree(suite: Any, number: str, minor: int) -> bool:
    return await suite.ledger_balance(number) == minor == await suite.tariff_balance(number)


async def _published(suite: Any, number: str, event_type: str) -> list[Any]:
    """The payloads of every ``event_type`` the tariff service staged for the account."""
    async with suite.tariff.db.connect() as conn:
        values = (await conn.execute(
            select(outbox.c.value)
            .where(outbox.c.topic == suite.tariff.topics(topics.TARIFF))
            .order_by(outbox.c.id)
        )).scalars()
        envelopes = [decode(value) for value in values]
    return [e.payload for e in envelopes if e.event_type == event_type and is_current(e) and e.account == number]


async def _charges(suite: Any, number: str) -> list[Any]:
    """Every ChargeApplied the tariff service staged for the account."""
    return await _published(suite, number, "ChargeApplied")


async def _debt_blocks(suite: Any, number: str) -> int:
    return sum(1 for blocked in await _published(suite, number, "AccountBlocked") if blocked.reason == "debt")


async def _settled(suite: Any, number: str, paid: int) -> int:
    """The ledger has posted every charge the tariff issued, and the tariff knows the result."""
    expected = paid - sum(charge.amount.minor for charge in await _charges(suite, number))
    await eventually(lambda: _agree(suite, number, expected),
                     what=f"{number} settled at {expected}")
    return expected


async def _activate(suite: Any, numbers: tuple[str, ...], requested_on: date) -> None:
    suite.clock.set(_noon(requested_on))
    for number in numbers:
        await tariff.activate_plan(
            suite.tariff_context, tariff_commands.ActivatePlan(account_number=number, plan="internet-100")
        )


async def _close_through(suite: Any, last: date) -> tariff.CloseResult:
    suite.clock.set(_noon(last + ONE_DAY))
    return await tariff.close_days(suite.tariff_context, last)


async def test_a_catch_up_blocks_where_closing_day_by_day_would(suite: Any) -> None:
    paid = {number: await _open(suite, number, payment_type) for number, payment_type in [
        (PREPAID_DAYS, PaymentType.PREPAID), (CREDIT_DAYS, PaymentType.CREDIT),
        (PREPAID_CATCH_UP, PaymentType.PREPAID), (CREDIT_CATCH_UP, PaymentType.CREDIT),
    ]}
    day_by_day = (PREPAID_DAYS, CREDIT_DAYS)

    await _activate(suite, day_by_day, date(2026, 5, 31))
    for day in (date(2026, 6, 1) + timedelta(days=n) for n in range(30)):
        await _close_through(suite, day)
        for number in day_by_day:  # the ledger answers before the next day is closed
            await _settled(suite, number, paid[number])

    await _activate(suite, (PREPAID_CATCH_UP, CREDIT_CATCH_UP), date(2026, 8, 31))
    caught_up = await _close_through(suite, date(2026, 9, 30))  # September at once
    assert caught_up.until == date(2026, 9, 30)

    for one_by_one, at_once in [(PREPAID_DAYS, PREPAID_CATCH_UP), (CREDIT_DAYS, CREDIT_CATCH_UP)]:
        june = [c.billing_day.day for c in await _charges(suite, one_by_one)]
        september = [c.billing_day.day for c in await _charges(suite, at_once)]
        # Blocked within the month, on the first day that ended beyond the debt rule.
        assert june == list(range(1, len(june) + 1)) and 1 < len(june) < 30, june
        assert september == june
        balance = await _settled(suite, at_once, paid[at_once])
        assert balance == await _settled(suite, one_by_one, paid[one_by_one])
        for number in (one_by_one, at_once):
            assert (await tariff.get_subscription(suite.tariff_context, number)).debt_blocked
            assert await _debt_blocks(suite, number) == 1  # blocked once, never unblocked between
    # Prepaid: blocked below zero; credit: blocked below minus its limit, not before.
    prepaid_balance = await suite.ledger_balance(PREPAID_CATCH_UP)
    credit_balance = await suite.ledger_balance(CREDIT_CATCH_UP)
    assert -1834 <= prepaid_balance < 0
    assert -CREDIT_LIMIT - 1834 <= credit_balance < -CREDIT_LIMIT


async def test_a_catch_up_dates_its_blocks_unblocks_and_charges_by_their_billing_days(suite: Any) -> None:
    paid = await _open(suite, IN_DEBT, PaymentType.PREPAID)
    await _open(suite, ON_A_BREAK, PaymentType.PREPAID)
    await _activate(suite, (IN_DEBT, ON_A_BREAK), date(2026, 8, 31))
    suite.clock.set(_noon(date(2026, 9, 3)))  # five days from the 3rd: the 3rd to the 7th not charged
    await tariff.start_block(suite.tariff_context, tariff_commands.StartVoluntaryBlock(account_number=ON_A_BREAK, days=5))
    await _close_through(suite, date(2026, 9, 30))  # on 1 October, September at once

    charged_days = [charge.billing_day for charge in await _charges(suite, IN_DEBT)]
    last_charged = charged_days[-1]
    assert charged_days == [date(2026, 9, 1) + timedelta(days=n) for n in range(len(charged_days))]
    [blocked] = await _published(suite, IN_DEBT, "AccountBlocked")
    assert blocked.blocked_at == _end_of(last_charged)  # not the catch-up's 1 October
    [unblocked] = await _published(suite, ON_A_BREAK, "AccountUnblocked")
    [ended] = await _published(suite, ON_A_BREAK, "VoluntaryBlockEnded")
    assert unblocked.unblocked_at == ended.ended_at == _end_of(date(2026, 9, 7))
    [voluntary] = [b for b in await _published(suite, ON_A_BREAK, "AccountBlocked") if b.reason == "voluntary"]
    assert voluntary.blocked_at == _noon(date(2026, 9, 3))  # a request: dated when it was made

    balance = await _settled(suite, IN_DEBT, paid)  # the ledger posted them on 1 October
    september = await ledger.statement(suite.ledger_context, IN_DEBT, _end_of(date(2026, 8, 31)),
                                       _end_of(date(2026, 9, 30)))
    october = await ledger.statement(suite.ledger_context, IN_DEBT, _end_of(date(2026, 9, 30)),
                                     _end_of(date(2026, 10, 31)))
    assert [line.charge.billing_day for line in september.lines if line.charge] == charged_days
    assert [line for line in october.lines if line.charge] == []
    assert september.closing_balance == october.opening_balance == balance
