"""The tariff's HTTP routes call the same commands: status codes and refusal bodies."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from billing_events.clock import ManualClock

ACCOUNT, STRANGER = "100000000149", "100000000156"


async def test_commands_over_http(tariff: Any) -> None:
    clock = ManualClock(tariff.noon(date(2026, 3, 31)))
    settings = await tariff.settings(http_port=0)
    async with tariff.running(settings, clock) as (runtime, producer, _):
        await tariff.register(runtime, producer, ACCOUNT, "kazan")
        base = f"http://127.0.0.1:{runtime.http_port}/tariff"
        async with httpx.AsyncClient(base_url=base) as http:
            plans = (await http.get("/regions/kazan/plans")).json()
            assert "internet-500" not in {plan["code"] for plan in plans}
            assert {"code": "internet-100", "monthly_price_minor": 42000}.items() <= plans[0].items()
            assert (await http.get("/regions/atlantis/plans")).status_code == 422

            missing = await http.post(f"/accounts/{STRANGER}/plan", json={"plan": "internet-100"})
            assert missing.status_code == 404 and missing.json()["code"] == "unknown_account"
            unsold = await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-500"})
            assert unsold.status_code == 422
            assert unsold.json() == {"code": "plan_not_in_region", "field": "plan",
                                     "message": "plan 'internet-500' is not sold in region 'kazan'"}
            assert (await http.post(f"/accounts/{ACCOUNT}/plan", json={})).status_code == 422
            assert (await http.get("/accounts/123")).status_code == 422  # not 12 digits

            early = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 3})
            assert early.status_code == 409 and early.json()["code"] == "not_active"
            done = await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-100"})
            assert done.status_code == 200 and done.json()["events"] == ["SubscriptionActivated"]
            too_long = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 31})
            assert too_long.status_code == 422 and "rule 1" in too_long.json()["message"]
            shown = (await http.get(f"/accounts/{ACCOUNT}")).json()
            assert shown["region"] == "kazan"
            assert shown["schedule"][0]["terms"]["plan"] == "internet-100"
