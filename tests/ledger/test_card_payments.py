"""Card payments from the cabinet: the subscriber's token opens an intent, the acquirer's signed
callback settles it. An approval is exactly one PaymentReceived (channel card, the acquirer's
reference), staged in the transaction that marks the intent paid and taken by the ledger from the
payments topic like any channel's (so the "20 % back" campaign rewards it); a decline moves no
money; a repeat changes nothing; a forged, replayed, mismatched or unknown callback is refused.
Over the broker, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from billing_contracts import topics
from billing_contracts.money import Money
from billing_events.schema import outbox
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import bearer_token, eventually
from ledger import service, store
from ledger.acquirer import SIGNATURE_HEADER, Acquirer, callback_body
from ledger.domain import CommandRefused, ErrorCode
from ledger.domain.card import Callback, CardIntent, IntentStatus, Verdict, check_fresh, settle
from ledger.settings import LedgerSettings

from .conftest import START, LedgerDriver, running_ledger

OWNER, OTHER = "100000000008", "100000000016"
SECRET = "test-card-callback-secret-of-this-module-only"
ACQUIRER = Acquirer(secret=SECRET.encode(), page_url=None)
CAMPAIGN_MINIMUM = 50_000  # 500.00 RUB: the packaged "20 % back" campaign rewards card payments from it


@pytest.fixture(params=["postgresql", "sqlite"])
async def ledger(request: pytest.FixtureRequest, make_settings: Any, clock: Any,
                 bootstrap_servers: str) -> AsyncIterator[LedgerDriver]:
    settings = await make_settings(LedgerSettings, database=request.param, card_callback_secret=SECRET)
    async with running_ledger(settings, clock, bootstrap_servers) as driver:
        for number in (OWNER, OTHER):
            await driver.register(number)
        yield driver


def _door(ledger: LedgerDriver, account: str | None = OWNER) -> httpx.AsyncClient:
    """The ledger's HTTP door: as the subscriber ``account`` (None: as the acquirer, no token)."""
    headers = {} if account is None else {"Authorization": f"Bearer {bearer_token(ledger.clock, 'subscriber', account)}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app), base_url="http://ledger",
                             headers=headers)


async def _open(ledger: LedgerDriver, minor: int, account: str = OWNER) -> CardIntent:
    async with _door(ledger, account) as cabinet:
        answer = await cabinet.post("/ledger/card-payments", json={"amount": {"minor": minor, "currency": "RUB"}})
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert (opened["account_number"], opened["status"]) == (account, "open")
    assert opened["pay_url"] == f"/ledger/dev-acquirer/{opened['intent_id']}"  # no acquirer set: the development page
    async with ledger.runtime.db.connect() as conn:
        intent = await store.card_intent(conn, UUID(opened["intent_id"]))
    assert intent is not None
    return intent


async def _callback(ledger: LedgerDriver, body: bytes, signature: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature or ACQUIRER.signature(body)}
    async with _door(ledger, None) as acquirer:
        return await acquirer.post("/ledger/card-payments/callbacks", content=body, headers=headers)


def _body(ledger: LedgerDriver, intent: CardIntent, verdict: Verdict = Verdict.APPROVED,
          reference: str = "ACQ-1") -> bytes:
    return callback_body(intent, verdict, reference, ledger.clock.now())


async def _card_payments_kept(ledger: LedgerDriver) -> int:
    """The card payments the ledger's outbox holds (what it published and archives)."""
    async with ledger.runtime.db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.topic == ledger.runtime.topics(topics.PAYMENTS))) or 0)


async def _bonus(ledger: LedgerDriver, number: str) -> int:
    async with ledger.runtime.db.connect() as conn:
        state = await store.account(conn, number)
    assert state is not None
    return state.bonus


async def test_an_approval_is_one_card_payment_credited_like_any_channels(ledger: LedgerDriver,
                                                                         bootstrap_servers: str) -> None:
    intent = await _open(ledger, 12_345)
    async with TopicReader(bootstrap_servers, ledger.runtime.topics(topics.PAYMENTS)) as payments:
        answer = await _callback(ledger, _body(ledger, intent))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"intent_id": str(intent.intent_id), "status": "paid", "repeat": False}
        published = await payments.wait_for_type("PaymentReceived")
    payment = published[0]
    assert (payment.payload.channel, payment.payload.reference, payment.payload.amount.minor) == ("card", "ACQ-1", 12_345)
    assert (payment.account, payment.producer) == (OWNER, "ledger")  # signed by the ledger's key, which it holds
    await ledger.balance_becomes(OWNER, 12_345)
    await ledger.reader.wait_for_type("BalanceChanged", account_number=OWNER, credited_payment=True)
    async with _door(ledger) as cabinet:
        shown = (await cabinet.get(f"/ledger/card-payments/{intent.intent_id}")).json()
    assert (shown["status"], shown["acquirer_reference"]) == ("paid", "ACQ-1")
    assert await _card_payments_kept(ledger) == 1  # the one it staged: taking it back does not keep it again
    assert await ledger.dead_letter_reasons() == []


