"""The ledger's HTTP door: the same service functions the command topic and the CLI use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from billing_events import topics
from billing_events.auth import Caller, require_account, require_service
from billing_events.catalog.common import AccountNumber
from billing_events.catalog.ledger import PaymentType
from billing_events.money import Money, PositiveMoney

from ledger import service
from ledger.domain import OperatorNote

NOT_FOUND_CODES = {"unknown_account", "unknown_transaction"}
AccountPath = Annotated[str, Path(pattern=r"^\d{12}$", description="12-digit personal account number")]


class BalanceView(BaseModel):
    account_number: str
    main: Money
    bonus: Money
    payment_type: PaymentType
    credit_limit: Money
    is_open: bool


class TransferBody(BaseModel):
    to_account: AccountNumber
    amount: PositiveMoney
    request_id: UUID | None = Field(default=None, description="Send the same id again to retry safely")
    requested_by: str = Field(default="cabinet", min_length=1, max_length=64)


class PaymentTypeBody(BaseModel):
    payment_type: PaymentType
    credit_limit: Money
    requested_by: str = Field(min_length=1, max_length=64)


class OperatorBody(BaseModel):
    operator: str = Field(min_length=1, max_length=100, description="Who does it")
    reason: str = Field(min_length=1, max_length=500, description="Why: kept in the journal")


class ResolveBody(OperatorBody):
    target_account: AccountNumber


class EventsView(BaseModel):
    events: list[dict[str, Any]]


def _events(envelopes: list[Any]) -> EventsView:
    return EventsView(events=[e.model_dump(mode="json") for e in envelopes])


def _failed(exc: service.CommandFailed) -> HTTPException:
    status = 404 if exc.code in NOT_FOUND_CODES else 422
    return HTTPException(status, detail=[{"loc": ["body", exc.field] if exc.field else ["body"],
                                          "msg": exc.message, "type": exc.code}])


class ReplayBody(BaseModel):
    account: AccountNumber | None = Field(default=None, description="One account's events; none: everyone's")
    since: datetime | None = None
    until: datetime | None = None


class ReplayView(BaseModel):
    republished: int
    topic: str


Republish = Callable[..., Awaitable[int]]


def build_router(ctx: service.LedgerContext, republish: Republish) -> APIRouter:
    router = APIRouter(prefix="/ledger", tags=["ledger"])

    @router.post("/replays", response_model=ReplayView)
    async def post_replay(caller: Caller, body: ReplayBody) -> ReplayView:
        """Publish the ledger's past events again on the replay topic, with their original ids."""
        require_service(caller)
        count = await republish(account=body.account, since=body.since, until=body.until)
        return ReplayView(republished=count, topic=ctx.topics(topics.REPLAY))

    @router.get("/accounts/{number}", response_model=BalanceView)
    async def get_balance(caller: Caller, number: AccountPath) -> BalanceView:
        require_account(caller, number)
        try:
            state = await service.balance(ctx, number)
        except service.CommandFailed as exc:
            raise _failed(exc) from None
        return BalanceView(account_number=state.number, main=Money(minor=state.main, currency=state.currency),
                           bonus=Money(minor=state.bonus, currency=state.currency), payment_type=state.payment_type,
                           credit_limit=Money(minor=state.credit_limit, currency=state.currency), is_open=state.is_open)

    @router.get("/accounts/{number}/statement")
    async def get_statement(caller: Caller, number: AccountPath, start: Annotated[datetime, Query(alias="from")],
                            end: Annotated[datetime, Query(alias="to")]) -> dict[str, Any]:
        require_account(caller, number)
        try:
            statement = await service.statement(ctx, number, start, end)
        except service.CommandFailed as exc:
            raise _failed(exc) from None
        return {
            "account": statement.account, "currency": statement.currency,
            "opening_balance": statement.opening_balance, "closing_balance": statement.closing_balance,
            "total_in": statement.total_in, "total_out": statement.total_out,
            "lines": [{"transaction_id": str(line.entry.transaction_id), "kind": line.entry.kind.value,
                       "amount": line.entry.amount, "occurred_at": line.entry.occurred_at.isoformat(),
                       "balance_after": line.balance_after} for line in statement.lines],
        }

    @router.post("/accounts/{number}/transfers", response_model=EventsView)
    async def post_transfer(caller: Caller, number: AccountPath, body: TransferBody) -> EventsView:
        require_account(caller, number)
        try:
            return _events(await service.transfer(ctx, number, body.to_account, body.amount,
                                                  requested_by=body.requested_by, request_id=body.request_id))
        except service.CommandFailed as exc:
            raise _failed(exc) from None

    @router.put("/accounts/{number}/payment-type", response_model=EventsView)
    async def put_payment_type(caller: Caller, number: AccountPath, body: PaymentTypeBody) -> EventsView:
        require_account(caller, number)
        try:
            return _events(await service.change_payment_type(ctx, number, body.payment_type, body.credit_limit,
                                                             requested_by=body.requested_by))
        except service.CommandFailed as exc:
            raise _failed(exc) from None

    @router.post("/suspense/{transaction_id}/resolve", response_model=EventsView)
    async def resolve(caller: Caller, transaction_id: UUID, body: ResolveBody) -> EventsView:
        require_service(caller)
        try:
            return _events(await service.resolve_suspense(ctx, transaction_id, body.target_account,
                                                          OperatorNote(body.operator, body.reason)))
        except service.CommandFailed as exc:
            raise _failed(exc) from None

    @router.post("/transactions/{transaction_id}/reverse", response_model=EventsView)
    async def reverse(caller: Caller, transaction_id: UUID, body: OperatorBody) -> EventsView:
        require_service(caller)
        try:
            return _events(await service.reverse(ctx, transaction_id, OperatorNote(body.operator, body.reason)))
        except service.CommandFailed as exc:
            raise _failed(exc) from None

    return router
