"""The notifier's tables and queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_events.db import Database
from billing_contracts.money import Money
from billing_events.schema import plumbing_metadata
from notifier import store
from notifier.domain import LowBalanceAlarm
from notifier.store import DeliveryStatus, NewDelivery
from sqlalchemy import select

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture
async def db(postgres_databases, database_url: str):  # the server first: database_url creates on it
    database = Database(database_url)
    await database.create_schema(plumbing_metadata, store.metadata)
    yield database
    await database.dispose()


def delivery(account: str = "100000000008", template: str = "payment_credited", **overrides) -> NewDelivery:
    values = dict(
        account_number=account, about_event_id=uuid4(), about_event_type="BalanceChanged",
        correlation_id=uuid4(), template=template, language="sk", channel=DeliveryChannel.SMS,
        masked_destination="+421 *** *** 00 08",
        variables={"account": account, "amount": Money(minor=1_234_50), "day": date(2026, 12, 1),
                   "until": T0, "early": True, "days": 3},
    )
    values.update(overrides)
    return NewDelivery(**values)


async def test_a_delivery_is_recorded_once_and_claimed_by_one_round_at_a_time(db):
    first = delivery()
    async with db.transaction() as conn:
        assert await store.add_deliveries(conn, [first], T0) == 1
        assert await store.add_deliveries(conn, [first], T0) == 0  # same event, template, channel
        assert await store.add_deliveries(conn, [delivery(about_event_id=first.about_event_id,
                                                          channel=DeliveryChannel.EMAIL)], T0) == 1
    async with db.transaction() as conn:
        claimed = await store.claim_due(conn, now=T0, limit=10, lease=LEASE)
    assert [(row.attempts, row.status) for row in claimed] == [(1, "sending"), (1, "sending")]
    assert store.decode_variables(claimed[0].variables) == dict(first.variables)
    async with db.transaction() as conn:
        assert await store.claim_due(conn, now=T0 + LEASE - timedelta(seconds=1), limit=10, lease=LEASE) == []
        sms, email = sorted(claimed, key=lambda row: row.channel, reverse=True)
        assert await store.record_attempt(conn, sms.id, 1, outcome="sent", reason=None, now=T0,
                                          status=DeliveryStatus.SENT)
    # The e-mail's sender died: after the lease it is due again, as a second attempt.
    async with db.transaction() as conn:
        [again] = await store.claim_due(conn, now=T0 + LEASE, limit=10, lease=LEASE)
    assert (again.id, again.attempts, again.status_before) == (email.id, 2, "sending")
    async with db.transaction() as conn:
        # The first sender, late, cannot overwrite the second one's try.
        assert not await store.record_attempt(conn, email.id, 1, outcome="sent", reason=None, now=T0,
                                              status=DeliveryStatus.SENT)
        assert await store.record_attempt(conn, email.id, 2, outcome="retry", reason="SMTP 451", now=T0,
                                          status=DeliveryStatus.PENDING, next_attempt_at=T0 + LEASE * 3)
    async with db.connect() as conn:
        log = await store.delivery_log(conn, "100000000008")
        pending = await store.delivery_log(conn, "100000000008", status=DeliveryStatus.PENDING)
        tries = await store.attempts_of(conn, [row.id for row in log])
        due = await store.next_due_at(conn)
    assert [row.id for row in log] == [email.id, sms.id]  # newest first
    assert [(row.status, row.attempts, row.last_error) for row in pending] == [("pending", 2, "SMTP 451")]
    assert [(t.attempt, t.outcome) for t in tries[email.id]] == [(2, "retry")]
    assert due.replace(tzinfo=due.tzinfo or UTC) == T0 + LEASE * 3


async def test_profile_alarm_and_parked_events(db, seal, subscriber):

    async with db.transaction() as conn:
        await store.park(conn, event_id=(second := uuid4()), account_number=subscriber.account,
                         event_type="LoginLocked", envelope=b"two", now=T0 + timedelta(seconds=1))
        await store.park(conn, event_id=uuid4(), account_number=subscriber.account,
                         event_type="BalanceChanged", envelope=b"one", now=T0)
        await store.park(conn, event_id=second, account_number=subscriber.account,
                         event_type="LoginLocked", envelope=b"two", now=T0)  # redelivered: kept once
        await store.save_alarm(conn, subscriber.account, LowBalanceAlarm(armed=False), T0)
        await store.save_alarm(conn, subscriber.account, LowBalanceAlarm(armed=True), T0)
        for language in ("ru", "sk"):
            await store.save_subscriber(
                conn, account_number=subscriber.account, language=language, notify_by=DeliveryChannel.SMS,
                masked_phone=subscriber.masked_phone, masked_email=subscriber.masked_email,
                sealed_contact=seal({"phone": subscriber.phone, "email": subscriber.email}),
                event_id=uuid4(), now=T0,
            )
    async with db.transaction() as conn:
        assert [event.envelope for event in await store.take_parked(conn, subscriber.account)] == [b"one", b"two"]
        assert await store.take_parked(conn, subscriber.account) == []
        assert await store.load_alarm(conn, subscriber.account) == LowBalanceAlarm(armed=True)
        assert await store.load_alarm(conn, "100000000099") is None
        rows = (await conn.execute(select(store.subscribers))).all()
    assert len(rows) == 1 and rows[0].language == "sk"
    assert subscriber.phone not in repr(rows) and subscriber.email not in repr(rows)


async def test_only_what_was_parked_before_the_first_closure_stays_tellable(db, subscriber):
    async with db.transaction() as conn:
        async def park(envelope: bytes, at: datetime) -> None:
            await store.park(conn, event_id=uuid4(), account_number=subscriber.account,
                             event_type="BalanceChanged", envelope=envelope, now=at)

        await park(b"before", T0)
        await store.mark_closed(conn, subscriber.account, closed_by="AccountClosed", at=T0)
        await park(b"between", T0 + timedelta(seconds=1))
        await store.mark_closed(conn, subscriber.account, closed_by="SubscriptionClosed", at=T0)  # the second word
        await park(b"after", T0 + timedelta(seconds=2))
        taken = await store.take_parked(conn, subscriber.account)
    assert [(event.envelope, event.before_closure) for event in taken] == [
        (b"before", True), (b"between", False), (b"after", False)]


async def test_profile_opens_the_sealed_contact(db, seal, subscriber, opener):
    async with db.transaction() as conn:
        await store.save_subscriber(
            conn, account_number=subscriber.account, language="en", notify_by=DeliveryChannel.SMS,
            masked_phone=subscriber.masked_phone, masked_email=subscriber.masked_email,
            sealed_contact=seal({"phone": subscriber.phone, "email": subscriber.email}),
            event_id=uuid4(), now=T0,
        )
        profile = await store.load_profile(conn, subscriber.account, opener)
        assert await store.load_profile(conn, "100000000099", opener) is None
    assert profile == subscriber.profile("en")