async def test_a_decline_ends_the_intent_without_money(ledger: LedgerDriver) -> None:
    intent = await _open(ledger, 20_000)
    answer = await _callback(ledger, _body(ledger, intent, Verdict.DECLINED))
    assert answer.json() == {"intent_id": str(intent.intent_id), "status": "declined", "repeat": False}
    again = await _callback(ledger, _body(ledger, intent, Verdict.DECLINED))
    assert (again.status_code, again.json()["repeat"]) == (200, True)
    approved_after = await _callback(ledger, _body(ledger, intent, Verdict.APPROVED))
    assert (approved_after.status_code, approved_after.json()["code"]) == (409, "intent_already_settled")
    assert await _card_payments_kept(ledger) == 0
    assert await ledger.main_balance(OWNER) == 0


async def test_a_callback_sent_twice_is_answered_twice_and_pays_once(ledger: LedgerDriver) -> None:
    intent = await _open(ledger, 30_000)
    body = _body(ledger, intent)
    first, second = await _callback(ledger, body), await _callback(ledger, body)
    assert (first.status_code, first.json()["repeat"]) == (200, False)
    assert (second.status_code, second.json()) == (200, {"intent_id": str(intent.intent_id), "status": "paid",
                                                         "repeat": True})
    await ledger.balance_becomes(OWNER, 30_000)
    # another approval of the paid intent (another reference: a second charge) is no repeat: refused
    other = await _callback(ledger, _body(ledger, intent, reference="ACQ-2"))
    assert (other.status_code, other.json()["code"]) == (409, "intent_already_settled")
    declined_after = await _callback(ledger, _body(ledger, intent, Verdict.DECLINED))
    assert (declined_after.status_code, declined_after.json()["code"]) == (409, "intent_already_settled")
    assert await _card_payments_kept(ledger) == 1
    assert await ledger.main_balance(OWNER) == 30_000


async def test_forged_replayed_unknown_and_mismatched_callbacks_are_refused(ledger: LedgerDriver) -> None:
    intent = await _open(ledger, 40_000)
    body = _body(ledger, intent)
    forged = await _callback(ledger, body, Acquirer(secret=b"x" * 40, page_url=None).signature(body))
    unsigned = await _callback(ledger, body, "sha256=")
    altered = await _callback(ledger, body.replace(b"40000", b"99999"), ACQUIRER.signature(body))
    assert [(a.status_code, a.json()["code"]) for a in (forged, unsigned, altered)] == [
        (401, "bad_callback_signature")] * 3
    unknown = await _callback(ledger, callback_body(
        CardIntent(intent_id=uuid4(), account=OWNER, amount=intent.amount, status=IntentStatus.OPEN,
                   created_at=intent.created_at), Verdict.APPROVED, "ACQ-X", ledger.clock.now()))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_intent")
    more = await _callback(ledger, callback_body(replace(intent, amount=intent.amount.model_copy(update={"minor": 40_001})),
                                                 Verdict.APPROVED, "ACQ-1", ledger.clock.now()))
    assert (more.status_code, more.json()["code"]) == (409, "callback_amount_mismatch")
    # the account is the intent's: a callback naming one, even signed, is no callback the ledger reads
    naming = body[:-1] + f', "account_number": "{OTHER}"}}'.encode()
    redirected = await _callback(ledger, naming)
    assert (redirected.status_code, redirected.json()["code"]) == (422, "malformed_callback")
    # a genuine callback captured and sent again past the window is a replay, whatever its signature
    ledger.clock.advance(timedelta(minutes=6))
    replayed = await _callback(ledger, body)
    assert (replayed.status_code, replayed.json()["code"]) == (401, "stale_callback")
    assert await _card_payments_kept(ledger) == 0
    async with _door(ledger) as cabinet:
        assert (await cabinet.get(f"/ledger/card-payments/{intent.intent_id}")).json()["status"] == "open"
    fresh = await _callback(ledger, _body(ledger, intent))  # the acquirer's own, sent now
    assert fresh.status_code == 200
    await ledger.balance_becomes(OWNER, 40_000)


