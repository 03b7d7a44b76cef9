"""Equipment (a router, a set-top box) as catalog items: free with some plans, a daily fee with
others, chosen at activation or rented and returned later, charged by the day close like an
option (ChargeApplied with fee kind equipment and ``charged_for`` naming it)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from billing_contracts.catalog.tariff import ChargedItem, FeeKind
from billing_events.clock import ManualClock
from billing_contracts.envelope import is_current
from billing_events.testing.plugin import token_minter
from tariff.catalog import Catalog
from tariff.domain import activate, change_plan, close_day, register, rent_equipment, return_equipment
from tariff.errors import (
    EquipmentAlreadyRented,
    EquipmentNotRentedWithNewPlan,
    EquipmentNotSoldWithPlan,
    UnknownEquipment,
)
from tariff.service import close_days

ONE_DAY = timedelta(days=1)
ACCOUNT, STRANGER = "100000000164", "100000000172"
FUNDS = 10_000_000


def days_of(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def equipment_charges_by_month(state: Any, catalog: Catalog, days: list[date]) -> dict[tuple[int, int], int]:
    """Close the days in order; what the equipment cost each month, by (year, month)."""
    totals: dict[tuple[int, int], int] = defaultdict(int)
    for day in days:
        (outcome,) = close_day([state], catalog, day, datetime.combine(day + ONE_DAY, time(), tzinfo=UTC))
        state = outcome.state
        for charge in outcome.charges:
            if charge.fee_kind is FeeKind.EQUIPMENT:
                assert charge.charged_for.item is ChargedItem.EQUIPMENT
                totals[(day.year, day.month)] += charge.amount.minor
    return dict(totals)


@pytest.mark.parametrize(("month_start", "month_end"), [
    (date(2027, 2, 1), date(2027, 2, 28)), (date(2028, 2, 1), date(2028, 2, 29)),
    (date(2027, 4, 1), date(2027, 4, 30)), (date(2027, 3, 1), date(2027, 3, 31)),
])
def test_a_month_of_equipment_charges_is_the_monthly_rent(
    catalog: Catalog, month_start: date, month_end: date
) -> None:
    state = register(ACCOUNT, "spb", catalog)
    state = activate(state, catalog, "internet-100", month_start - ONE_DAY, equipment=["router-wifi6"]).state

    charged = equipment_charges_by_month(state, catalog, days_of(month_start, month_end))

    rent = catalog.equipment_price("router-wifi6", "spb").minor
    assert charged == {(month_start.year, month_start.month): rent}


def test_equipment_free_with_the_plan_is_never_charged_and_a_plan_change_decides_from_its_day(
    catalog: Catalog,
) -> None:
    state = register(ACCOUNT, "moscow", catalog)
    activated = activate(state, catalog, "internet-500", date(2027, 3, 31), equipment=["router-wifi6"])
    assert [type(e).__name__ for e in activated.events] == ["SubscriptionActivated", "EquipmentRented"]
    assert activated.events[1].monthly_price.minor == 0  # free with internet-500
    april = equipment_charges_by_month(activated.state, catalog, days_of(date(2027, 4, 1), date(2027, 4, 30)))
    assert april == {}

    # Moving to internet-100 on 15 April: from the 16th the router costs its rent.
    downgraded = change_plan(activated.state, catalog, "internet-100", date(2027, 4, 15)).state
    april = equipment_charges_by_month(downgraded, catalog, days_of(date(2027, 4, 1), date(2027, 4, 30)))
    rent = catalog.equipment_price("router-wifi6", "moscow").minor
    assert april == {(2027, 4): sum(rent // 30 + (1 if n < rent % 30 else 0) for n in range(15, 30))}


def test_equipment_rented_later_and_returned_is_charged_for_the_days_between(catalog: Catalog) -> None:
    state = activate(register(ACCOUNT, "kazan", catalog), catalog, "tv-basic", date(2027, 3, 31)).state
    state = rent_equipment(state, catalog, "stb-hd", date(2027, 4, 9)).state  # charged from the 10th
    state = return_equipment(state, "stb-hd", date(2027, 4, 19)).state  # charged through the 19th

    charged = equipment_charges_by_month(state, catalog, days_of(date(2027, 4, 1), date(2027, 4, 30)))

    rent = catalog.equipment_price("stb-hd", "kazan").minor
    assert charged == {(2027, 4): sum(rent // 30 + (1 if n < rent % 30 else 0) for n in range(9, 19))}


def test_equipment_refusals_name_the_field(catalog: Catalog) -> None:
    state = activate(register(ACCOUNT, "moscow", catalog), catalog, "internet-100", date(2027, 3, 31)).state
    with pytest.raises(UnknownEquipment) as unknown:
        rent_equipment(state, catalog, "toaster", date(2027, 4, 1))
    with pytest.raises(EquipmentNotSoldWithPlan) as unsold:  # a set-top box with internet alone
        rent_equipment(state, catalog, "stb-hd", date(2027, 4, 1))
    rented = rent_equipment(state, catalog, "router-wifi6", date(2027, 4, 1)).state
    with pytest.raises(EquipmentAlreadyRented):
        rent_equipment(rented, catalog, "router-wifi6", date(2027, 4, 2))
    with pytest.raises(EquipmentNotRentedWithNewPlan, match="router-wifi6; return it first"):
        change_plan(rented, catalog, "tv-basic", date(2027, 4, 2))
    assert {unknown.value.field, unsold.value.field} == {"equipment"}


async def test_equipment_over_http_is_charged_by_the_day_close_over_a_month(tariff: Any, catalog: Catalog) -> None:
    clock = ManualClock(tariff.noon(date(2027, 3, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, reader):
        for account in (ACCOUNT, STRANGER):
            await tariff.register(runtime, producer, account, "moscow")
        await tariff.send_balance(runtime, producer, ACCOUNT, FUNDS)
        token, _ = token_minter(clock).issue("subscriber", ACCOUNT)
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tariff/tariff",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            offered = (await http.get("/regions/moscow/equipment", headers={"Authorization": ""})).json()
            router = next(item for item in offered if item["code"] == "router-wifi6")
            assert router["monthly_price_minor"] == 15000 and "internet-500" in router["free_with"]
            assert "internet-100" in router["rented_with"] and "internet-100" not in router["free_with"]

            activated = await http.post(f"/accounts/{ACCOUNT}/plan",
                                        json={"plan": "combo-100-optimum", "equipment": ["router-wifi6", "stb-hd"]})
            assert activated.status_code == 200
            assert activated.json()["events"] == ["SubscriptionActivated", "EquipmentRented", "EquipmentRented"]
            hijack = await http.post(f"/accounts/{STRANGER}/equipment", json={"equipment": "stb-4k"})
            assert hijack.status_code == 403
            unsold = await http.post(f"/accounts/{ACCOUNT}/equipment", json={"equipment": "toaster"})
            assert (unsold.status_code, unsold.json()["code"]) == (422, "unknown_equipment")

            clock.set(tariff.noon(date(2027, 4, 10)))  # rented from the 11th, stb-hd returned from the 11th
            token, _ = token_minter(clock).issue("subscriber", ACCOUNT)  # the first one expired meanwhile
            http.headers["Authorization"] = f"Bearer {token}"
            assert (await http.post(f"/accounts/{ACCOUNT}/equipment", json={"equipment": "stb-4k"})).status_code == 200
            returned = await http.delete(f"/accounts/{ACCOUNT}/equipment/stb-hd")
            assert returned.status_code == 200 and returned.json()["events"] == ["EquipmentReturned"]

        clock.set(tariff.noon(date(2027, 5, 1)))
        await close_days(ctx, date(2027, 4, 30))
        await tariff.published(runtime)
        await reader.wait_for(
            lambda envs: sum(e.event_type == "ChargeApplied" and is_current(e)
                             and e.payload.fee_kind is FeeKind.EQUIPMENT for e in envs) >= 30 + 20,
            what="the month's equipment charges",
        )

    charges = [c for c in tariff.of(reader, "ChargeApplied", ACCOUNT) if c.fee_kind is FeeKind.EQUIPMENT]
    by_item: dict[str, int] = defaultdict(int)
    for charge in charges:
        assert charge.charge_id.endswith(f":equipment:{charge.charged_for.code}")
        by_item[charge.charged_for.code] += charge.amount.minor
    # The router is rented with a combo it is not free with: the whole month's rent; the HD box is
    # free with the combo (never charged); the 4K box costs 20 of April's 30 days.
    rent_4k = catalog.equipment_price("stb-4k", "moscow").minor
    assert dict(by_item) == {
        "router-wifi6": catalog.equipment_price("router-wifi6", "moscow").minor,
        "stb-4k": sum(rent_4k // 30 + (1 if n < rent_4k % 30 else 0) for n in range(10, 30)),
    }
