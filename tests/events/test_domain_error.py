"""One error for every service's rules: its kind alone decides the HTTP answer and the dead letter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.topics import TopicNames
from billing_events.clock import ManualClock
from billing_events.consumer import EventRouter
from billing_contracts.envelope import Envelope
from billing_events.errors import HTTP_STATUS, DomainError, ErrorKind
from billing_events.http import build_http_app
from billing_events.unit_of_work import UnitOfWork
from billing_contracts.money import Money


class Locked(DomainError):
    code = "locked"
    kind = ErrorKind.THROTTLED

    def __init__(self, until: datetime) -> None:
        super().__init__("locked for a while")
        self.until = until

    def details(self) -> dict[str, Any]:
        return {"until": self.until.isoformat()}


async def _ready() -> dict[str, bool]:
    return {"database": True}


@pytest.mark.parametrize("kind", list(ErrorKind))
async def test_every_kind_has_its_status_and_a_named_field_is_listed(kind: ErrorKind) -> None:
    router = APIRouter()

    @router.get("/refuse")
    async def refuse() -> None:
        raise DomainError("the plan is not sold here", code="plan_not_sold", field="plan", kind=kind)

    app = build_http_app("probe", _ready, [router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        answer = await client.get("/refuse")
    assert answer.status_code == HTTP_STATUS[kind]
    assert answer.json() == {"code": "plan_not_sold", "message": "the plan is not sold here",
                             "errors": [{"field": "plan", "message": "the plan is not sold here",
                                         "code": "plan_not_sold"}]}


async def test_a_subclass_names_its_code_kind_and_details() -> None:
    router = APIRouter()
    until = datetime(2026, 11, 28, 12, 15, tzinfo=UTC)

    @router.get("/refuse")
    async def refuse() -> None:
        raise Locked(until)

    app = build_http_app("probe", _ready, [router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        answer = await client.get("/refuse")
    assert answer.status_code == 429
    assert answer.json() == {"code": "locked", "message": "locked for a while", "errors": [],
                             "until": "2026-11-28T12:15:00+00:00"}


class _Savepoint:
    async def rollback(self) -> None:
        self.rolled_back = True

    async def commit(self) -> None:
        raise AssertionError("a refused event must not commit its savepoint")


class _Connection:
    def __init__(self) -> None:
        self.savepoint = _Savepoint()

    async def begin_nested(self) -> _Savepoint:
        return self.savepoint


async def test_a_router_dead_letters_a_domain_error_with_its_code_and_undoes_the_event() -> None:
    async def refuse(uow: Any, envelope: Envelope[PaymentReceived]) -> None:
        raise DomainError("no such account here", code="unknown_account", kind=ErrorKind.NOT_FOUND)

    clock = ManualClock(datetime(2026, 11, 28, tzinfo=UTC))
    payment = PaymentReceived(account_number="100000000008", channel="terminal", reference="R-1",
                              amount=Money(minor=10000, currency="RUB"), received_at=clock.now())
    envelope = Envelope.new(payment, account="100000000008", producer="payments", clock=clock)
    conn = _Connection()
    uow = UnitOfWork(conn, "test", TopicNames(), clock)  # type: ignore[arg-type]
    outcome = await EventRouter({PaymentReceived: refuse})(uow, [envelope])
    assert uow.staged == []
    assert [(e.event_id, r.code, r.message) for e, r in outcome.rejected] == [
        (envelope.event_id, "unknown_account", "no such account here")]
    assert conn.savepoint.rolled_back
