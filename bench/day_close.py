"""Day close: the tariff's billing clock closing one billing day for N subscriptions.

The tariff as deploy/ runs it: the service process (here, the bench's own: consumer role, which
runs the billing clock) closes the day and stages its charges; a relay process (``python -m
tariff``, relay role) publishes them, woken by the close's commits through PostgreSQL. Both on a
fresh PostgreSQL database and the bench's broker. The subscriptions are made by the tariff's own
rules and store: registered, funded (a prepaid balance the day does not exhaust), a plan activated
the day before (every third account with an option as well), the billing cursor where activation
puts it. Then the clock moves past midnight and :func:`tariff.service.close_days` closes the day;
the relay publishes each ChargeApplied (v2, and its v1 copy) to the broker meanwhile.

Charges per second count from the start of the close until the relay has published the last of
them (the day is not closed for the ledger before). CPU per subscription is each tariff
process's (the close's, the relay's), PostgreSQL's and the broker's over that window.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, time as day_time, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
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

from bench import infra
from bench.cpu import CpuMeter
from bench.infra import Broker, Databases
from bench.ledger_process import ServiceProcesses
from bench.workload import account_number, signing_environment, signing_settings

DAY = date(2026, 3, 10)
"""The billing day closed (the plans were activated the day before)."""
REGION, PLAN, OPTION = "moscow", "internet-100", "antivirus"
FUNDS = 1_000_000  # 10 000.00 RUB: far from the debt rule, every account is charged
SEED_CHUNK = 1000
RELAY_READY_SECONDS = 60
RELAY_LOG = Path(__file__).with_name("results") / "tariff-relay.log"


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


def relay_process(settings: TariffSettings, log_file: Path) -> ServiceProcesses:
    """The tariff's relay, ``python -m tariff`` in the relay role, on ``settings``' database and topics,
    serving its health on a free port (:func:`wait_until_ready`)."""
    env = {
        **os.environ,
        "BILLING_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BILLING_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BILLING_KAFKA__CLOSED_NETWORK": "true",
        "BILLING_TARIFF_DATABASE_URL": settings.resolved_database_url(),
        "BILLING_MIGRATE_ON_START": "false",  # the service process migrated it
        "BILLING_HTTP_PORT": str(free_port()),
        "BILLING_LOG_FORMAT": "json",
        "BILLING_LOG_LEVEL": "WARNING",
        **signing_environment(owner="tariff"),
    }
    return ServiceProcesses("tariff", env, roles=("relay",), log_file=log_file)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_ready(relay: ServiceProcesses) -> None:
    """Until the relay answers its readiness check (started, its database and broker reached)."""
    url = f"http://127.0.0.1:{relay.env['BILLING_HTTP_PORT']}/health/ready"
    deadline = time.perf_counter() + RELAY_READY_SECONDS
    while True:
        relay.check_alive()
        try:
            async with httpx.AsyncClient() as client:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
        except httpx.TransportError:
            pass  # not listening yet
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the tariff's relay was not ready in {RELAY_READY_SECONDS} s; see {relay.log_file}")
        await asyncio.sleep(0.1)


async def run(broker: Broker, databases: Databases, *, subscriptions: int,
              say: Callable[[str], None], close_batch: int = service.CLOSE_BATCH) -> dict[str, Any]:
    url = await databases.create("tariff")
    settings = TariffSettings(
        database_url=url, billing_clock_enabled=False, process_role="consumer", **signing_settings("tariff"),
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{uuid4().hex[:8]}.",
                            closed_network=True),
    )
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    runtime, ctx = build(settings, clock)
    relay = relay_process(settings, RELAY_LOG)
    clock.set(noon(DAY - timedelta(days=1), settings))
    thresholds = gc.get_threshold()
    try:
        async with runtime:
            relay.start()
            tune_garbage_collector()  # as the service process does once started
            say(f"day close: seeding {subscriptions:,} subscriptions")
            started = time.perf_counter()
            await seed(ctx, subscriptions)
            await wait_until_ready(relay)
            say(f"day close: seeded in {time.perf_counter() - started:.0f} s; closing {DAY}")
            clock.set(noon(DAY + timedelta(days=1), settings))
            meter = CpuMeter({"tariff": os.getpid(), "tariff_relay": relay.pids["relay"],
                              **({"broker": broker.pid} if broker.pid else {})},
                             database=url.rpartition("/")[2])  # its backends, not the server's other work
            meter.start()
            started, cpu_started = time.perf_counter(), time.process_time()
            closed = await service.close_days(ctx, DAY, batch_size=close_batch)
            close_seconds, close_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            while await unpublished(ctx):
                relay.check_alive()
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - started
            meter.stop()
            rss = relay.sample_rss()["relay"]
    finally:
        relay.stop()
        gc.set_threshold(*thresholds)  # the benches after this one run as before
        gc.unfreeze()
        await databases.drop(url)
    assert closed.days_closed == subscriptions and not closed.failed, closed
    cpu = meter.report(subscriptions)
    figures = {
        "subscriptions": subscriptions,
        "close_batch": close_batch,
        "charges": closed.charges,
        "close_seconds": close_seconds,
        "published_seconds": seconds,
        "charges_per_s": closed.charges / seconds,
        "subscriptions_per_s": subscriptions / seconds,
        "close_cpu_us_per_subscription": close_cpu / subscriptions * 1e6,
        **{name.replace("_us_per_movement", "_cpu_us_per_subscription"): value for name, value in cpu.items()
           if name.endswith("_us_per_movement")},
        "relay_peak_rss_mib": rss / 2**20,
    }
    say(f"day close: {closed.charges:,} charges in {seconds:.1f} s ({figures['charges_per_s']:,.0f}/s), "
        f"µs CPU per subscription: {figures['tariff_cpu_us_per_subscription']:,.0f} in the tariff's service "
        f"process (the close), {figures['tariff_relay_cpu_us_per_subscription']:,.0f} in its relay")
    return figures


async def _alone(subscriptions: int, close_batch: int) -> dict[str, Any]:
    databases = Databases()
    try:
        with infra.broker() as broker:
            return await run(broker, databases, subscriptions=subscriptions, close_batch=close_batch,
                             say=lambda line: print(line, file=sys.stderr))
    finally:
        await databases.drop_all()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.day_close [--subscriptions N] [--close-batch B]``: this row alone (to
    compare batch sizes, say), its figures as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.day_close", description=main.__doc__)
    parser.add_argument("--subscriptions", type=int, default=20_000)
    parser.add_argument("--close-batch", type=int, default=service.CLOSE_BATCH,
                        help=f"accounts per day-close transaction (default {service.CLOSE_BATCH:,})")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_alone(args.subscriptions, args.close_batch)), indent=1))


if __name__ == "__main__":
    main()
