"""Day close: the tariff's billing clock closing one billing day for N subscriptions.

A tariff runtime (relay and consumers running, as in the service process) on a fresh PostgreSQL
database and the bench's broker. The subscriptions are made by the tariff's own rules and
store: registered, funded (a prepaid balance the day does not exhaust), a plan activated the
day before (every third account with an option as well), the billing cursor where activation
puts it. Then the clock moves past midnight and :func:`tariff.service.close_days` closes the
day; the relay publishes each ChargeApplied (v2, and its v1 copy) to the broker meanwhile.

Charges per second count from the start of the close until the relay has published the last of
them (the day is not closed for the ledger before). CPU per subscription is this process's (the
close and the relay: the service's own process), PostgreSQL's and the broker's over that window.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, time as day_time, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select

from billing_contracts.catalog.ledger import PaymentType
from billing_events.clock import ManualClock
from billing_contracts.money import Money
from billing_events.runtime import tune_garbage_collector
from billing_events.schema import outbox
from billing_events.settings import KafkaSettings
from tariff import service, store
from tariff.app import build
from tariff.context import TariffContext
from tariff.domain import AccountBalance, activate, add_option, apply_balance, register
from tariff.settings import TariffSettings

from bench.cpu import CpuMeter
from bench.infra import Broker, Databases
from bench.workload import account_number, signing_settings

DAY = date(2026, 3, 10)
"""The billing day closed (the plans were activated the day before)."""
REGION, PLAN, OPTION = "moscow", "internet-100", "antivirus"
FUNDS = 1_000_000  # 10 000.00 RUB: far from the debt rule, every account is charged
SEED_CHUNK = 1000


def noon(day: date, settings: TariffSettings) -> datetime:
    return datetime.combine(day, day_time(12), tzinfo=settings.zone).astimezone(UTC)


async def seed(ctx: TariffContext, subscriptions: int) -> None:
    """Register, fund and activate ``subscriptions`` accounts the day before :data:`DAY`."""
    catalog, now, today = ctx.catalog, ctx.clock.now(), DAY - timedelta(days=1)
    funds = AccountBalance(main=Money(minor=FUNDS, currency=catalog.currency),
                           payment_type=PaymentType.PREPAID, credit_limit=Money.zero(catalog.currency))
    for first in range(0, subscriptions, SEED_CHUNK):
        states = []
        for n in range(first, min(first + SEED_CHUNK, subscriptions)):
            state = apply_balance(register(account_number(n, first=30_000_000_000), REGION, catalog), funds, now).state
            state = activate(state, catalog, PLAN, today).state
            states.append(add_option(state, catalog, OPTION, today).state if n % 3 == 0 else state)
        async with ctx.db.transaction() as conn:
            await store.insert_subscriptions(conn, states, now)
            await store.save_many(conn, [(state, DAY) for state in states], now)  # the cursor activation sets


async def unpublished(ctx: TariffContext) -> int:
    async with ctx.db.connect() as conn:
        return await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))) or 0


async def run(broker: Broker, databases: Databases, *, subscriptions: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    url = await databases.create("tariff")
    settings = TariffSettings(
        database_url=url, billing_clock_enabled=False, **signing_settings("tariff"),
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{uuid4().hex[:8]}.",
                            closed_network=True),
    )
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    runtime, ctx = build(settings, clock)
    clock.set(noon(DAY - timedelta(days=1), settings))
    thresholds = gc.get_threshold()
    try:
        async with runtime:
            tune_garbage_collector()  # as the service process does once started
            say(f"day close: seeding {subscriptions:,} subscriptions")
            started = time.perf_counter()
            await seed(ctx, subscriptions)
            say(f"day close: seeded in {time.perf_counter() - started:.0f} s; closing {DAY}")
            clock.set(noon(DAY + timedelta(days=1), settings))
            meter = CpuMeter({"tariff": os.getpid(), **({"broker": broker.pid} if broker.pid else {})})
            meter.start()
            started, cpu_started = time.perf_counter(), time.process_time()
            closed = await service.close_days(ctx, DAY)
            close_seconds, close_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            while await unpublished(ctx):
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            meter.stop()
    finally:
        gc.set_threshold(*thresholds)  # the benches after this one run as before
        gc.unfreeze()
        await databases.drop(url)
    assert closed.days_closed == subscriptions and not closed.failed, closed
    cpu = meter.report(subscriptions)
    figures = {
        "subscriptions": subscriptions,
        "charges": closed.charges,
        "close_seconds": close_seconds,
        "published_seconds": seconds,
        "charges_per_s": closed.charges / seconds,
        "subscriptions_per_s": subscriptions / seconds,
        "close_cpu_us_per_subscription": close_cpu / subscriptions * 1e6,
        **{name.replace("_us_per_movement", "_cpu_us_per_subscription"): value for name, value in cpu.items()
           if name.endswith("_us_per_movement")},
    }
    say(f"day close: {closed.charges:,} charges in {seconds:.1f} s ({figures['charges_per_s']:,.0f}/s), "
        f"{figures['tariff_cpu_us_per_subscription']:,.0f} µs CPU per subscription in the tariff process")
    return figures
