"""Bad input over the real broker and PostgreSQL: a clear error, nothing changed or charged."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from billing_contracts import topics
from billing_events.clock import ManualClock
from billing_contracts.money import Money
from billing_events.schema import dead_letters
from billing_events.testing.plugin import eventually
from tariff.catalog import Catalog
from tariff.errors import (
    AlreadyActive,
    NotActive,
    OptionNotPresent,
    OptionNotSoldInRegion,
    OptionNotSoldWithPlan,
    PlanNotSoldInRegion,
    PlanUnchanged,
    TariffError,
    UnknownAccount,
    UnknownOption,
    UnknownPlan,
)
from tariff.commands import ActivatePlan, AddOption, ChangePlan, RemoveOption, StartVoluntaryBlock
from tariff.service import activate_plan, add_account_option, change_tariff, close_days, remove_account_option, start_block

ACCOUNT, NOWHERE, NEVER = "100000000115", "100000000123", "100000000131"


async def dead_letter_reasons(runtime: Any) -> list[str]:
    async with runtime.db.connect() as conn:
        return list((await conn.execute(select(dead_letters.c.reason))).scalars())


async def test_bad_requests_are_refused_clearly_and_change_nothing(
    tariff: Any, catalog: Catalog
) -> None:
    clock = ManualClock(tariff.noon(date(2026, 1, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        # An unknown region at registration: dead-lettered with the reason, nothing registered.
        await producer.send(runtime.topics(topics.IDENTITY), tariff.registered(NOWHERE, "atlantis", clock))
        reasons = await eventually(lambda: dead_letter_reasons(runtime), what="dead letter")
        assert reasons == ["unknown region 'atlantis'"]
        assert await tariff.state(runtime, NOWHERE) is None

        await tariff.refused(runtime, NEVER, activate_plan(
            ctx, ActivatePlan(account_number=NEVER, plan="internet-100")), UnknownAccount)
        await tariff.register(runtime, producer, ACCOUNT, "kazan")
        await tariff.send_balance(runtime, producer, ACCOUNT, 42000)  # February's price

        def activating(plan: str) -> Any:
            return activate_plan(ctx, ActivatePlan(account_number=ACCOUNT, plan=plan))

        def adding(option: str) -> Any:
            return add_account_option(ctx, AddOption(account_number=ACCOUNT, option=option))

        await tariff.refused(runtime, ACCOUNT, adding("antivirus"), NotActive)
        refusal = await tariff.refused(runtime, ACCOUNT, activating("internet-9000"), UnknownPlan)
        assert (refusal.code, refusal.field) == ("unknown_plan", "plan")
        refusal = await tariff.refused(runtime, ACCOUNT, activating("internet-500"), PlanNotSoldInRegion)
        assert str(refusal) == "plan 'internet-500' is not sold in region 'kazan'"
        await activating("internet-100")
        await tariff.refused(runtime, ACCOUNT, activating("internet-300"), AlreadyActive)
        await tariff.refused(runtime, ACCOUNT, change_tariff(
            ctx, ChangePlan(account_number=ACCOUNT, plan="internet-100")), PlanUnchanged)
        await tariff.refused(runtime, ACCOUNT, change_tariff(
            ctx, ChangePlan(account_number=ACCOUNT, plan="tv-max")), UnknownPlan)
        refusal = await tariff.refused(runtime, ACCOUNT, adding("multiroom"), OptionNotSoldWithPlan)
        assert str(refusal) == "option 'multiroom' is not sold with plan 'internet-100'"
        await tariff.refused(runtime, ACCOUNT, adding("vpn"), UnknownOption)
        await tariff.refused(runtime, ACCOUNT, adding("sport"), OptionNotSoldInRegion)
        await tariff.refused(runtime, ACCOUNT, remove_account_option(
            ctx, RemoveOption(account_number=ACCOUNT, option="antivirus")), OptionNotPresent)
        for days in (0, 31):
            await tariff.refused(runtime, ACCOUNT, start_block(
                ctx, StartVoluntaryBlock(account_number=ACCOUNT, days=days)), TariffError)
        # A field of the wrong shape never reaches the service.
        with pytest.raises(ValidationError):
            ActivatePlan(account_number="12345", plan="internet-100")
        # A balance in a currency the catalog does not charge in is refused, not applied.
        balance = tariff.balance(ACCOUNT, -100, clock)
        foreign = balance.model_copy(update={"payload": balance.payload.model_copy(
            update={"main": Money(minor=-100, currency="EUR")})})
        await producer.send(runtime.topics(topics.LEDGER), foreign)
        await eventually(lambda: _count(dead_letter_reasons(runtime), 2), what="second dead letter")
        assert not (await tariff.state(runtime, ACCOUNT)).debt_blocked

        clock.set(tariff.noon(date(2026, 3, 1)))
        await close_days(ctx, date(2026, 2, 28))
        await tariff.published(runtime)
        await reader.wait_for_type("ChargeApplied", 28)
        staged = await tariff.outbox_events(runtime, "ChargeApplied")

    assert sorted({e.event_type for e in reader.envelopes}) == ["ChargeApplied", "SubscriptionActivated"]
    assert len(tariff.of(reader, "SubscriptionActivated")) == 1
    charges = tariff.of(reader, "ChargeApplied")
    assert {c.charge_id.rsplit(":", 1)[1] for c in charges} == {"internet-100"}
    assert sum(c.amount.minor for c in charges) == catalog.plan_price("internet-100", "kazan").minor
    assert len(staged) == 28


async def _count(reasons: Any, n: int) -> bool:
    return len(await reasons) >= n
