"""A running ledger over the session's broker and a fresh PostgreSQL database, and a driver
that speaks to it the way the other services do: through events on the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_events.clock import ManualClock
from billing_contracts.envelope import Envelope, Event
from billing_contracts.money import Money
from billing_events.runtime import ServiceRuntime
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.plugin import eventually
from ledger import store
from ledger.app import build
from ledger.context import LedgerContext
from ledger.settings import LedgerSettings

START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


class LedgerDriver:
    def __init__(self, runtime: ServiceRuntime, ctx: LedgerContext, producer: RawProducer, reader: TopicReader,
                 clock: ManualClock):
        self.runtime, self.ctx, self.producer, self.reader, self.clock = runtime, ctx, producer, reader, clock

    def envelope(self, payload: Event, account: str) -> Envelope[Any]:
        return Envelope.new(payload, account=account, producer=topics.spec(payload.topic).owner, clock=self.clock)

    async def send(self, payload: Event, account: str) -> Envelope[Any]:
        envelope = self.envelope(payload, account)
        await self.producer.send(self.runtime.topics(payload.topic), envelope)
        return envelope

    async def register(self, number: str) -> None:
        await self.send(SubscriberRegistered(
            account_number=number, contract_number=f"D-2026-{number[-7:]}", region="moscow",
            legal_status=LegalStatus.PERSON, masked_phone="+7 *** ***-00-00", sealed_contact="c2VhbGVk",
        ), number)
        await eventually(lambda: self.exists(number), what=f"account {number} opened")

    async def exists(self, number: str) -> bool:
        async with self.runtime.db.connect() as conn:
            return await store.account(conn, number) is not None

    def payment(self, number: str, minor: int, reference: str, channel: str = "terminal") -> PaymentReceived:
        return PaymentReceived(account_number=number, channel=channel, reference=reference,
                               amount=Money(minor=minor), received_at=self.clock.now())

    async def pay(self, number: str, minor: int, reference: str, channel: str = "terminal") -> Envelope[Any]:
        return await self.send(self.payment(number, minor, reference, channel), number)

    async def charge(self, number: str, minor: int, charge_id: str) -> Envelope[Any]:
        charge = ChargeApplied(charge_id=charge_id, account_number=number, amount=Money(minor=minor),
                               charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION, billing_day=self.clock.now().date())
        return await self.send(charge, number)

    async def main_balance(self, number: str) -> int | None:
        async with self.runtime.db.connect() as conn:
            state = await store.account(conn, number)
        return None if state is None else state.main

    async def balance_becomes(self, number: str, minor: int) -> None:
        await eventually(lambda: self._is(number, minor), what=f"balance of {number} = {minor}")

    async def _is(self, number: str, minor: int) -> bool:
        return await self.main_balance(number) == minor

    async def dead_letter_reasons(self) -> list[str]:
        """Each dead letter as "code: reason"."""
        from billing_events.schema import dead_letters

        async with self.runtime.db.connect() as conn:
            rows = await conn.execute(select(dead_letters.c.code, dead_letters.c.reason).order_by(dead_letters.c.id))
            return [f"{code}: {reason}" for code, reason in rows]

    async def journal_total(self) -> int:
        async with self.runtime.db.connect() as conn:
            totals, unbalanced = await store.double_entry_rows(conn)
        assert unbalanced == []
        return sum(totals.values())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@asynccontextmanager
async def running_ledger(settings: LedgerSettings, clock: ManualClock, bootstrap_servers: str) -> AsyncIterator[LedgerDriver]:
    runtime, ctx = build(settings, clock)
    async with runtime:
        async with RawProducer(bootstrap_servers) as producer, TopicReader(
            bootstrap_servers, runtime.topics(topics.LEDGER)
        ) as reader:
            yield LedgerDriver(runtime, ctx, producer, reader, clock)


@pytest.fixture
async def ledger(make_settings: Any, clock: ManualClock, bootstrap_servers: str) -> AsyncIterator[LedgerDriver]:
    async with running_ledger(await make_settings(LedgerSettings), clock, bootstrap_servers) as driver:
        yield driver
