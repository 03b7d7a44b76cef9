"""The ledger's HTTP door gives the service layer's answers and errors."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx

from billing_events.testing.plugin import bearer_token, eventually, token_minter


async def _client(ledger: Any, role: str = "service", subject: str = "operations") -> httpx.AsyncClient:
    token = bearer_token(ledger.runtime.clock, role, subject)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app), base_url="http://ledger",
                             headers={"Authorization": f"Bearer {token}"})


async def _two_accounts_the_first_paid(ledger: Any, reference: str) -> tuple[str, str]:
    a, b = "100000000008", "100000000016"
    for number in (a, b):
        await ledger.register(number)
    await ledger.pay(a, 10_000, reference)
    await ledger.balance_becomes(a, 10_000)
    return a, b


async def test_balance_transfer_and_errors_over_http(ledger: Any) -> None:
    a, b = await _two_accounts_the_first_paid(ledger, "H-1")
    async with await _client(ledger) as http:
        balance = (await http.get(f"/ledger/accounts/{a}")).json()
        assert balance["main"] == {"minor": 10_000, "currency": "RUB"}
        unknown = await http.get("/ledger/accounts/100000000099")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_account")
        malformed = await http.get("/ledger/accounts/12345")
        assert malformed.status_code == 422
        assert malformed.json()["errors"][0]["field"] == "number"
        moved = await http.post(f"/ledger/accounts/{a}/transfers", json={"to_account": b, "amount": {"minor": 2_500}})
        assert moved.status_code == 200
        assert "FundsTransferred" in {e["event_type"] for e in moved.json()["events"]}
        negative = await http.post(f"/ledger/accounts/{a}/transfers", json={"to_account": b, "amount": {"minor": -987654}})
        assert negative.status_code == 422
        assert negative.json()["code"] == "invalid_request"
        assert [e["field"] for e in negative.json()["errors"]] == ["amount.minor"]
        assert "987654" not in negative.text  # the value sent is never repeated
        too_much = await http.post(f"/ledger/accounts/{a}/transfers", json={"to_account": b, "amount": {"minor": 10**7}})
        assert (too_much.status_code, too_much.json()["code"]) == (409, "insufficient_funds")
        over_limit = await http.post(f"/ledger/accounts/{a}/transfers",
                                     json={"to_account": b, "amount": {"minor": 10**9}})
        assert (over_limit.status_code, over_limit.json()["code"]) == (422, "amount_over_limit")
        assert over_limit.json()["message"] == (
            "10000000.00 RUB is over the limit of 1000000.00 RUB for one movement")
        assert over_limit.json()["errors"][0]["field"] == "amount.minor"
        nobody = await http.post(f"/ledger/accounts/{a}/transfers",
                                 json={"to_account": "100000000099", "amount": {"minor": 1}})
        assert (nobody.status_code, nobody.json()["code"]) == (404, "target_unknown")
        # Without the money, the answer is the same whatever number is named: no probing.
        probe = await http.post(f"/ledger/accounts/{a}/transfers",
                                json={"to_account": "100000000099", "amount": {"minor": 10**7}})
        def said(answer: Any) -> tuple[int, str, str]:
            return answer.status_code, answer.json()["code"], answer.json()["message"]

        assert said(probe) == said(too_much)
        debt = await http.put(f"/ledger/accounts/{a}/payment-type",
                              json={"payment_type": "credit", "credit_limit": {"minor": 0}})
        assert debt.status_code == 422 and debt.json()["code"] == "invalid_credit_limit"
        assert debt.json()["errors"][0]["field"] == "credit_limit"
        naive = await http.get(f"/ledger/accounts/{a}/statement", params={"from": "2026-01-01T00:00:00",
                                                                          "to": "2026-02-01T00:00:00Z"})
        assert (naive.status_code, naive.json()["errors"][0]["field"]) == (422, "from")
        backwards = await http.get(f"/ledger/accounts/{a}/statement", params={"from": "2026-02-01T00:00:00Z",
                                                                              "to": "2026-01-01T00:00:00Z"})
        assert (backwards.status_code, backwards.json()["code"]) == (422, "invalid_period")
    assert (await ledger.main_balance(a), await ledger.main_balance(b)) == (7_500, 2_500)


async def test_subscribers_choose_a_credit_limit_only_up_to_the_operators_ceiling(ledger: Any) -> None:
    number = "100000000008"
    await ledger.register(number)
    ceiling = ledger.ctx.self_service_credit_limit

    def credit(limit: int) -> dict[str, Any]:
        return {"payment_type": "credit", "credit_limit": {"minor": limit}}

    async with await _client(ledger, "subscriber", number) as subscriber:
        greedy = await subscriber.put(f"/ledger/accounts/{number}/payment-type", json=credit(ceiling + 1))
        assert (greedy.status_code, greedy.json()["code"]) == (422, "invalid_credit_limit")
        assert greedy.json()["errors"][0]["field"] == "credit_limit"
        modest = await subscriber.put(f"/ledger/accounts/{number}/payment-type", json=credit(ceiling))
        assert modest.status_code == 200
    async with await _client(ledger) as operator:
        raised = await operator.put(f"/ledger/accounts/{number}/payment-type", json=credit(ceiling * 10))
        assert raised.status_code == 200
    async with await _client(ledger, "subscriber", number) as subscriber:
        state = (await subscriber.get(f"/ledger/accounts/{number}")).json()
    assert (state["payment_type"], state["credit_limit"]["minor"]) == ("credit", ceiling * 10)


async def test_who_asked_is_what_the_token_says_never_what_the_body_claims(ledger: Any) -> None:
    from billing_contracts import topics
    from billing_events.testing.kafka_probe import TopicReader
    from ledger import service

    a, b = await _two_accounts_the_first_paid(ledger, "WHO-1")
    credit = {"payment_type": "credit", "credit_limit": {"minor": 1_000}}
    async with await _client(ledger, "subscriber", a) as mine:
        for method, path, body in (("POST", "transfers", {"to_account": b, "amount": {"minor": 100}}),
                                   ("PUT", "payment-type", credit)):
            for claim in ("operator:x", f"cabinet:{b}", "cabinet"):
                posed = await mine.request(method, f"/ledger/accounts/{a}/{path}", json={**body, "requested_by": claim})
                assert (posed.status_code, posed.json()["code"]) == (403, "requester_mismatch"), (path, claim)
                assert posed.json()["errors"][0]["field"] == "requested_by"
        unchanged = await service.balance(ledger.ctx, a)
        assert (unchanged.main, unchanged.payment_type.value) == (10_000, "prepaid")
        moved = await mine.post(f"/ledger/accounts/{a}/transfers", json={"to_account": b, "amount": {"minor": 100}})
        said_so = await mine.post(f"/ledger/accounts/{a}/transfers",
                                  json={"to_account": b, "amount": {"minor": 200}, "requested_by": f"cabinet:{a}"})
        assert (moved.status_code, said_so.status_code) == (200, 200)
        changed = await mine.put(f"/ledger/accounts/{a}/payment-type", json=credit)
        assert [e["payload"]["changed_by"] for e in changed.json()["events"]
                if e["event_type"] == "PaymentTypeChanged"] == [f"cabinet:{a}"]
    async with await _client(ledger, "service", "cli:ivanova") as operator:
        posed = await operator.post(f"/ledger/accounts/{b}/transfers",
                                    json={"to_account": a, "amount": {"minor": 50}, "requested_by": f"cabinet:{b}"})
        assert (posed.status_code, posed.json()["code"]) == (403, "requester_mismatch")
        assert (await operator.post(f"/ledger/accounts/{b}/transfers",
                                    json={"to_account": a, "amount": {"minor": 50}})).status_code == 200
    bootstrap = ledger.runtime.settings.kafka.bootstrap_servers
    async with TopicReader(bootstrap, ledger.runtime.topics(topics.LEDGER_COMMANDS)) as commands:
        transfers = await commands.wait_for_type("TransferRequested", 3)
        changes = await commands.wait_for_type("PaymentTypeChangeRequested", 1)
    assert sorted(t.payload.requested_by for t in transfers) == [f"cabinet:{a}", f"cabinet:{a}", "cli:ivanova"]
    assert [c.payload.requested_by for c in changes] == [f"cabinet:{a}"]
    assert (await ledger.main_balance(a), await ledger.main_balance(b)) == (9_750, 250)


async def test_a_subscriber_token_opens_only_its_own_account(ledger: Any) -> None:
    from datetime import timedelta

    a, b = "100000000008", "100000000016"
    for number in (a, b):
        await ledger.register(number)
    async with await _client(ledger, "subscriber", a) as mine:
        assert (await mine.get(f"/ledger/accounts/{a}")).status_code == 200
        assert (await mine.get(f"/ledger/accounts/{a}/statement",
                               params={"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"})).status_code == 200
        other = await mine.get(f"/ledger/accounts/{b}")
        assert (other.status_code, other.json()["code"]) == (403, "wrong_account")
        assert (await mine.get(f"/ledger/accounts/{b}/statement",
                               params={"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"})).status_code == 403
        steal = await mine.post(f"/ledger/accounts/{b}/transfers", json={"to_account": a, "amount": {"minor": 1}})
        assert steal.status_code == 403
        operator_only = await mine.post(f"/ledger/transactions/{ledger.envelope(ledger.payment(a, 1, 'x'), a).event_id}/reverse",
                                        json={"operator": "me", "reason": "because"})
        assert (operator_only.status_code, operator_only.json()["code"]) == (403, "service_only")
        assert (await mine.post("/ledger/replays", json={"account": a})).status_code == 403
        ledger.clock.advance(timedelta(minutes=16))  # tokens live 15 minutes
        expired = await mine.get(f"/ledger/accounts/{a}")
        assert (expired.status_code, expired.json()["code"]) == (401, "token_expired")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app), base_url="http://l") as anon:
        missing = await anon.get(f"/ledger/accounts/{a}")
        assert (missing.status_code, missing.json()["code"]) == (401, "missing_token")
        assert missing.headers["www-authenticate"] == "Bearer"
        forged = await anon.get(f"/ledger/accounts/{a}", headers={"Authorization": "Bearer not.a.token"})
        assert (forged.status_code, forged.json()["code"]) == (401, "invalid_token")


async def test_replay_for_consumers_republishes_with_original_event_ids(ledger: Any) -> None:
    from billing_contracts import topics
    from billing_events.testing.kafka_probe import TopicReader

    a = "100000000008"
    await ledger.register(a)
    await ledger.pay(a, 1_000, "RP-1")
    await ledger.pay(a, 2_000, "RP-2")
    originals = await ledger.reader.wait_for_type("BalanceChanged", 2, account_number=a)
    async with await _client(ledger) as http:
        async def published() -> bool:  # the relay marks rows once the broker has them
            answer = await http.post("/ledger/replays", json={"account": a})
            return answer.json()["republished"] >= 2 if answer.status_code == 200 else False
        await eventually(published, what="events archived")
    bootstrap = ledger.runtime.settings.kafka.bootstrap_servers
    async with TopicReader(bootstrap, ledger.runtime.topics(topics.REPLAY)) as replay:
        again = await replay.wait_for_type("BalanceChanged", 2, account_number=a)
    assert {e.event_id for e in originals} <= {e.event_id for e in again}



async def test_a_relay_process_serves_health_and_metrics_but_no_api(make_settings: Any) -> None:
    from ledger.app import build_runtime
    from ledger.settings import LedgerSettings

    consumer = build_runtime(await make_settings(LedgerSettings, process_role="consumer"))
    relay = build_runtime(consumer.settings.model_copy(update={"process_role": "relay"}))
    answers = {}
    for name, runtime in (("consumer", consumer), ("relay", relay)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://l") as http:
            answers[name] = [(await http.get(path)).status_code
                             for path in ("/ledger/accounts/100000000008", "/metrics")]
        await runtime.db.dispose()
    assert answers == {"consumer": [401, 200], "relay": [404, 200]}  # 401: the API is there, wants a token


async def test_a_subscriber_redeems_bonuses_of_their_own_account_and_hears_why_not(ledger: Any) -> None:
    a, b = "100000000008", "100000000016"
    for number in (a, b):
        await ledger.register(number)
    await ledger.pay(a, 100_000, "CARD-1", channel="card")  # 1 000 ₽ by card: 200 ₽ back in bonuses
    await ledger.balance_becomes(a, 100_000)
    async with await _client(ledger, "subscriber", a) as mine:
        spent = await mine.post(f"/ledger/accounts/{a}/bonus-redemptions",
                                json={"amount": {"minor": 15_000}, "purpose": "gift", "request_id": str(uuid4())})
        assert spent.status_code == 200
        assert [e["event_type"] for e in spent.json()["events"]] == ["BalanceChanged", "BonusRedeemed"]
        too_much = await mine.post(f"/ledger/accounts/{a}/bonus-redemptions",
                                   json={"amount": {"minor": 6_000}, "purpose": "discount"})
        assert (too_much.status_code, too_much.json()["code"]) == (409, "insufficient_bonus")
        assert too_much.json()["message"] == f"{a} has 50.00 RUB in bonuses, not 60.00 RUB"
        charge = await mine.post(f"/ledger/accounts/{a}/bonus-redemptions",
                                 json={"amount": {"minor": 1}, "purpose": "charge"})
        assert (charge.status_code, charge.json()["code"]) == (422, "invalid_purpose")
        other = await mine.post(f"/ledger/accounts/{b}/bonus-redemptions",
                                json={"amount": {"minor": 1}, "purpose": "gift"})
        assert other.status_code == 403
    rejected = await ledger.reader.wait_for_type("BonusRedemptionRejected", 2, account_number=a)
    assert [(r.payload.reason, r.payload.requested.minor, r.payload.available.minor) for r in rejected] == [
        ("insufficient_bonus", 6_000, 5_000), ("invalid_purpose", 1, 5_000)]
    assert (await ledger.main_balance(a)) == 100_000


async def test_a_request_id_belongs_to_its_requester(ledger: Any) -> None:
    """Subscriber B reusing A's request id gets B's own request decided: no 409 naming A's
    accounts, and A's retry still gets A's answer; A reusing it with other content is a conflict."""
    a, b = await _two_accounts_the_first_paid(ledger, "R-1")
    c = "100000000024"
    await ledger.register(c)
    await ledger.pay(b, 4_000, "R-2")
    await ledger.balance_becomes(b, 4_000)
    await ledger.pay(a, 1_000, "R-3")  # bonuses for a redemption
    await ledger.balance_becomes(a, 11_000)
    request_id = str(uuid4())
    async with await _client(ledger, "subscriber", a) as first, await _client(ledger, "subscriber", b) as second:
        mine = await first.post(f"/ledger/accounts/{a}/transfers",
                                json={"to_account": c, "amount": {"minor": 1_000}, "request_id": request_id})
        assert mine.status_code == 200, mine.text
        theirs = await second.post(f"/ledger/accounts/{b}/transfers",
                                   json={"to_account": c, "amount": {"minor": 700}, "request_id": request_id})
        assert theirs.status_code == 200, theirs.text
        assert a not in theirs.text
        moved = [e for e in theirs.json()["events"] if e["event_type"] == "FundsTransferred"]
        assert [(e["payload"]["from_account"], e["payload"]["amount"]["minor"]) for e in moved] == [(b, 700)]
        again = await first.post(f"/ledger/accounts/{a}/transfers",
                                 json={"to_account": c, "amount": {"minor": 1_000}, "request_id": request_id})
        assert again.json() == mine.json()  # the retry's answer, nothing moved again
        changed = await first.post(f"/ledger/accounts/{a}/transfers",
                                   json={"to_account": c, "amount": {"minor": 999}, "request_id": request_id})
        assert (changed.status_code, changed.json()["code"]) == (409, "conflicting_duplicate")
        assert b not in changed.text
        redeemed = await second.post(f"/ledger/accounts/{b}/bonus-redemptions",
                                     json={"amount": {"minor": 1}, "purpose": "gift", "request_id": request_id})
        assert redeemed.json()["code"] != "conflicting_duplicate"
    assert (await ledger.main_balance(a), await ledger.main_balance(b), await ledger.main_balance(c)) == (
        10_000, 3_300, 1_700)


async def test_a_transfer_over_the_balance_is_refused_in_the_subscribers_words(ledger: Any) -> None:
    """The sentence follows the language the subscriber's token names (else the browser's, else
    English), and shows the money as money."""
    a, b = await _two_accounts_the_first_paid(ledger, "H-words")
    minter = token_minter(ledger.runtime.clock)
    transport = httpx.ASGITransport(app=ledger.runtime.http_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
        async def refused(language: str | None, **headers: str) -> tuple[str, str]:
            token = minter.issue("subscriber", a, language=language)[0]
            answer = await http.post(f"/ledger/accounts/{a}/transfers", json={"to_account": b, "amount": {"minor": 1_234_567}},
                                     headers={"Authorization": f"Bearer {token}", **headers})
            assert (answer.status_code, answer.json()["code"]) == (409, "insufficient_funds")
            return answer.headers["content-language"], answer.json()["message"]

        assert await refused("sk") == ("sk", "Na účte nie je dosť peňazí na prevod 12 345,67 ₽.")
        assert await refused("ru", **{"Accept-Language": "sk"}) == (
            "ru", "На лицевом счёте недостаточно денег, чтобы перевести 12 345,67 ₽.")
        assert (await refused(None, **{"Accept-Language": "ru-RU,ru;q=0.9"}))[0] == "ru"
        assert await refused("en") == ("en", f"{a} may transfer 100.00 RUB, not 12345.67 RUB")
        # Bonuses too: what was asked and what there is.
        token = minter.issue("subscriber", a, language="ru")[0]
        bonus = await http.post(f"/ledger/accounts/{a}/bonus-redemptions", headers={"Authorization": f"Bearer {token}"},
                                json={"purpose": "discount", "amount": {"minor": 5_000}})
        assert (bonus.status_code, bonus.json()["message"]) == (409, "На бонусном счёте 0,00 ₽, а не 50,00 ₽.")
        # A field the subscriber got wrong: the sentence in their words, the fields named.
        invalid = await http.post(f"/ledger/accounts/{a}/transfers", headers={"Authorization": f"Bearer {token}"},
                                  json={"to_account": b, "amount": {"minor": -1}})
        assert invalid.json()["message"] == "Некоторые данные в запросе указаны неверно: amount.minor."
