"""The cabinet's reads of the ledger: the bonus history, the statement with what each charge paid
for (JSON and CSV) and a receipt for any payment (JSON and PDF), each for its own account only:
over the broker, on PostgreSQL and on SQLite."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from billing_events.testing.plugin import bearer_token
from ledger.domain import STATEMENT_COLUMNS
from ledger.settings import LedgerSettings

from .conftest import LedgerDriver, running_ledger

OWNER, OTHER = "100000000008", "100000000016"
CAMPAIGN = "20 % back on card and e-wallet payments"  # the default campaigns file's
YEAR = {"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}


@pytest.fixture(params=["postgresql", "sqlite"])
async def cabinet_ledger(request: pytest.FixtureRequest, make_settings: Any, clock: Any,
                         bootstrap_servers: str) -> AsyncIterator[LedgerDriver]:
    settings = await make_settings(LedgerSettings, database=request.param, bonus_pays_charges=True)
    async with running_ledger(settings, clock, bootstrap_servers) as driver:
        yield driver


def rub(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "RUB"}


def _client(ledger: LedgerDriver, role: str | None = "subscriber", subject: str = OWNER) -> httpx.AsyncClient:
    headers = {}
    if role is not None:
        token = bearer_token(ledger.runtime.clock, role, subject)
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.runtime.http_app), base_url="http://ledger",
                             headers=headers)


async def _history_of_payments_charges_and_a_gift(ledger: LedgerDriver) -> None:
    """OWNER pays 1000.00 by card (200.00 bonus), is charged 250.00 for a day of its plan (the
    bonus pays 200.00 of it, the main balance 50.00), pays 600.00 by card the next day (120.00
    bonus) and exchanges 30.00 of bonuses for a gift; OTHER pays 10.00 at a terminal."""
    for number in (OWNER, OTHER):
        await ledger.register(number)
    await ledger.pay(OWNER, 100_000, "CARD-1", channel="card")
    await ledger.balance_becomes(OWNER, 100_000)
    ledger.clock.advance(timedelta(hours=1))
    await ledger.charge(OWNER, 25_000, f"{OWNER}:2026-12-10:subscription:internet-100")
    await ledger.balance_becomes(OWNER, 95_000)
    ledger.clock.advance(timedelta(days=1))
    await ledger.pay(OWNER, 60_000, "CARD-2", channel="card")
    await ledger.pay(OTHER, 1_000, "TERM-9")
    await ledger.balance_becomes(OWNER, 155_000)
    await ledger.balance_becomes(OTHER, 1_000)
    async with _client(ledger) as mine:
        gift = await mine.post(f"/ledger/accounts/{OWNER}/bonus-redemptions",
                               json={"amount": {"minor": 3_000}, "purpose": "gift", "description": "a mug"})
    assert gift.status_code == 200, gift.text


async def test_the_owner_reads_how_bonuses_were_earned_and_spent(cabinet_ledger: LedgerDriver) -> None:
    ledger = cabinet_ledger
    await _history_of_payments_charges_and_a_gift(ledger)
    async with _client(ledger) as mine:
        answer = await mine.get(f"/ledger/accounts/{OWNER}/bonus-history")
        statement = (await mine.get(f"/ledger/accounts/{OWNER}/statement", params=YEAR)).json()
    assert answer.status_code == 200, answer.text
    history = answer.json()
    assert (history["earned"], history["spent"], history["bonus_balance"]) == (rub(32_000), rub(23_000), rub(9_000))
    lines = history["lines"]
    assert [(line["change"], line["amount"]["minor"], line["bonus_balance_after"]["minor"]) for line in lines] == [
        ("earned", 20_000, 20_000), ("spent", -20_000, 0), ("earned", 12_000, 12_000), ("spent", -3_000, 9_000)]
    payments = [line for line in statement["lines"] if line["kind"] == "payment"]
    for earned, payment, reference, paid in ((lines[0], payments[0], "CARD-1", 100_000),
                                             (lines[2], payments[1], "CARD-2", 60_000)):
        assert earned["campaign"] == CAMPAIGN
        assert earned["payment"] == {"transaction_id": payment["transaction_id"], "channel": "card",
                                     "reference": reference, "amount": rub(paid)}
    assert (lines[1]["purpose"], lines[1]["charge"]) == (
        "charge", {"billing_day": "2026-12-10", "charged_for": "plan internet-100"})
    assert (lines[3]["purpose"], lines[3]["charge"], lines[3]["campaign"]) == ("gift", None, None)
    assert lines[3]["request_id"] is not None


async def test_the_statement_names_each_charges_item_and_day_totals_and_csv(cabinet_ledger: LedgerDriver) -> None:
    ledger = cabinet_ledger
    await _history_of_payments_charges_and_a_gift(ledger)
    async with _client(ledger) as mine:
        whole = (await mine.get(f"/ledger/accounts/{OWNER}/statement", params=YEAR)).json()
        second_day = (await mine.get(f"/ledger/accounts/{OWNER}/statement",
                                     params={"from": "2026-12-11T00:00:00Z", "to": "2026-12-12T00:00:00Z"})).json()
        by_accept = await mine.get(f"/ledger/accounts/{OWNER}/statement", params=YEAR, headers={"Accept": "text/csv"})
        by_query = await mine.get(f"/ledger/accounts/{OWNER}/statement", params={**YEAR, "format": "csv"})
    assert [(line["kind"], line["amount"], line["balance_after"], line["billing_day"], line["charged_for"])
            for line in whole["lines"]] == [("payment", 100_000, 100_000, "", ""),
                                            ("charge", -5_000, 95_000, "2026-12-10", "plan internet-100"),
                                            ("payment", 60_000, 155_000, "", "")]
    assert (whole["opening_balance"], whole["total_in"], whole["total_out"], whole["closing_balance"]) == (
        0, 160_000, 5_000, 155_000)
    assert [line["amount"] for line in second_day["lines"]] == [60_000]
    assert (second_day["opening_balance"], second_day["closing_balance"]) == (95_000, 155_000)
    for answer in (by_accept, by_query):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert tuple(rows[0]) == STATEMENT_COLUMNS
        assert rows == [{key: str(value) for key, value in line.items()} for line in whole["lines"]]


async def test_a_receipt_for_any_payment_as_json_and_as_a_pdf(cabinet_ledger: LedgerDriver) -> None:
    ledger = cabinet_ledger
    await _history_of_payments_charges_and_a_gift(ledger)
    async with _client(ledger) as mine:
        lines = (await mine.get(f"/ledger/accounts/{OWNER}/statement", params=YEAR)).json()["lines"]
        first, charge, second = (line["transaction_id"] for line in lines)
        receipts = f"/ledger/accounts/{OWNER}/payments"
        as_json = await mine.get(f"{receipts}/{second}/receipt")
        pdfs = [await mine.get(f"{receipts}/{first}/receipt", headers={"Accept": "application/pdf"}),
                await mine.get(f"{receipts}/{first}/receipt", params={"format": "pdf"}),
                await mine.get(f"{receipts}/{first}/receipt.pdf")]
        not_a_payment = await mine.get(f"{receipts}/{charge}/receipt")
    assert as_json.status_code == 200, as_json.text
    receipt = as_json.json()
    assert (receipt["account"], receipt["amount"], receipt["bonus_accrued"], receipt["balance_after"],
            receipt["channel"], receipt["reference"]) == (OWNER, 60_000, 12_000, 155_000, "card", "CARD-2")
    for pdf in pdfs:
        assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        assert OWNER in text and "1000.00 RUB" in text and "CARD-1" in text
        assert "Balance after the payment" in text and "200.00 RUB" in text  # the bonus it earned
    assert (not_a_payment.status_code, not_a_payment.json()["code"]) == (404, "unknown_transaction")


async def test_each_read_is_for_its_own_account_only(cabinet_ledger: LedgerDriver) -> None:
    ledger = cabinet_ledger
    await _history_of_payments_charges_and_a_gift(ledger)
    async with _client(ledger, "service", "operations") as operations:
        lines = (await operations.get(f"/ledger/accounts/{OTHER}/statement", params=YEAR)).json()["lines"]
        others_payment = lines[0]["transaction_id"]
        mine_lines = (await operations.get(f"/ledger/accounts/{OWNER}/statement", params=YEAR)).json()["lines"]
        my_payment = mine_lines[0]["transaction_id"]
        # a payment of another account is not found under this one, even for a service
        crossed = await operations.get(f"/ledger/accounts/{OWNER}/payments/{others_payment}/receipt")
        assert (crossed.status_code, crossed.json()["code"]) == (404, "unknown_transaction")
        assert (await operations.get(f"/ledger/accounts/{OWNER}/bonus-history")).status_code == 200
    reads = [("GET", f"/ledger/accounts/{OWNER}/bonus-history", {}),
             ("GET", f"/ledger/accounts/{OWNER}/statement", YEAR),
             ("GET", f"/ledger/accounts/{OWNER}/statement", {**YEAR, "format": "csv"}),
             ("GET", f"/ledger/accounts/{OWNER}/payments/{my_payment}/receipt", {}),
             ("GET", f"/ledger/accounts/{OWNER}/payments/{my_payment}/receipt.pdf", {})]
    async with _client(ledger) as owner, _client(ledger, subject=OTHER) as other, _client(ledger, None) as anonymous:
        for method, path, params in reads:
            assert (await owner.request(method, path, params=params)).status_code == 200, path
            refused = await other.request(method, path, params=params)
            assert (refused.status_code, refused.json()["code"]) == (403, "wrong_account"), path
            missing = await anonymous.request(method, path, params=params)
            assert (missing.status_code, missing.json()["code"]) == (401, "missing_token"), path
        ledger.clock.advance(timedelta(minutes=16))  # tokens live 15 minutes
        for method, path, params in reads:
            expired = await owner.request(method, path, params=params)
            assert (expired.status_code, expired.json()["code"]) == (401, "token_expired"), path


async def test_the_openapi_says_a_subscriber_token_may_call_each_read(make_settings: Any, clock: Any) -> None:
    from ledger.app import build_runtime

    runtime = build_runtime(await make_settings(LedgerSettings, database="sqlite"), clock)
    paths = runtime.http_app.openapi()["paths"]
    for path in ("/ledger/accounts/{number}/bonus-history", "/ledger/accounts/{number}/statement",
                 "/ledger/accounts/{number}/payments/{transaction_id}/receipt",
                 "/ledger/accounts/{number}/payments/{transaction_id}/receipt.pdf"):
        assert "subscriber" in paths[path]["get"]["x-callers"], path
    assert "text/csv" in paths["/ledger/accounts/{number}/statement"]["get"]["responses"]["200"]["content"]
