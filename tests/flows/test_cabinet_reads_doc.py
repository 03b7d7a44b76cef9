"""docs/cabinet-api-reads.md runs as printed: a subscriber registered through identity, who
logged in, paid and was charged, runs every curl line of the document with curl against the
suite's services over the real broker and PostgreSQL, and each answers what the document says."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from billing_events import topics
from billing_events.catalog.payments import PaymentReceived
from billing_events.envelope import Envelope
from billing_events.money import Money
from billing_events.testing.plugin import eventually
from identity import service as identity
from ledger import service as ledger
from ledger.domain import STATEMENT_COLUMNS
from tariff import service as tariff

DOCUMENT = Path(__file__).parents[2] / "docs" / "cabinet-api-reads.md"
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
PASSWORD = re.compile(r"\b[A-Za-z2-9]{12}\b")


@pytest.fixture
def start() -> datetime:
    """Inside the period the document's statement asks for (December 2026)."""
    return datetime(2026, 12, 10, 6, 0, tzinfo=UTC)


def documented_requests() -> list[str]:
    return [line for block in SHELL_BLOCK.findall(DOCUMENT.read_text(encoding="utf-8"))
            for line in block.splitlines() if line.startswith("curl ")]


async def _subscriber_who_paid_and_was_charged(suite: Any, form: dict[str, Any]) -> tuple[str, str]:
    """(account, token from identity's login)."""
    number = (await identity.register(suite.identity_context, form)).account_number
    await eventually(lambda: suite.ledger_account_open(number), what="ledger account opened")
    await eventually(lambda: _is(suite.tariff_balance(number), 0), what="tariff subscription")
    payment = PaymentReceived(account_number=number, channel="terminal", reference="DOC-1",
                              amount=Money(minor=100_000), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))
    await eventually(lambda: _is(suite.tariff_balance(number), 100_000), what="the payment known to the tariff")
    await tariff.activate_plan(suite.tariff_context, tariff.ActivatePlan(account_number=number, plan="internet-100"))
    suite.clock.advance(timedelta(days=2))
    await tariff.close_days(suite.tariff_context, suite.tariff_context.billing_day() - timedelta(days=1))
    await eventually(lambda: _is(suite.ledger_balance(number), 100_000 - 1_774), what="the day's charge posted")
    initial = await eventually(lambda: [m for m in suite.messages() if "password" in m["template"]],
                               what="initial password delivered")
    async with httpx.AsyncClient(base_url=suite.urls()["identity"]) as http:
        login = await http.post("/identity/login", json={"login": number, "password": PASSWORD.findall(initial[0]["body"])[0]},
                                headers={"X-Forwarded-For": "198.51.100.7"})
    assert login.status_code == 200, login.text
    return number, login.json()["token"]


async def _is(value: Any, expected: int) -> bool:
    return await value == expected


async def test_every_request_of_the_document_runs_as_printed(suite: Any, form: dict[str, Any], tmp_path: Path) -> None:
    number, token = await _subscriber_who_paid_and_was_charged(suite, form)
    statement = await ledger.statement(suite.ledger_context, number, datetime(2026, 12, 1, tzinfo=UTC),
                                       datetime(2027, 1, 1, tzinfo=UTC))
    payment = next(line.entry.transaction_id for line in statement.lines if line.entry.kind.value == "payment")
    (tmp_path / ".curlrc").write_text('write-out = "\\n%{http_code}"\n')
    env = {"PATH": os.environ["PATH"], "CURL_HOME": str(tmp_path), "HOME": str(tmp_path), "TOKEN": token,
           "ACCOUNT": number, "PAYMENT": str(payment), "LEDGER": suite.urls()["ledger"],
           "TARIFF": suite.urls()["tariff"]}
    requests = documented_requests()
    assert len(requests) == 9
    for request in requests:
        process = await asyncio.create_subprocess_exec("bash", "-c", request, env=env, cwd=tmp_path,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        body, _, status = out.decode().rpartition("\n")
        assert (process.returncode, status) == (0, "200"), f"{request}: {status} {body} {err.decode()}"
        if " -o statement.csv" in request:
            body = (tmp_path / "statement.csv").read_text()
        if " -o receipt.pdf" in request:
            text = "".join(page.extract_text() for page in PdfReader(tmp_path / "receipt.pdf").pages)
            assert number in text and "1000.00 RUB" in text, request
        elif "statement" in request and ("csv" in request):
            rows = list(csv.DictReader(io.StringIO(body)))
            assert tuple(rows[0]) == STATEMENT_COLUMNS
            assert [row["charged_for"] for row in rows if row["kind"] == "charge"] == ["plan internet-100"]
        elif "/forecast" in request:
            assert '"daily_fee":{"minor":1774,"currency":"RUB"}' in body, body
        else:
            assert number in body, request
