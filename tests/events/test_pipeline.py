"""The shared plumbing over the real broker and database: outbox, inbox, dead letters.

A tiny service (it counts payments per account) stands in for the real ones, so these tests
prove the pipeline itself: what every service inherits.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from billing_contracts import topics
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.consumer import EventRouter, Rejected
from billing_events.db import upsert
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.runtime import ServiceRuntime
from billing_events.schema import dead_letters, inbox, outbox
from billing_events.settings import ServiceSettings
from billing_events.testing.clock import RunningClock
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.plugin import RenderedLogs, eventually, token_minter
from billing_events.unit_of_work import UnitOfWork

clock = RunningClock()
metadata = MetaData()
totals = Table("totals", metadata, Column("account", String(12), primary_key=True), Column("minor", Integer))


class CounterSettings(ServiceSettings):
    service_name = "counter"


async def on_payment(uow: UnitOfWork, envelope: Envelope[PaymentReceived]) -> list[Envelope[Any]]:
    conn = uow.conn
    payment = envelope.payload
    if payment.reference.startswith("poison"):
        raise Rejected("poisoned reference")
    current = await conn.scalar(select(totals.c.minor).where(totals.c.account == payment.account_number)) or 0
    new_total = current + payment.amount.minor
    await conn.execute(upsert(conn, totals, ["account"], ["minor"]), {"account": payment.account_number, "minor": new_total})
    changed = BalanceChanged(
        account_number=payment.account_number, transaction_id=envelope.event_id,
        main=Money(minor=new_total), bonus=Money.zero(), delta_main=payment.amount,
        delta_bonus=Money.zero(), cause_event_id=envelope.event_id, cause_type=envelope.event_type,
        payment_type=PaymentType.PREPAID, credit_limit=Money.zero(),
    )
    return [Envelope.new(changed, account=payment.account_number, producer="counter", clock=clock, cause=envelope)]


def payment(account: str, reference: str, minor: int) -> Envelope[PaymentReceived]:
    body = PaymentReceived(account_number=account, channel="terminal", reference=reference,
                           amount=Money(minor=minor), received_at=clock.now())
    return Envelope.new(body, account=account, producer="test", clock=clock)


@pytest.fixture
async def counter(make_settings: Any) -> Any:
    settings = await make_settings(CounterSettings)
    runtime = ServiceRuntime(
        settings=settings, clock=clock, metadata=metadata,
        handler=EventRouter({PaymentReceived: on_payment}), consumes=[topics.PAYMENTS],
    )
    async with runtime:
        yield runtime


async def total(runtime: ServiceRuntime, account: str) -> int | None:
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(totals.c.minor).where(totals.c.account == account))


async def count(runtime: ServiceRuntime, table: Table) -> int:
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table)) or 0


async def test_event_flows_through_inbox_and_outbox(counter: ServiceRuntime, bootstrap_servers: str) -> None:
    first, second = payment("100000000008", "a", 1000), payment("100000000008", "b", 250)
    async with RawProducer(bootstrap_servers) as producer, TopicReader(bootstrap_servers, counter.topics(topics.LEDGER)) as reader:
        await producer.send(counter.topics(topics.PAYMENTS), first)
        await producer.send(counter.topics(topics.PAYMENTS), second)
        out = await reader.wait_for_type("BalanceChanged", 2)
    assert [e.payload.main.minor for e in out] == [1000, 1250]
    assert out[0].causation_id == first.event_id and out[0].correlation_id == first.correlation_id
    assert await eventually(lambda: count_published(counter), what="outbox marked published") == 2


async def count_published(runtime: ServiceRuntime) -> int:
    """Events the relay published (the payments the service took are kept beside them, already
    published by their channel: see test_the_payments_taken_are_kept_for_the_history)."""
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.published_at.is_not(None), outbox.c.topic != runtime.topics(topics.PAYMENTS))) or 0


async def test_redelivered_event_changes_nothing(counter: ServiceRuntime, bootstrap_servers: str) -> None:
    event = payment("100000000016", "dup", 700)
    async with RawProducer(bootstrap_servers) as producer, TopicReader(bootstrap_servers, counter.topics(topics.LEDGER)) as reader:
        for _ in range(3):
            await producer.send(counter.topics(topics.PAYMENTS), event)
        await producer.send(counter.topics(topics.PAYMENTS), payment("100000000016", "later", 1))
        await reader.wait_for_type("BalanceChanged", 2)
        assert await total(counter, "100000000016") == 701
        assert len([e for e in reader.envelopes if e.event_type == "BalanceChanged"]) == 2
    assert await count(counter, inbox) == 2


async def test_the_payments_taken_are_kept_for_the_history(counter: ServiceRuntime, bootstrap_servers: str) -> None:
    """A service keeps what it took from an ingress topic beside what it published, and its API
    gives one account's events a page at a time, oldest first, until a page says it was the last."""
    account, other = "100000000032", "100000000040"
    first, poisoned, second = payment(account, "k-1", 300), payment(account, "poison-1", 5), payment(account, "k-2", 200)
    async with RawProducer(bootstrap_servers) as producer, TopicReader(bootstrap_servers, counter.topics(topics.LEDGER)) as reader:
        for event in (first, first, poisoned, second, payment(other, "k-3", 1)):
            await producer.send(counter.topics(topics.PAYMENTS), event)
        await reader.wait_for_type("BalanceChanged", 3)
    await eventually(lambda: count_published(counter), what="outbox marked published")
    async with counter.db.connect() as conn:
        kept = (await conn.execute(select(outbox.c.value).where(
            outbox.c.topic == counter.topics(topics.PAYMENTS), outbox.c.key == account).order_by(outbox.c.id))).scalars().all()
    assert kept == [first.to_bytes(), second.to_bytes()]  # once each, as sent; the refused one is a dead letter

    token = token_minter(counter.clock).issue("service", "operations", audience=["counter"],
                                              scopes=["counter:history"])[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=counter.http_app), base_url="http://counter",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        pages, after = [], 0
        while after is not None:
            page = (await client.get(f"/counter/accounts/{account}/events", params={"after_id": after, "limit": 1})).json()
            pages.append(page["events"])
            after = page["next_after_id"]
        refused = await client.get(f"/counter/accounts/{account}/events",
                                   headers={"Authorization": f"Bearer {token_minter(counter.clock).issue('subscriber', account)[0]}"})
    events = [event for page in pages for event in page]
    assert [(e["event_type"], e["payload"].get("reference")) for e in events] == [
        ("PaymentReceived", "k-1"), ("BalanceChanged", None), ("PaymentReceived", "k-2"), ("BalanceChanged", None)]
    assert len(pages) == 5 and pages[-1] == []  # the fifth page is empty and says it was the last
    assert refused.status_code == 403  # operations only


