"""Closing an account with money left, over the real broker and PostgreSQL.

Support closes an account through the tariff's door (a service token): the days not charged
yet are charged through the closing day, nothing after; the ledger then pays the money left back
(a refund: the operator's refunds account, a payout) or moves it to another account, as the
operator chose, and closes the account (its account_closed fact). The books still sum to zero,
and identity never issues the closed number again.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope, is_current
from billing_contracts.money import Money
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import eventually
from identity import service as identity
from ledger import service as ledger
from ledger import store as ledger_store
from ledger.domain import REFUNDS, FactKind
from tariff import commands as tariff_commands
from tariff import service as tariff
from tariff import store as tariff_store
from tariff.domain import daily_share

PAID = 30_000
ONE_DAY = timedelta(days=1)


async def _registered(suite: Any, form: dict[str, Any], passport: str, phone: str) -> str:
    registered = await identity.register(suite.identity_context, {**form, "passport_number": passport,
                                                                  "mobile_phone": phone})
    number = registered.account_number
    await eventually(lambda: suite.ledger_account_open(number), what=f"{number} opened in the ledger")

    async def known_to_the_tariff() -> bool:
        return await suite.tariff_balance(number) is not None

    await eventually(known_to_the_tariff, what=f"{number} known to the tariff")
    return number


async def _paid(suite: Any, number: str, minor: int) -> None:
    payment = PaymentReceived(account_number=number, channel="terminal", reference=f"T-{number}",
                              amount=Money(minor=minor), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))

    async def agree() -> bool:
        return await suite.ledger_balance(number) == minor == await suite.tariff_balance(number)

    await eventually(agree, what=f"{number} paid")


def _charged_through(first: date, last: date) -> int:
    """internet-100 in Moscow (550.00 a month), by hand: each day's share of its month."""
    days = [first + ONE_DAY * n for n in range((last - first).days + 1)]
    return sum(daily_share(Money(minor=55_000), day).minor for day in days)


async def _ledger_state(suite: Any, number: str) -> Any:
    async with suite.ledger.db.connect() as conn:
        return await ledger_store.account(conn, number)


async def _refunds_balance(suite: Any) -> int:
    async with suite.ledger.db.transaction() as conn:
        balances = await ledger_store.lock_operator_balances(conn)
    return balances.get((REFUNDS, "RUB"), 0)


