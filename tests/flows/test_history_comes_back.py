"""History that comes back changes nothing (issue 26, break 2).

A subscriber lives a while through the four services: pays, is charged day by day, is blocked
for debt, pays, is unblocked, is blocked again. A month later every inbox has forgotten those
events (its retention is 30 days), and all of them come back: either a restart of `make run`
(the embedded broker lost its topics, each service fills them again from the events it kept)
or a rewind of every consumer group to the beginning of every topic. Each service takes every
event again as new to its inbox, and nothing happens: no event is published, no message sent,
no row of any service's own tables changes. Both ways, on PostgreSQL and on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from billing_contracts import topics
from billing_events import inbox
from billing_events.admin import AdminSettings, rewind_group
from billing_contracts.catalog.payments import PaymentReceived
from billing_events.embedded import EmbeddedBroker
from billing_contracts.envelope import Envelope, decode
from billing_contracts.money import Money
from billing_events.schema import inbox as inbox_table
from billing_events.schema import outbox
from billing_events.settings import KafkaSettings
from billing_events.testing.plugin import eventually
from identity import service as identity
from tariff import commands as tariff_commands
from tariff import service as tariff

from .conftest import Suite, restarted

RETENTION = timedelta(days=30)
BY_DESIGN = {"ledger": {"seals"}}
"""Tables that change at every start and stop by design (the ledger seals its chain head)."""


async def _pay(suite: Suite, number: str, minor: int, reference: str) -> None:
    payment = PaymentReceived(account_number=number, channel="terminal", reference=reference,
                              amount=Money(minor=minor), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))


async def _agreed(suite: Suite, number: str) -> int:
    """The balance once the ledger and the tariff agree on it."""
    async def agree() -> tuple[int] | None:
        ledger = await suite.ledger_balance(number)
        return (ledger,) if ledger is not None and ledger == await suite.tariff_balance(number) else None
    return int((await eventually(agree, what="the ledger and the tariff to agree"))[0])


async def _close_until(suite: Suite, number: str, *, blocked: bool) -> None:
    """Close billing days one at a time, each after the ledger's answer, until the account's
    debt block is ``blocked``."""
    for _ in range(40):
        subscription = await tariff.get_subscription(suite.tariff_context, number)
        if subscription.debt_blocked is blocked:
            return
        suite.clock.advance(timedelta(days=1))
        await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
        await _agreed(suite, number)
    raise AssertionError(f"{number} never became {'blocked' if blocked else 'unblocked'}")


async def _a_while_of_life(suite: Suite, form: dict[str, Any]) -> str:
    number = (await identity.register(suite.identity_context, form)).account_number
    await _agreed(suite, number)
    await _pay(suite, number, 20_000, "T-1")
    await _agreed(suite, number)
    await tariff.activate_plan(suite.tariff_context, tariff_commands.ActivatePlan(account_number=number, plan="internet-100"))
    await _close_until(suite, number, blocked=True)
    await _pay(suite, number, 5_000, "T-2")
    await _agreed(suite, number)
    await _close_until(suite, number, blocked=False)
    await _close_until(suite, number, blocked=True)
    return number


async def _rows(suite: Suite) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Every row of every service's own tables (its views and decisions), with the published
    events and the claims of its inbox counted."""
    found: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for runtime in suite.runtimes:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        async with runtime.db.connect() as conn:
            for table in runtime.metadata.sorted_tables:
                if table.name in BY_DESIGN.get(runtime.name, ()):
                    continue
                columns = [column for column in table.columns if column.name != "updated_at"]
                tables[table.name] = sorted((await conn.execute(select(*columns))).all(), key=repr)
            rows = (await conn.execute(select(outbox.c.topic, outbox.c.value))).all()
            tables["published"] = sorted((topic, decode(value).event_type) for topic, value in rows
                                         if not topic.endswith((topics.LEDGER_SEALS, topics.PAYMENTS)))
            # The payments the ledger took are kept beside its events, each once: one taken again
            # after the inbox forgot it is a repeat, not kept a second time.
            tables["kept payments"] = sorted(value for topic, value in rows if topic.endswith(topics.PAYMENTS))
            tables["claimed"] = [(await conn.scalar(select(func.count()).select_from(inbox_table)),)]
        found[runtime.name] = tables
    return found


async def _quiet(suite: Suite) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """The rows once every outbox is published and two looks a second apart see the same."""
    seen: list[Any] = [None]

    async def unchanged() -> Any:
        now = await _rows(suite)
        unpublished = 0
        for runtime in suite.runtimes:
            async with runtime.db.connect() as conn:
                unpublished += await conn.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) or 0
        settled = now == seen[0] and not unpublished
        seen[0] = now
        return now if settled else None
    return await eventually(unchanged, interval=1.0, timeout=60, what="the suite to settle")


async def _forget(suite: Suite) -> None:
    """What each service's inbox pruning does a month later: every claim is forgotten."""
    for runtime in suite.runtimes:
        await inbox.prune(runtime.db, before=suite.clock.now() - RETENTION)


async def _claimed(suite: Suite) -> dict[str, int]:
    counts = {}
    for runtime in suite.runtimes:
        async with runtime.db.connect() as conn:
            counts[runtime.name] = await conn.scalar(select(func.count()).select_from(inbox_table)) or 0
    return counts


@pytest.mark.parametrize("comes_back", ["refilled by a restart", "redelivered by a rewind"])
async def test_history_that_comes_back_after_the_inboxes_forgot_it_changes_nothing(
    suite_on_own_broker: Suite, own_broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Any,
    form: dict[str, Any], comes_back: str,
) -> None:
    suite = suite_on_own_broker
    await _a_while_of_life(suite, form)
    before = await _quiet(suite)
    claimed = await _claimed(suite)
    messages = suite.messages()
    assert {m["template"] for m in messages} >= {"account_blocked_debt", "account_unblocked"}

    suite.clock.advance(RETENTION + timedelta(days=1))
    kafka = kafka_settings.model_copy(update={"bootstrap_servers": own_broker.bootstrap_servers})
    if comes_back == "refilled by a restart":
        await suite.stop()  # as Ctrl-C does: the services first, then the broker, which loses every topic
        own_broker.stop()
        new_broker = EmbeddedBroker(log_file=tmp_path / "broker-after.log").start()
        kafka = kafka.model_copy(update={"bootstrap_servers": new_broker.bootstrap_servers})

    async def forget_and_rewind(restarting: Suite) -> None:
        await _forget(restarting)
        if comes_back == "redelivered by a rewind":
            for runtime in restarting.runtimes:
                await rewind_group(AdminSettings(kafka=kafka), runtime.name, datetime(2000, 1, 1, tzinfo=UTC))

    try:
        async with restarted(suite, kafka, before_start=forget_and_rewind) as again:
            await eventually(lambda: _all_claimed_again(again, claimed), timeout=90,
                             what="every service to take every event again")
            after = await _quiet(again)
    finally:
        if comes_back == "refilled by a restart":
            new_broker.stop()

    changed = {(service, table): {"before": rows, "after": after[service][table]}
               for service, tables in before.items() for table, rows in tables.items()
               if after[service][table] != rows}
    assert not changed, f"old events that came back changed: {changed}"
    assert suite.messages() == messages, "the notifier sent a message about old events"


async def _all_claimed_again(suite: Suite, claimed: dict[str, int]) -> bool:
    """Each inbox holds again (at least) every claim it held before it forgot them."""
    now = await _claimed(suite)
    return all(now[service] >= count for service, count in claimed.items())