async def test_bad_messages_are_dead_lettered_and_the_consumer_goes_on(counter: ServiceRuntime, bootstrap_servers: str) -> None:
    account = "100000000024"
    payments_topic = counter.topics(topics.PAYMENTS)
    good = payment(account, "good", 500)
    unknown_type = good.to_bytes().replace(b'"PaymentReceived"', b'"PaymentTeleported"')
    negative = good.to_bytes().replace(b'"minor":500', b'"minor":-500').replace(str(good.event_id).encode(), b"01900000-0000-7000-8000-000000000001")
    async with RawProducer(bootstrap_servers) as producer, TopicReader(bootstrap_servers, counter.topics("billing.counter.dlq")) as dlq:
        await producer.send_raw(payments_topic, b"{not json", key=account.encode())
        await producer.send_raw(payments_topic, unknown_type, key=account.encode())
        await producer.send_raw(payments_topic, negative, key=account.encode())
        await producer.send(payments_topic, payment(account, "poison-1", 100))
        await producer.send(payments_topic, good)
        await eventually(lambda: total(counter, account), what="the good payment")
        await eventually(lambda: len(dlq.records) >= 4, what="four dead letters on the topic")
    assert await total(counter, account) == 500
    async with counter.db.connect() as conn:
        reasons = (await conn.execute(select(dead_letters.c.reason).order_by(dead_letters.c.id))).scalars().all()
    assert len(reasons) == 4
    assert "not JSON" in reasons[0]
    assert "unknown event type 'PaymentTeleported'" in reasons[1]
    assert "greater than zero" in reasons[2]
    assert reasons[3] == "poisoned reference"


async def test_a_dead_letter_line_carries_its_reason_code(
    counter: ServiceRuntime, bootstrap_servers: str, rendered_logs: RenderedLogs
) -> None:
    async with RawProducer(bootstrap_servers) as producer:
        await producer.send(counter.topics(topics.PAYMENTS), payment("100000000024", "poison-7", 100))
    [line] = await eventually(
        lambda: [line for line in rendered_logs.lines() if line["event"] == "dead-lettered"],
        what="the dead-letter line")
    assert (line["code"], line["reason"], line["event_type"]) == ("rejected", "poisoned reference", "PaymentReceived")


async def test_an_event_of_another_topic_is_dead_lettered_wrong_topic_and_the_rest_taken(
    counter: ServiceRuntime, bootstrap_servers: str
) -> None:
    """A BalanceChanged on the payments topic is not the counter's business, but not anyone's
    either: the catalog lists it for the ledger's topic only (tests/events/test_ingress.py shows
    that a type listed for the topic which a consumer does not need is skipped)."""
    account = "100000000032"
    changed = BalanceChanged(account_number=account, transaction_id=payment(account, "x", 1).event_id,
                             main=Money.zero(), bonus=Money.zero(), delta_main=Money.zero(), delta_bonus=Money.zero(),
                             cause_event_id=None, cause_type="test", payment_type=PaymentType.PREPAID, credit_limit=Money.zero())
    async with RawProducer(bootstrap_servers) as producer:
        await producer.send(counter.topics(topics.PAYMENTS), Envelope.new(changed, account=account, producer="test", clock=clock))
        await producer.send(counter.topics(topics.PAYMENTS), payment(account, "after", 42))
        await eventually(lambda: total(counter, account), what="the payment after the foreign event")
    async with counter.db.connect() as conn:
        letters = (await conn.execute(select(dead_letters.c.code, dead_letters.c.reason))).all()
    assert [tuple(letter) for letter in letters] == [
        ("wrong_topic", "BalanceChanged travels on billing.ledger, not on billing.payments")]


