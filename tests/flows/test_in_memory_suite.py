"""The four services' commands and handlers on the in-memory fakes: no broker, no server.

Each service is built by its own ``build`` (its context, its handlers, its consumer's topics), on
a database in memory; :class:`MemoryBroker` carries what each relay publishes to the services
that consume it, through their real consumers. The same life as the flow tests over Kafka
(register, pay, activate a plan, close days, move money, close the account), checked at each step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billing_contracts.catalog.ledger import BalanceChanged, FundsTransferred, TransferRejected
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ClosureSettlement
from billing_contracts.envelope import Envelope, decode
from billing_contracts.money import Money
from billing_events import event_log
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair
from billing_events.service import ServiceContext
from billing_events.testing.memory import MemoryBroker, as_record, consume, service_settings
from identity import service as identity
from identity import store as identity_store
from identity.app import build as build_identity
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger import domain as ledger_domain
from ledger import service as ledger
from ledger.app import build as build_ledger
from ledger.commands import Transfer
from ledger.settings import LedgerSettings
from notifier import store as notifier_store
from notifier.app import build as build_notifier
from notifier.settings import NotifierSettings
from tariff import commands as tariff_commands
from tariff import service as tariff
from tariff.app import build as build_tariff
from tariff.settings import TariffSettings

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


@dataclass
class Service:
    runtime: ServiceRuntime
    ctx: ServiceContext


@dataclass
class MemorySuite:
    clock: ManualClock
    broker: MemoryBroker
    services: dict[str, Service]

    def ctx(self, name: str) -> Any:
        return self.services[name].ctx

    async def settle(self) -> int:
        """Relay and deliver until nothing moves: every event published reaches every consumer
        of its topic. Returns how many messages were delivered."""
        delivered = 0
        while True:
            for service in self.services.values():
                await self.broker.relay(service.ctx)
            moved = 0
            for service in self.services.values():
                runtime = service.runtime
                if runtime.handler is not None:
                    moved += await self.broker.deliver(service.ctx, runtime.handler, runtime.consumes)
            if not moved:
                return delivered
            delivered += moved

    async def pay(self, number: str, minor: int, reference: str) -> None:
        payment = PaymentReceived(account_number=number, channel="terminal", reference=reference,
                                  amount=Money(minor=minor), received_at=self.clock.now())
        envelope = Envelope.new(payment, account=number, producer="terminal", clock=self.clock)
        ledger_service = self.services["ledger"]
        assert ledger_service.runtime.handler is not None
        await consume(ledger_service.ctx, ledger_service.runtime.handler, [as_record(ledger_service.ctx, envelope)],
                      keeps=ledger_service.runtime.consumes)
        await self.settle()


@pytest.fixture
async def suite(tmp_path: Path) -> AsyncIterator[MemorySuite]:
    clock = ManualClock(START)
    public, private = generate_keypair()
    built = {
        "identity": build_identity(service_settings(
            IdentitySettings, notifier_public_key=public, pii_lookup_key=new_key(), pii_encryption_key=new_key(),
            hashing_profile="fast", data_dir=tmp_path / "identity"), clock),
        "ledger": build_ledger(service_settings(LedgerSettings, data_dir=tmp_path / "ledger"), clock),
        "tariff": build_tariff(service_settings(TariffSettings, billing_clock_enabled=False,
                                                data_dir=tmp_path / "tariff"), clock),
        "notifier": build_notifier(service_settings(NotifierSettings, notifier_private_key=private,
                                                    data_dir=tmp_path / "notifier"), clock),
    }
    services = {name: Service(runtime, ctx) for name, (runtime, ctx) in built.items()}
    for service in services.values():
        await service.runtime.migrate()  # the real schema history, on the database in memory
    try:
        yield MemorySuite(clock, MemoryBroker(), services)
    finally:
        for service in services.values():
            await service.runtime.db.dispose()


def _form(passport: str, phone: str) -> dict[str, Any]:
    return {"contract_accepted": True, "legal_status": "person", "surname": "Иванов", "first_name": "Иван",
            "patronymic": "Сергеевич", "passport_series": "4508", "passport_number": passport,
            "date_of_birth": "1990-05-17", "issuing_authority": "ОВД района Арбат г. Москвы",
            "date_of_issue": "2010-06-01", "mobile_phone": phone, "email": None, "region": "moscow"}


async def test_a_subscribers_life_runs_through_every_service_in_memory(suite: MemorySuite) -> None:
    first = (await identity.register(suite.ctx("identity"), _form("731942", "+7 912 345-67-89"))).account_number
    second = (await identity.register(suite.ctx("identity"), _form("731943", "+7 912 345-67-80"))).account_number
    assert await suite.settle() > 0
    assert (await ledger.balance(suite.ctx("ledger"), first)).main == 0
    assert (await tariff.get_subscription(suite.ctx("tariff"), first)).account_number == first
    async with suite.ctx("notifier").db.connect() as conn:
        assert await notifier_store.subscriber_row(conn, first) is not None

    await suite.pay(first, 100_000, "T-1")
    assert (await ledger.balance(suite.ctx("ledger"), first)).main == 100_000
    assert (await tariff.get_subscription(suite.ctx("tariff"), first)).balance.main.minor == 100_000

    await tariff.activate_plan(suite.ctx("tariff"), tariff_commands.ActivatePlan(account_number=first,
                                                                                  plan="internet-100"))
    suite.clock.advance(timedelta(days=3))
    closed = await tariff.close_days(suite.ctx("tariff"), suite.ctx("tariff").billing_day() - timedelta(days=1))
    assert closed.charges > 0
    await suite.settle()
    charged = 100_000 - closed.charged_minor
    assert (await ledger.balance(suite.ctx("ledger"), first)).main == charged
    assert (await tariff.get_subscription(suite.ctx("tariff"), first)).balance.main.minor == charged

    moved = await ledger.transfer(suite.ctx("ledger"), Transfer(from_account=first, to_account=second,
                                                                amount=Money(minor=10_000), requested_by="operations"))
    assert [e.event_type for e in moved].count("BalanceChanged") == 2
    with pytest.raises(ledger_domain.RequestRefused):
        await ledger.transfer(suite.ctx("ledger"), Transfer(from_account=second, to_account=first,
                                                            amount=Money(minor=999_999), requested_by="operations"))
    await suite.settle()
    assert (await ledger.balance(suite.ctx("ledger"), second)).main == 10_000
    assert (await tariff.get_subscription(suite.ctx("tariff"), second)).balance.main.minor == 10_000
    published = suite.broker.events()
    assert [e.payload.reason for e in published if isinstance(e.payload, TransferRejected)] == [
        "insufficient_funds"]
    changes = [e.payload for e in published if isinstance(e.payload, BalanceChanged) and e.account == first]
    assert changes[-1].main.minor == charged - 10_000

    await tariff.close_account(suite.ctx("tariff"), tariff_commands.CloseAccount(
        account_number=second, settlement=ClosureSettlement.TRANSFER, transfer_to=first, requested_by="support",
        reason="moved away"))
    await suite.settle()
    left = (await ledger.balance(suite.ctx("ledger"), first)).main
    assert left == charged  # the second account's 10,000 came back with its closure
    assert (await tariff.get_subscription(suite.ctx("tariff"), first)).balance.main.minor == left
    async with suite.ctx("ledger").db.connect() as conn:  # the receiving account's history: cause, then effect
        history = [decode(row.value) for row in await event_log.account_page(conn, first)]
    arrived = next(i for i, e in enumerate(history) if isinstance(e.payload, FundsTransferred)
                   and e.payload.from_account == second)
    assert isinstance(history[arrived + 1].payload, BalanceChanged)
    assert history[arrived + 1].payload.delta_main.minor == 10_000
    async with suite.ctx("identity").db.connect() as conn:
        assert (await identity_store.subscriber_by_account(conn, second)).is_closed  # type: ignore[union-attr]
        assert not (await identity_store.subscriber_by_account(conn, first)).is_closed  # type: ignore[union-attr]
    async with suite.ctx("notifier").db.connect() as conn:
        assert await notifier_store.is_closed(conn, second) and not await notifier_store.is_closed(conn, first)

    report = await ledger.verify(suite.ctx("ledger"))
    assert report.ok and report.totals == {"RUB": 0}