async def test_closing_accounts_with_money_left_refunds_or_transfers_it_and_charges_nothing_after(
    suite: Any, form: dict[str, Any]
) -> None:
    refunded = await _registered(suite, form, "100001", "+7 915 000-00-01")
    transferring = await _registered(suite, form, "100002", "+7 915 000-00-02")
    heir = await _registered(suite, form, "100003", "+7 915 000-00-03")
    for number in (refunded, transferring):
        await _paid(suite, number, PAID)
        await tariff.activate_plan(suite.tariff_context, tariff_commands.ActivatePlan(account_number=number, plan="internet-100"))
    first_day = suite.tariff_context.billing_day() + ONE_DAY

    # Five days later the billing clock has charged four of them; the fifth is the closing day.
    suite.clock.advance(timedelta(days=5))
    await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - ONE_DAY)
    closing_day = suite.tariff_context.billing_day()
    left = PAID - _charged_through(first_day, closing_day)
    assert 0 < left < PAID

    token = suite.service_token()
    async with httpx.AsyncClient(base_url=suite.urls()["tariff"] + "/tariff",
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        by_subscriber = await http.post(
            f"/accounts/{refunded}/closure", json={"settlement": "refund", "reason": "moving abroad"},
            headers={"Authorization": f"Bearer {suite.identity.tokens.issue('subscriber', refunded)[0]}"})
        assert by_subscriber.status_code == 403  # support's door, not the cabinet's
        to_itself = await http.post(f"/accounts/{transferring}/closure",
                                    json={"settlement": "transfer", "transfer_to": transferring, "reason": "x"})
        assert (to_itself.status_code, to_itself.json()["code"]) == (422, "closure_target_refused")

        closed = await http.post(f"/accounts/{refunded}/closure",
                                 json={"settlement": "refund", "reason": "moving abroad"})
        assert closed.status_code == 200, closed.text
        assert closed.json()["events"] == ["ChargeApplied", "SubscriptionClosed"]  # the closing day's fee
        moved = await http.post(f"/accounts/{transferring}/closure",
                                json={"settlement": "transfer", "transfer_to": heir, "reason": "merged into family"})
        assert moved.status_code == 200, moved.text
        again = await http.post(f"/accounts/{refunded}/closure", json={"settlement": "refund", "reason": "twice"})
        assert (again.status_code, again.json()["code"]) == (409, "account_closed")
        plan_after = await http.put(f"/accounts/{refunded}/plan", json={"plan": "internet-300"})
        assert (plan_after.status_code, plan_after.json()["code"]) == (409, "account_closed")

    async def closed_in_the_ledger() -> bool:
        states = [await _ledger_state(suite, number) for number in (refunded, transferring)]
        return all(state is not None and not state.is_open for state in states)

    await eventually(closed_in_the_ledger, what="both accounts closed in the ledger")
    assert (await _ledger_state(suite, refunded)).main == 0
    assert (await _ledger_state(suite, transferring)).main == 0
    assert await suite.ledger_balance(heir) == left
    assert await _refunds_balance(suite) == left

    # No charge after the closing day: the billing clock runs on, the closed accounts are not visited.
    suite.clock.advance(timedelta(days=10))
    later = await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - ONE_DAY)
    assert later.charges == 0
    for number in (refunded, transferring):
        async with suite.tariff.db.connect() as conn:
            days = await tariff_store.closed_days_of(conn, number)
            found = await tariff_store.load_with_cursor(conn, number)
        assert days[-1] == closing_day and found is not None and found[1] is None
        assert found[0].status.value == "closed"

    async with TopicReader(suite.bootstrap, suite.ledger.topics(topics.LEDGER), suite.ledger.topics(topics.TARIFF)) as reader:
        envelopes = await reader.wait_for(
            lambda envs: sum(e.event_type == "AccountClosed" for e in envs) >= 2, what="AccountClosed twice")
    current = [e for e in envelopes if is_current(e)]
    charges = [e.payload for e in current if e.event_type == "ChargeApplied" and e.account == refunded]
    assert max(charge.billing_day for charge in charges) == closing_day
    assert sum(charge.amount.minor for charge in charges) == PAID - left
    (refund,) = [e.payload for e in current if e.event_type == "AccountRefunded"]
    assert (refund.account_number, refund.amount.minor) == (refunded, left)
    (transfer,) = [e.payload for e in current if e.event_type == "FundsTransferred" and e.account == transferring]
    assert (transfer.to_account, transfer.amount.minor) == (heir, left)
    closings = {e.payload.account_number: e.payload for e in current if e.event_type == "AccountClosed"}
    assert closings[refunded].settlement.value == "refund" and closings[refunded].settled.minor == left
    assert closings[transferring].transfer_to == heir and closings[transferring].requested_by == "operations"

    # The books: every posting sums to zero, the journal (with both account_closed facts) verifies.
    report = await ledger.verify(suite.ledger_context)
    assert report.ok, report.findings
    assert report.totals == {"RUB": 0}
    opened = {s.number: s.is_open for s in report.settings.values()}
    assert {number: opened[number] for number in (refunded, transferring, heir)} == {
        refunded: False, transferring: False, heir: True}
    async with suite.ledger.db.connect() as conn:
        kinds = (await conn.execute(select(ledger_store.journal.c.kind).where(
            ledger_store.journal.c.kind == FactKind.ACCOUNT_CLOSED.value))).scalars().all()
    assert len(kinds) == 2

    # A payment for the closed number waits in suspense; the number is never issued again.
    payment = PaymentReceived(account_number=refunded, channel="terminal", reference="T-after",
                              amount=Money(minor=1_000), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=refunded, producer="terminal", clock=suite.clock))
    newcomer = await _registered(suite, form, "100004", "+7 915 000-00-04")
    assert newcomer not in {refunded, transferring, heir} and newcomer > heir
    assert (await _ledger_state(suite, refunded)).main == 0