async def test_health_and_metrics_over_http(make_settings: Any, bootstrap_servers: str) -> None:
    import httpx

    settings = await make_settings(CounterSettings, http_port=0)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=metadata,
                             handler=EventRouter({PaymentReceived: on_payment}), consumes=[topics.PAYMENTS])
    async with runtime:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.http_port}") as http:
            assert (await http.get("/health/live")).status_code == 200
            ready = await eventually(lambda: _ready(http), what="readiness")
            assert ready["checks"] == {"started": True, "database": True, "broker": True, "partitions_assigned": True}
            before = _handled((await http.get("/metrics")).text)
            async with RawProducer(bootstrap_servers) as producer:
                await producer.send(runtime.topics(topics.PAYMENTS), payment("100000000040", "m", 5))
            await eventually(lambda: total(runtime, "100000000040"), what="payment handled")
            after = _handled((await http.get("/metrics")).text)
    assert after == before + 1


async def _ready(http: Any) -> Any:
    response = await http.get("/health/ready")
    return response.json() if response.status_code == 200 else None


def _handled(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('billing_events_handled_total{event_type="PaymentReceived",service="counter"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_message_the_broker_refuses_is_set_aside_and_the_rest_still_go(
    counter: ServiceRuntime, bootstrap_servers: str
) -> None:
    from billing_events.event_log import append_rows

    topic = counter.topics(topics.LEDGER)
    async with counter.db.transaction() as conn:
        await append_rows(conn, [
            {"topic": topic, "key": "100000000057", "value": b"x" * (2 * 1024 * 1024), "headers": {},
             "created_at": clock.now()},
            {"topic": topic, "key": "100000000057", "value": b"after the big one", "headers": {},
             "created_at": clock.now()},
        ])
    counter.relay.wake()
    async with TopicReader(bootstrap_servers, topic) as reader:
        await eventually(lambda: any(r.value == b"after the big one" for r in reader.records),
                         what="the row after the refused one published")
    async with counter.db.connect() as conn:
        errors = (await conn.execute(select(outbox.c.error).where(outbox.c.error.is_not(None)))).scalars().all()
    assert len(errors) == 1 and "TooLarge" in errors[0]


async def test_rows_committed_elsewhere_wake_the_relay_at_once(make_settings: Any, bootstrap_servers: str) -> None:
    """Another instance's commit (here: a transaction that never calls ``wake``) is published
    at once, not at the next poll an hour away: committing staged rows notifies every relay
    listening on the database."""
    from billing_events.event_log import append_rows

    settings = await make_settings(CounterSettings, outbox_poll_seconds=3600)
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=metadata)
    topic = runtime.topics(topics.LEDGER)

    async def stage(value: bytes) -> None:
        async with runtime.db.transaction() as conn:
            await append_rows(conn, [{"topic": topic, "key": "100000000057", "value": value, "headers": {},
                                     "created_at": clock.now()}])

    async with runtime, TopicReader(bootstrap_servers, topic) as reader:
        await stage(b"first")  # published by the listener's first wake at the latest: it listens from then on
        await eventually(lambda: any(r.value == b"first" for r in reader.records), what="the first row published")
        await stage(b"second")
        await eventually(lambda: any(r.value == b"second" for r in reader.records),
                         what="the second row published on the commit's notification")



async def test_a_consumer_process_and_a_relay_process_split_the_work(make_settings: Any, bootstrap_servers: str) -> None:
    """``process_role``: the consumer posts and stages, the relay (another runtime on the same
    database) publishes; the consumer's commit wakes the relay through PostgreSQL, so nothing
    waits for the relay's poll (an hour here)."""
    consuming = await make_settings(CounterSettings, process_role="consumer", outbox_poll_seconds=3600)
    relaying = consuming.model_copy(update={"process_role": "relay"})
    runtimes = [ServiceRuntime(settings=settings, clock=clock, metadata=metadata,
                               handler=EventRouter({PaymentReceived: on_payment}), consumes=[topics.PAYMENTS])
                for settings in (consuming, relaying)]
    consumer, relay = runtimes
    assert relay.subscriber is None
    event = payment("100000000040", "split", 900)
    async with consumer, relay, RawProducer(bootstrap_servers) as producer, \
            TopicReader(bootstrap_servers, consumer.topics(topics.LEDGER)) as reader:
        await producer.send(consumer.topics(topics.PAYMENTS), event)
        [changed] = await reader.wait_for_type("BalanceChanged", 1)
        assert changed.causation_id == event.event_id
        assert await eventually(lambda: count_published(relay), what="the row marked published") == 1
    assert (consumer.relay.published, relay.relay.published) == (0, 1)
    assert await total(relay, "100000000040") == 900


async def test_splitting_the_roles_needs_postgresql(make_settings: Any) -> None:
    settings = await make_settings(CounterSettings, database="sqlite", process_role="relay")
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        ServiceRuntime(settings=settings, clock=clock, metadata=metadata)