async def test_the_account_is_the_tokens(ledger: LedgerDriver) -> None:
    """No request names the account: an intent is for the token's account, another's is unknown to it."""
    async with _door(ledger) as cabinet:
        named = await cabinet.post("/ledger/card-payments", json={"amount": {"minor": 100}, "account_number": OTHER})
        assert (named.status_code, named.json()["errors"][0]["code"]) == (422, "extra_forbidden")
    others = await _open(ledger, 5_000, account=OTHER)
    async with _door(ledger) as cabinet:
        peek = await cabinet.get(f"/ledger/card-payments/{others.intent_id}")
    assert (peek.status_code, peek.json()["code"]) == (404, "unknown_intent")
    service_token = bearer_token(ledger.clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app), base_url="http://ledger",
                                 headers={"Authorization": f"Bearer {service_token}"}) as operations:
        refused = await operations.post("/ledger/card-payments", json={"amount": {"minor": 100}})
    assert (refused.status_code, refused.json()["code"]) == (403, "subscriber_only")
    async with _door(ledger, None) as anonymous:
        assert (await anonymous.post("/ledger/card-payments", json={"amount": {"minor": 100}})).status_code == 401
    async with _door(ledger, "100000000099") as stranger:  # a token for an account the ledger does not have
        unknown = await stranger.post("/ledger/card-payments", json={"amount": {"minor": 100}})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_account")
    async with _door(ledger, "12345") as odd:  # a subject that is no account number: the request's fault
        malformed = await odd.post("/ledger/card-payments", json={"amount": {"minor": 100}})
    assert (malformed.status_code, malformed.json()["code"]) == (422, "invalid_request")


@pytest.mark.parametrize(("minor", "after_campaign", "bonus"), [
    (CAMPAIGN_MINIMUM, False, 10_000),       # 20 % of 500.00
    (CAMPAIGN_MINIMUM - 1, False, 0),        # under the campaign's minimum
    (CAMPAIGN_MINIMUM, True, 0),             # after the campaign ended (28 February 2027, Moscow)
])
async def test_the_campaign_gives_its_bonus_on_a_card_payment(ledger: LedgerDriver, minor: int, after_campaign: bool,
                                                              bonus: int) -> None:
    if after_campaign:
        ledger.clock.advance(timedelta(days=90))
    intent = await _open(ledger, minor)
    assert (await _callback(ledger, _body(ledger, intent))).status_code == 200
    await ledger.balance_becomes(OWNER, minor)
    assert await _bonus(ledger, OWNER) == bonus


