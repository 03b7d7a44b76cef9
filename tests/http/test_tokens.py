"""Identity's login gives a token for one account, which the ledger honours for that account
and refuses (403) for any other: the cabinet's whole authorisation path, over the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_contracts import topics
from billing_events.auth import MAX_TOKEN_LIFETIME
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.sealing import unseal
from billing_events.testing.kafka_probe import TopicReader
from billing_events.clock import ManualClock
from billing_events.testing.plugin import eventually, token_minter


async def test_the_login_token_opens_the_ledger_balance_of_that_account_only(services: Any, registration: Any,
                                                                             bootstrap_servers: str) -> None:
    identity, ledger = await services.start("identity", "ledger")
    operations = services.token("service", "call-centre")
    async with (
        TopicReader(bootstrap_servers, identity.topics(topics.IDENTITY)) as published,
        services.client("identity", operations) as call_centre,
        services.client("ledger", operations) as ledger_ops,
    ):
        first = await call_centre.post("/identity/subscribers", json=registration())
        second = await call_centre.post("/identity/subscribers", json=registration(
            passport_number="482914", mobile_phone="+7 915 204-33-72", email=None))
        assert (first.status_code, second.status_code) == (201, 201)
        mine, other = first.json()["account_number"], second.json()["account_number"]
        for number in (mine, other):  # the ledger opens both accounts from SubscriberRegistered
            await eventually(lambda n=number: _opened(ledger_ops, n), what=f"ledger account {number}")

        [issued] = await published.wait_for_type("PasswordIssued", 1, account_number=mine,
                                                 purpose=PasswordPurpose.INITIAL)
        password = unseal(services.private_key, issued.payload.sealed_secret)["secret"]

    async with services.client("identity") as cabinet:  # login is public
        refused = await cabinet.post("/identity/login", json={"login": mine, "password": "not-it"})
        assert (refused.status_code, refused.json()["code"]) == (401, "login_refused")
        logged_in = await cabinet.post("/identity/login", json={"login": mine, "password": password})
    assert logged_in.status_code == 200
    token = logged_in.json()["token"]
    assert logged_in.json()["account_number"] == mine

    async with services.client("ledger", token) as subscriber:
        own = await subscriber.get(f"/ledger/accounts/{mine}")
        assert own.status_code == 200 and own.json()["main"] == {"minor": 0, "currency": "RUB"}
        foreign = await subscriber.get(f"/ledger/accounts/{other}")
        assert (foreign.status_code, foreign.json()["code"]) == (403, "wrong_account")
        assert "main" not in foreign.json()
        steal = await subscriber.post(f"/ledger/accounts/{other}/transfers",
                                      json={"to_account": mine, "amount": {"minor": 1}})
        assert steal.status_code == 403
        services.clock.advance(timedelta(minutes=15, seconds=1))  # the token was short-lived
        late = await subscriber.get(f"/ledger/accounts/{mine}")
        assert (late.status_code, late.json()["code"]) == (401, "token_expired")


async def _opened(ledger: Any, number: str) -> bool:
    return (await ledger.get(f"/ledger/accounts/{number}")).status_code == 200


@pytest.mark.parametrize("lifetime", [timedelta(minutes=-1), timedelta(0), timedelta(hours=24, seconds=1)])
def test_a_token_lives_a_positive_bounded_time(lifetime: timedelta) -> None:
    tokens = token_minter(ManualClock(datetime(2026, 3, 1, tzinfo=UTC)))
    with pytest.raises(ValueError, match="positive and at most"):
        tokens.issue("subscriber", "100000000008", lifetime)
    _, expires = tokens.issue("subscriber", "100000000008", MAX_TOKEN_LIFETIME)
    assert expires == datetime(2026, 3, 2, tzinfo=UTC)
