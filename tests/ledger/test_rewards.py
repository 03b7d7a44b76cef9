"""The rewards catalogue: the gifts and discounts bonuses buy, the ledger's data (it owns the
bonuses), served publicly for the cabinet and held to its prices by the redemption door."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from billing_contracts.catalog.ledger import BonusRedemptionRequested, RedemptionPurpose
from billing_contracts.money import Money
from billing_events.testing.plugin import token_minter
from ledger import store
from ledger.app import load_rewards
from ledger.domain import CommandRefused, InvalidRewards, check_reward, parse_rewards
from ledger.settings import DEFAULT_REWARDS

ACCOUNT, OTHER = "100000000008", "100000000016"


def _request(item: str | None, minor: int, purpose: RedemptionPurpose) -> BonusRedemptionRequested:
    return BonusRedemptionRequested(request_id=uuid4(), account_number=ACCOUNT, amount=Money(minor=minor),
                                    purpose=purpose, item=item)


def test_a_redemption_naming_an_item_is_held_to_its_kind_and_price() -> None:
    rewards = load_rewards(DEFAULT_REWARDS)
    stand = next(r for r in rewards if r.code == "router-stand")
    check_reward(rewards, _request("router-stand", stand.price, RedemptionPurpose.GIFT))  # as listed: taken
    check_reward(rewards, _request(None, 123, RedemptionPurpose.DISCOUNT))  # no item: decided as before
    with pytest.raises(CommandRefused) as cheaper:
        check_reward(rewards, _request("router-stand", stand.price - 1, RedemptionPurpose.GIFT))
    assert (cheaper.value.code, cheaper.value.field) == ("reward_mismatch", "amount.minor")
    assert "costs 50.00 RUB in bonuses, not 49.99 RUB" in cheaper.value.message
    with pytest.raises(CommandRefused) as wrong_kind:
        check_reward(rewards, _request("router-stand", stand.price, RedemptionPurpose.DISCOUNT))
    assert (wrong_kind.value.code, wrong_kind.value.field) == ("reward_mismatch", "purpose")
    with pytest.raises(CommandRefused) as unknown:
        check_reward(rewards, _request("yacht", 100, RedemptionPurpose.GIFT))
    assert (unknown.value.code, unknown.value.field) == ("unknown_reward", "item")


@pytest.mark.parametrize(("items", "problem"), [
    ([{"code": "a", "name": "A", "kind": "gift", "price": 100}] * 2, "used twice"),
    ([{"code": "a", "name": "A", "kind": "charge", "price": 100}], "discount or a gift"),
    ([{"code": "a", "name": "A", "kind": "gift", "price": 0}], "price"),
    ([{"code": "A B", "name": "A", "kind": "gift", "price": 1}], "code"),
])
def test_a_broken_catalogue_is_refused_naming_what_is_wrong(items: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(InvalidRewards, match=problem):
        parse_rewards(json.dumps(items), source="rewards.json")


async def test_the_cabinet_lists_the_rewards_and_redeems_one_by_its_code(ledger: Any) -> None:
    for number in (ACCOUNT, OTHER):
        await ledger.register(number)
    await ledger.pay(ACCOUNT, 150_000, "CARD-R1", channel="card")  # 1 500 ₽ by card: 300 ₽ back in bonuses
    await ledger.balance_becomes(ACCOUNT, 150_000)
    token, _ = token_minter(ledger.runtime.clock).issue("subscriber", ACCOUNT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app),
                                 base_url="http://ledger/ledger") as http:
        listed = (await http.get("/rewards")).json()  # public, like the campaigns
        assert {"code": "kino-month", "kind": "gift", "price": {"minor": 25_000, "currency": "RUB"}}.items() \
            <= next(r for r in listed if r["code"] == "kino-month").items()
        mine = {"Authorization": f"Bearer {token}"}

        bought = await http.post(f"/accounts/{ACCOUNT}/bonus-redemptions", headers=mine,
                                 json={"item": "kino-month", "request_id": str(uuid4())})
        assert bought.status_code == 200, bought.text
        redeemed = next(e for e in bought.json()["events"] if e["event_type"] == "BonusRedeemed")
        assert (redeemed["payload"]["amount"]["minor"], redeemed["payload"]["purpose"]) == (25_000, "gift")
        cheaper = await http.post(f"/accounts/{ACCOUNT}/bonus-redemptions", headers=mine,
                                  json={"item": "discount-100", "amount": {"minor": 1}})
        assert (cheaper.status_code, cheaper.json()["code"]) == (422, "reward_mismatch")
        unknown = await http.post(f"/accounts/{ACCOUNT}/bonus-redemptions", headers=mine, json={"item": "yacht"})
        assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_reward")
        too_dear = await http.post(f"/accounts/{ACCOUNT}/bonus-redemptions", headers=mine,
                                   json={"item": "discount-300"})  # 270 ₽ of bonuses, 50 ₽ left
        assert (too_dear.status_code, too_dear.json()["code"]) == (409, "insufficient_bonus")
        other = await http.post(f"/accounts/{OTHER}/bonus-redemptions", headers=mine, json={"item": "router-stand"})
        assert other.status_code == 403
        neither = await http.post(f"/accounts/{ACCOUNT}/bonus-redemptions", headers=mine, json={})
        assert neither.status_code == 422
    async with ledger.runtime.db.connect() as conn:
        assert (await store.account(conn, ACCOUNT)).bonus == 30_000 - 25_000