async def test_the_development_acquirer_page_sends_signed_callbacks(ledger: LedgerDriver) -> None:
    intent = await _open(ledger, 60_000)
    async with _door(ledger, None) as browser:
        page = await browser.get(f"/ledger/dev-acquirer/{intent.intent_id}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for action in ("approve", "decline", "approve-twice"):
            assert f'/ledger/dev-acquirer/{intent.intent_id}/{action}"' in page.text
        twice = await browser.post(f"/ledger/dev-acquirer/{intent.intent_id}/approve-twice")
        declined = await browser.post(f"/ledger/dev-acquirer/{intent.intent_id}/decline")
    assert [(c["status"], c["answer"].get("repeat")) for c in twice.json()["callbacks"]] == [(200, False), (200, True)]
    assert [(c["status"], c["answer"]["code"]) for c in declined.json()["callbacks"]] == [(409, "intent_already_settled")]
    await ledger.balance_becomes(OWNER, 60_000)
    assert await _card_payments_kept(ledger) == 1


async def test_an_approval_committed_but_never_answered_pays_once_after_the_restart(
    make_settings: Any, clock: Any, bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger runs without its relay (a consumer process, the relay down) and dies after the
    callback's transaction commits, before it answers. The payment is in the outbox: the ledger
    started again publishes it and credits it once, and the acquirer's retry is a repeat."""
    settings = await make_settings(LedgerSettings, card_callback_secret=SECRET, process_role="consumer",
                                   outbox_poll_seconds=3600)
    settle = service.settle_card_payment

    async def settle_then_die(*args: Any) -> Any:
        await settle(*args)
        raise SystemExit("the process dies between the commit and the answer")

    async with running_ledger(settings, clock, bootstrap_servers) as ledger:
        await ledger.register(OWNER)
        intent = await _open(ledger, 70_000)
        body = _body(ledger, intent)
        monkeypatch.setattr(service, "settle_card_payment", settle_then_die)
        with pytest.raises(SystemExit):
            await _callback(ledger, body)
        monkeypatch.setattr(service, "settle_card_payment", settle)
        assert await ledger.main_balance(OWNER) == 0  # staged, not published: nobody took it yet
    restarted = settings.model_copy(update={"process_role": "all", "outbox_poll_seconds": 0.5})
    async with running_ledger(restarted, clock, bootstrap_servers) as ledger:
        await ledger.balance_becomes(OWNER, 70_000)
        retry = await _callback(ledger, body)
        assert (retry.status_code, retry.json()["repeat"]) == (200, True)
        await eventually(lambda: _announced_once(ledger), what="the payment announced once")
        assert await _card_payments_kept(ledger) == 1
        assert await ledger.main_balance(OWNER) == 70_000


async def _announced_once(ledger: LedgerDriver) -> bool:
    credited = [e for e in ledger.reader.envelopes if e.event_type == "BalanceChanged" and e.payload.credited_payment]
    return len(credited) == 1


def test_the_cabinet_is_sent_to_the_acquirers_page_with_the_intent() -> None:
    intent = CardIntent(intent_id=UUID("0190a0a0-0000-7000-8000-000000000001"), account=OWNER,
                        amount=Money(minor=50_000), status=IntentStatus.OPEN, created_at=START)
    acquirer = Acquirer(secret=SECRET.encode(), page_url="https://pay.acquirer.example/checkout?shop=7")
    assert acquirer.pay_url(intent) == ("https://pay.acquirer.example/checkout?shop=7"
                                        "&intent=0190a0a0-0000-7000-8000-000000000001&amount=50000&currency=RUB")
    assert ACQUIRER.pay_url(intent) == "/ledger/dev-acquirer/0190a0a0-0000-7000-8000-000000000001"


def test_an_intent_settles_once_whatever_the_acquirer_sends_after() -> None:
    """The domain alone: open → paid or declined, the same verdict again a repeat, any other a conflict."""
    opened = CardIntent(intent_id=uuid4(), account=OWNER, amount=Money(minor=500), status=IntentStatus.OPEN,
                        created_at=START)

    def callback(verdict: Verdict, reference: str = "R-1", minor: int = 500) -> Callback:
        return Callback(intent_id=opened.intent_id, verdict=verdict, amount=Money(minor=minor), reference=reference,
                        sent_at=START)

    paid = settle(opened, callback(Verdict.APPROVED), START)
    assert (paid.intent.status, paid.intent.acquirer_reference, paid.pays, paid.repeat) == (IntentStatus.PAID, "R-1",
                                                                                            True, False)
    assert settle(paid.intent, callback(Verdict.APPROVED), START).repeat
    declined = settle(opened, callback(Verdict.DECLINED), START)
    assert (declined.intent.status, declined.pays) == (IntentStatus.DECLINED, False)
    assert settle(declined.intent, callback(Verdict.DECLINED), START).repeat
    for settled, verdict, reference in ((paid.intent, Verdict.APPROVED, "R-2"), (paid.intent, Verdict.DECLINED, "R-1"),
                                        (declined.intent, Verdict.APPROVED, "R-1")):
        with pytest.raises(CommandRefused) as refused:
            settle(settled, callback(verdict, reference), START)
        assert refused.value.code == ErrorCode.INTENT_ALREADY_SETTLED
    with pytest.raises(CommandRefused) as mismatch:
        settle(opened, callback(Verdict.APPROVED, minor=501), START)
    assert mismatch.value.code == ErrorCode.CALLBACK_AMOUNT_MISMATCH
    with pytest.raises(CommandRefused) as unknown:
        settle(None, callback(Verdict.APPROVED), START)
    assert unknown.value.code == ErrorCode.UNKNOWN_INTENT
    check_fresh(callback(Verdict.APPROVED), START + timedelta(minutes=5), timedelta(minutes=5))
    for off in (timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)):
        with pytest.raises(CommandRefused) as stale:
            check_fresh(callback(Verdict.APPROVED), START + off, timedelta(minutes=5))
        assert stale.value.code == ErrorCode.STALE_CALLBACK
