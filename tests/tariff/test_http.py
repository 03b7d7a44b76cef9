"""The tariff's HTTP routes call the same commands: status codes, refusal bodies in the suite's
one shape, and who may call (plans are public; an account takes its own token or a service's)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from billing_events.clock import ManualClock
from billing_events.testing.plugin import bearer_token, token_minter

ACCOUNT, STRANGER = "100000000149", "100000000156"


def _bearer(runtime: Any, role: str = "service", subject: str = "cabinet") -> dict[str, str]:
    token = bearer_token(runtime.clock, role, subject)
    return {"Authorization": f"Bearer {token}"}


async def test_commands_over_http(tariff: Any) -> None:
    clock = ManualClock(tariff.noon(date(2026, 3, 31)))
    settings = await tariff.settings(http_port=0)
    async with tariff.running(settings, clock) as (runtime, _, producer, _):
        await tariff.register(runtime, producer, ACCOUNT, "kazan")
        base = f"http://127.0.0.1:{runtime.http_port}/tariff"
        async with httpx.AsyncClient(base_url=base, headers=_bearer(runtime)) as http:
            plans = (await http.get("/regions/kazan/plans", headers={"Authorization": ""})).json()
            assert "internet-500" not in {plan["code"] for plan in plans}
            assert {"code": "internet-100", "monthly_price_minor": 42000}.items() <= plans[0].items()
            atlantis = await http.get("/regions/atlantis/plans")
            assert atlantis.status_code == 422 and atlantis.json()["errors"][0]["field"] == "region"

            missing = await http.post(f"/accounts/{STRANGER}/plan", json={"plan": "internet-100"})
            assert missing.status_code == 404 and missing.json()["code"] == "unknown_account"
            unsold = await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-500"})
            assert unsold.status_code == 422
            message = "plan 'internet-500' is not sold in region 'kazan'"
            assert unsold.json() == {"code": "plan_not_in_region", "message": message,
                                     "errors": [{"field": "plan", "message": message, "code": "plan_not_in_region"}]}
            empty = await http.post(f"/accounts/{ACCOUNT}/plan", json={})
            assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "plan"
            short = await http.get("/accounts/123")  # not 12 digits
            assert (short.status_code, short.json()["errors"][0]["field"]) == (422, "account")
            long_option = await http.delete(f"/accounts/{ACCOUNT}/options/{'x' * 41}")
            assert (long_option.status_code, long_option.json()["errors"][0]["field"]) == (422, "option")

            early = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 3})
            assert early.status_code == 409 and early.json()["code"] == "not_active"
            assert early.json()["errors"] == []
            done = await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-100"})
            assert done.status_code == 200 and done.json()["events"] == ["SubscriptionActivated"]
            too_long = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 31})
            assert too_long.status_code == 422 and "rule 1" in too_long.json()["message"]
            assert too_long.json()["errors"][0]["field"] == "days"
            shown = (await http.get(f"/accounts/{ACCOUNT}")).json()
            assert shown["region"] == "kazan"
            assert shown["schedule"][0]["terms"]["plan"] == "internet-100"


async def test_an_account_takes_its_own_token_or_a_service_token(tariff: Any) -> None:
    clock = ManualClock(tariff.noon(date(2026, 3, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, _, producer, _):
        for account in (ACCOUNT, STRANGER):
            await tariff.register(runtime, producer, account, "kazan")
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tariff/tariff") as http:
            anonymous = await http.get(f"/accounts/{ACCOUNT}")
            assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token")
            assert (await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-100"})).status_code == 401

            mine = _bearer(runtime, "subscriber", ACCOUNT)
            assert (await http.get(f"/accounts/{ACCOUNT}", headers=mine)).status_code == 200
            other = await http.get(f"/accounts/{STRANGER}", headers=mine)
            assert (other.status_code, other.json()["code"]) == (403, "wrong_account")
            hijack = await http.post(f"/accounts/{STRANGER}/plan", json={"plan": "internet-100"}, headers=mine)
            assert hijack.status_code == 403
            assert (await tariff.state(runtime, STRANGER)).status.value != "active"  # nothing done

            activated = await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-100"}, headers=mine)
            assert activated.status_code == 200
            by_service = await http.post(f"/accounts/{STRANGER}/plan", json={"plan": "internet-100"},
                                         headers=_bearer(runtime))
            assert by_service.status_code == 200 and by_service.json()["events"] == ["SubscriptionActivated"]


async def test_the_channel_of_a_block_is_what_the_token_says_never_what_the_body_claims(tariff: Any) -> None:
    clock = ManualClock(tariff.noon(date(2026, 3, 31)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, ctx, producer, _):
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tariff/tariff") as http:
            for account in (ACCOUNT, STRANGER):
                await tariff.register(runtime, producer, account, "kazan")
                await http.post(f"/accounts/{account}/plan", json={"plan": "internet-100"}, headers=_bearer(runtime))
                await tariff.send_balance(runtime, producer, account, 100_000)
            clock.set(tariff.noon(date(2026, 4, 1)))  # the plan runs from the next day
            mine = _bearer(runtime, "subscriber", ACCOUNT)
            posed = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", headers=mine,
                                    json={"days": 3, "requested_via": "support"})
            assert (posed.status_code, posed.json()["code"]) == (403, "requester_mismatch")
            assert posed.json()["errors"][0]["field"] == "requested_via"
            assert await tariff.outbox_events(runtime, "VoluntaryBlockStarted") == []
            by_subscriber = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", headers=mine, json={"days": 3})
            support = _bearer(runtime, "service", "call-centre")
            posed = await http.post(f"/accounts/{STRANGER}/voluntary-block", headers=support,
                                    json={"days": 3, "requested_via": "cabinet"})
            assert (posed.status_code, posed.json()["code"]) == (403, "requester_mismatch")
            by_support = await http.post(f"/accounts/{STRANGER}/voluntary-block", headers=support,
                                         json={"days": 3, "requested_via": "support"})
            assert (by_subscriber.status_code, by_support.status_code) == (200, 200)
    started = await tariff.outbox_events(runtime, "VoluntaryBlockStarted")
    assert [(s.account_number, s.requested_via.value) for s in started] == [(ACCOUNT, "cabinet"), (STRANGER, "support")]


async def test_a_block_across_new_year_is_refused_in_the_subscribers_words(tariff: Any) -> None:
    """The issue's example over HTTP: 30 days from 2026-12-20 (to 2027-01-18), then 30 from
    2027-01-19 is refused, 2027's one block being used. The subscriber reads why in the language
    their token names, else in their browser's, else in English; days as people write them."""
    clock = ManualClock(tariff.noon(date(2026, 12, 19)))
    async with tariff.running(await tariff.settings(), clock) as (runtime, _, producer, _):
        await tariff.register(runtime, producer, ACCOUNT, "moscow")
        transport = httpx.ASGITransport(app=runtime.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tariff/tariff") as http:
            def token(language: str | None) -> dict[str, str]:
                minted = token_minter(runtime.clock).issue("subscriber", ACCOUNT, language=language)[0]
                return {"Authorization": f"Bearer {minted}"}

            await http.post(f"/accounts/{ACCOUNT}/plan", json={"plan": "internet-100"}, headers=token("ru"))
            await tariff.send_balance(runtime, producer, ACCOUNT, 100_000)
            clock.set(tariff.noon(date(2026, 12, 20)))
            december = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 30}, headers=token("ru"))
            assert december.status_code == 200, december.text
            clock.set(tariff.noon(date(2027, 1, 19)))

            async def refusal(headers: dict[str, str]) -> tuple[str, str]:
                answer = await http.post(f"/accounts/{ACCOUNT}/voluntary-block", json={"days": 30}, headers=headers)
                assert (answer.status_code, answer.json()["code"]) == (409, "block_once_a_year")
                return answer.headers["content-language"], answer.json()["message"]

            assert await refusal(token("sk")) == ("sk", "Dobrovoľné blokovanie sa dá použiť raz za rok a za rok 2027"
                                                        " ste ho už využili (od 20.12.2026 do 18.01.2027).")
            assert await refusal(token("ru")) == ("ru", "Добровольной блокировкой можно пользоваться раз в год, а в"
                                                        " 2027 году она уже использована (с 20.12.2026 по 18.01.2027).")
            # A token without a language: the browser's first language the suite speaks, else English.
            assert await refusal({**token(None), "Accept-Language": "de-AT, sk;q=0.9, en;q=0.5"}) == (
                "sk", "Dobrovoľné blokovanie sa dá použiť raz za rok a za rok 2027 ste ho už využili"
                      " (od 20.12.2026 do 18.01.2027).")
            assert await refusal({**token(None), "Accept-Language": "fr"}) == (
                "en", "voluntary block request refused by rule 1 (only once a calendar year; a block counts toward"
                      " every year it touches): the 2027 block was already used, by the block from 2026-12-20 to"
                      " 2027-01-18")
            # The token's language wins over the browser's, also in a refusal before any work.
            poor = await http.post(f"/accounts/{STRANGER}/voluntary-block", json={"days": 1},
                                   headers={**token("sk"), "Accept-Language": "ru"})
            assert poor.status_code == 403 and poor.headers["content-language"] == "sk"
            assert poor.json()["message"] == "Tento účet nepatrí medzi vaše."
