"""An upgrade with data, on PostgreSQL and on SQLite: the four services fill their databases
(accounts, payments, daily charges, a voluntary block, a debt block, notifications), the
databases are taken back to the baseline revision, and `billing migrate` upgrades them to head.
Every balance, subscription and delivery is the same afterwards, and `billing verify` passes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from billing_contracts import topics
from billing_events import migrations
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.db import Database
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.sealing import seal
from billing_events.testing.plugin import eventually
from ledger import store as ledger_store
from notifier import store as notifier_store
from sqlalchemy import select
from tariff import commands as tariff_commands
from tariff import service as tariff
from tariff import store as tariff_store

MOSCOW = ZoneInfo("Europe/Moscow")
SAVER, DEBTOR = "100000000115", "100000000123"


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=MOSCOW).astimezone(UTC)


async def _open_and_pay(suite: Any, number: str, minor: int) -> None:
    registered = SubscriberRegistered(
        account_number=number, contract_number=f"C-{number}", region="moscow",
        legal_status=LegalStatus.PERSON, masked_phone="+7 *** *** 45 67",
        sealed_contact=seal(suite.identity.settings.notifier_public_key, {"phone": "+79150000045"}),
    )
    await suite.producer.send(suite.ledger.topics(topics.IDENTITY),
                              Envelope.new(registered, account=number, producer="identity", clock=suite.clock))
    # registrations and payments travel on different topics: a payment taken first would stay parked
    await eventually(lambda: suite.ledger_account_open(number), what=f"{number} opened", timeout=60)
    payment = PaymentReceived(account_number=number, channel="terminal", reference=f"T-{number}",
                              amount=Money(minor=minor), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))
    await eventually(lambda: _agree(suite, number), what=f"{number} paid", timeout=60)  # a busy machine joins slowly


async def _agree(suite: Any, number: str) -> bool:
    """The ledger has an opinion of the account and the tariff service heard the same."""
    balance = await suite.ledger_balance(number)
    return balance is not None and balance != 0 and balance == await suite.tariff_balance(number)


async def _rows(runtime: Any, table: Any) -> list[tuple[Any, ...]]:
    async with runtime.db.connect() as conn:
        return [tuple(row) for row in await conn.execute(select(table).order_by(*table.primary_key.columns))]


async def _state(suite: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that matters, an account's version aside (:func:`_versions`)."""
    return {
        "accounts": [row[:-1] for row in await _rows(suite.ledger, ledger_store.accounts)],
        "journal": await _rows(suite.ledger, ledger_store.journal),
        "subscriptions": await _rows(suite.tariff, tariff_store.subscriptions),
        "deliveries": await _rows(suite.notifier, notifier_store.deliveries),
    }


async def _versions(suite: Any) -> dict[str, int]:
    async with suite.ledger.db.connect() as conn:
        return dict((await conn.execute(select(ledger_store.accounts.c.number, ledger_store.accounts.c.version))).all())


async def test_an_upgrade_from_the_baseline_keeps_every_balance_subscription_and_delivery(
    suite_on_either_database: Any,
) -> None:
    suite = suite_on_either_database
    await _open_and_pay(suite, SAVER, 50_000)
    await _open_and_pay(suite, DEBTOR, 1_000)
    suite.clock.set(_noon(date(2026, 3, 1)))
    for number in (SAVER, DEBTOR):
        await tariff.activate_plan(suite.tariff_context, tariff_commands.ActivatePlan(account_number=number, plan="internet-100"))
    suite.clock.set(_noon(date(2026, 3, 4)))
    await tariff.close_days(suite.tariff_context, date(2026, 3, 3))  # three days charged; the debtor blocked
    await tariff.start_block(suite.tariff_context, tariff_commands.StartVoluntaryBlock(account_number=SAVER, days=5))
    await eventually(lambda: _debt_blocked(suite, DEBTOR), what="the debtor blocked")
    await eventually(lambda: _settled(suite), what="every charge posted")
    await eventually(lambda: _delivered(suite), what="the notifications sent")
    runtimes = (suite.identity, suite.ledger, suite.tariff, suite.notifier)
    for runtime in runtimes:
        await runtime.stop()
        runtime.db = Database(runtime.db.url)  # the stopped runtime's pool is closed: read through a new one
    before, versions_before = await _state(suite), await _versions(suite)
    assert before["accounts"] and before["journal"] and before["subscriptions"] and before["deliveries"]

    urls = {runtime.name: runtime.db.url for runtime in runtimes}
    for name, url in urls.items():
        db = Database(url)
        try:
            assert (await migrations.downgrade(db, name, migrations.BASELINE)).after == migrations.BASELINE
        finally:
            await db.dispose()

    code, out, err = await suite.billing("migrate", env={f"BILLING_{name.upper()}_DATABASE_URL": url
                                                          for name, url in urls.items()})
    assert code == 0, err
    for name in urls:
        assert f"{name}: {migrations.BASELINE} -> {migrations.head(name)}" in out
    try:
        assert await _state(suite) == before
        # The downgrade dropped the count of each account's changes: the upgrade starts it past any
        # version the account announced, or every view of it would ignore what it says next.
        versions_after = await _versions(suite)
        assert all(versions_after[number] >= version > 0 for number, version in versions_before.items()), (
            versions_before, versions_after)
        code, out, err = await suite.billing("verify", "--no-seals-from-broker")
        assert code == 0, out + err
    finally:
        for runtime in runtimes:
            await runtime.db.dispose()


async def _debt_blocked(suite: Any, number: str) -> bool:
    return (await tariff.get_subscription(suite.tariff_context, number)).debt_blocked


async def _settled(suite: Any) -> bool:
    return all([await _agree(suite, number) for number in (SAVER, DEBTOR)])


async def _delivered(suite: Any) -> bool:
    async with suite.notifier.db.connect() as conn:
        statuses = list((await conn.execute(select(notifier_store.deliveries.c.status))).scalars())
    return len(statuses) >= 4 and all(status == "sent" for status in statuses)
