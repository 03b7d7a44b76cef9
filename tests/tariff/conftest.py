from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType, PaymentTypeChanged
from billing_events.clock import ManualClock
from billing_contracts.envelope import Envelope, decode, is_current
from billing_contracts.money import Money
from billing_events.runtime import ServiceRuntime
from billing_events.schema import outbox
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.plugin import eventually
from tariff import store
from tariff.app import build
from tariff.catalog import Catalog, load_catalog
from tariff.context import TariffContext
from tariff.domain import Subscription
from tariff.settings import TariffSettings

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


def noon(day: date) -> datetime:
    """Midday of a billing day in Moscow, as the UTC moment a clock gives."""
    return datetime.combine(day, time(12), tzinfo=MOSCOW).astimezone(UTC)


class Tariff:
    """What a flow test needs around a running tariff: settings, a clock, a broker's ends."""

    def __init__(self, make_settings: Callable[..., Any], bootstrap_servers: str) -> None:
        self._make_settings = make_settings
        self.bootstrap_servers = bootstrap_servers
        self.noon = noon

    async def settings(self, **overrides: Any) -> TariffSettings:
        values: dict[str, Any] = {"billing_clock_enabled": False, "billing_tick_seconds": 0.05}
        values.update(overrides)
        return await self._make_settings(TariffSettings, **values)

    @asynccontextmanager
    async def running(
        self, settings: TariffSettings, clock: ManualClock
    ) -> AsyncIterator[tuple[ServiceRuntime, TariffContext, RawProducer, TopicReader]]:
        runtime, ctx = build(settings, clock)
        async with runtime:
            async with (
                RawProducer(self.bootstrap_servers) as producer,
                TopicReader(self.bootstrap_servers, runtime.topics(topics.TARIFF)) as reader,
            ):
                yield runtime, ctx, producer, reader

    @staticmethod
    def registered(account: str, region: str, clock: ManualClock) -> Envelope[SubscriberRegistered]:
        body = SubscriberRegistered(
            account_number=account, contract_number=f"C-{account}", region=region,
            legal_status=LegalStatus.PERSON, masked_phone="+7 *** *** 45 67",
            sealed_contact="c2VhbGVk",
        )
        return Envelope.new(body, account=account, producer="identity", clock=clock)

    @staticmethod
    def balance(
        account: str, main: int, clock: ManualClock, *, credit_limit: int = 0,
        payment_type: PaymentType = PaymentType.PREPAID, delta: int = 0,
        cause: Envelope[Any] | None = None,
    ) -> Envelope[BalanceChanged]:
        """The ledger's BalanceChanged; ``cause``: the charge it posted (else a payment)."""
        body = BalanceChanged(
            account_number=account, transaction_id=uuid4(), main=Money(minor=main),
            bonus=Money.zero(), delta_main=Money(minor=delta), delta_bonus=Money.zero(),
            cause_event_id=cause.event_id if cause else None,
            cause_type=cause.event_type if cause else "PaymentReceived",
            payment_type=payment_type, credit_limit=Money(minor=credit_limit),
        )
        return Envelope.new(body, account=account, producer="ledger", clock=clock)

    async def register(
        self, runtime: ServiceRuntime, producer: RawProducer, account: str, region: str = "moscow"
    ) -> Subscription:
        await producer.send(runtime.topics(topics.IDENTITY), self.registered(account, region, runtime.clock))  # type: ignore[arg-type]
        return await eventually(lambda: self.state(runtime, account), what=f"{account} registered")

    async def send_balance(
        self, runtime: ServiceRuntime, producer: RawProducer, account: str, main: int, **kwargs: Any
    ) -> None:
        await self.send_ledger(runtime, producer, self.balance(account, main, runtime.clock, **kwargs))  # type: ignore[arg-type]

    @staticmethod
    def payment_type(
        account: str, payment_type: PaymentType, credit_limit: int, version: int, clock: ManualClock
    ) -> Envelope[PaymentTypeChanged]:
        """The ledger's PaymentTypeChanged (from prepaid, or to it from credit), no money moving."""
        previous = PaymentType.PREPAID if payment_type is PaymentType.CREDIT else PaymentType.CREDIT
        body = PaymentTypeChanged(
            account_number=account, payment_type=payment_type, credit_limit=Money(minor=credit_limit),
            previous_payment_type=previous, previous_credit_limit=Money.zero(), changed_by=f"cabinet:{account}",
            account_version=version,
        )
        return Envelope.new(body, account=account, producer="ledger", clock=clock)

    async def send_ledger(self, runtime: ServiceRuntime, producer: RawProducer, envelope: Envelope[Any]) -> None:
        """Send one of the ledger's events and wait until the tariff has taken it."""
        await producer.send(runtime.topics(topics.LEDGER), envelope)

        async def applied() -> bool:
            async with runtime.db.connect() as conn:
                from billing_events.inbox import was_processed

                return await was_processed(conn, runtime.name, envelope.event_id)

        await eventually(applied, what="BalanceChanged taken")

    async def settle(
        self, runtime: ServiceRuntime, producer: RawProducer, account: str, main: int, **kwargs: Any
    ) -> None:
        """The ledger's answer to the account's latest charge: the balance after posting it
        (which settles that charge and every one before it)."""
        *_, charge = await self.outbox_envelopes(runtime, "ChargeApplied", account)
        await self.send_balance(
            runtime, producer, account, main, delta=-charge.payload.amount.minor, cause=charge,
            **kwargs,
        )

    @staticmethod
    async def state(runtime: ServiceRuntime, account: str) -> Subscription | None:
        async with runtime.db.connect() as conn:
            return await store.load(conn, account)

    @staticmethod
    async def outbox_rows(runtime: ServiceRuntime) -> int:
        async with runtime.db.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(outbox)) or 0

    @classmethod
    async def outbox_events(cls, runtime: ServiceRuntime, event_type: str) -> list[Any]:
        """Every event of the type the service ever staged (one outbox row each)."""
        return [e.payload for e in await cls.outbox_envelopes(runtime, event_type)]

    @staticmethod
    async def outbox_envelopes(
        runtime: ServiceRuntime, event_type: str, account: str | None = None
    ) -> list[Envelope[Any]]:
        """The envelopes of those events (of one account, if given), in the order staged."""
        async with runtime.db.connect() as conn:
            values = (
                await conn.execute(
                    select(outbox.c.value)
                    .where(outbox.c.topic == runtime.topics(topics.TARIFF))
                    .order_by(outbox.c.id)
                )
            ).scalars()
            envelopes = [decode(value) for value in values]
        return [
            e for e in envelopes
            if e.event_type == event_type and is_current(e) and (account is None or e.account == account)
        ]

    async def refused(
        self, runtime: ServiceRuntime, account: str, command: Awaitable[Any], error: type[Exception]
    ) -> Any:
        """The command fails with ``error`` and changes nothing: same state, nothing staged."""
        before, staged = await self.state(runtime, account), await self.outbox_rows(runtime)
        with pytest.raises(error) as caught:
            await command
        assert await self.state(runtime, account) == before
        assert await self.outbox_rows(runtime) == staged
        return caught.value

    @staticmethod
    def of(reader: TopicReader, event_type: str, account: str | None = None) -> list[Any]:
        return [
            e.payload for e in reader.envelopes
            if e.event_type == event_type and is_current(e) and (account is None or e.account == account)
        ]

    @staticmethod
    async def published(runtime: ServiceRuntime) -> None:
        """Wait until the relay has published everything committed."""

        async def drained() -> bool:
            async with runtime.db.connect() as conn:
                return not await conn.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                )

        await eventually(drained, what="outbox drained")


@pytest.fixture
def tariff(make_settings: Callable[..., Any], bootstrap_servers: str) -> Tariff:
    return Tariff(make_settings, bootstrap_servers)


ONE_DAY = timedelta(days=1)
