"""The ledger's HTTP door: the same service functions the command topic and the CLI use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from billing_events import topics
from billing_events.auth import Caller, Principal, as_credentials_say, require_account, require_service
from billing_events.catalog.common import AccountNumber
from billing_events.catalog.ledger import (
    BonusRedemptionRefusal,
    BonusRedemptionRejected,
    PaymentType,
    RedemptionPurpose,
    TransferRefusal,
    TransferRejected,
)
from billing_events.catalog.payments import PaymentChannel
from billing_events.errors import DomainError, ErrorKind
from billing_events.http import AccountPath, ApiError, RequestBody, problem_responses
from billing_events.money import Money, PositiveMoney

from ledger import service
from ledger.context import LedgerContext
from ledger.domain import BonusCampaign, OperatorNote, input_errors

# A request the ledger refused with an event (TransferRejected, BonusRedemptionRejected): what kind
# of refusal each reason is for the caller, and the field of the request's body it is about.
TRANSFER_REFUSALS: dict[TransferRefusal, tuple[ErrorKind, str | None]] = {
    TransferRefusal.SAME_ACCOUNT: (ErrorKind.INVALID, "to_account"),
    TransferRefusal.SOURCE_UNKNOWN: (ErrorKind.NOT_FOUND, None),
    TransferRefusal.TARGET_UNKNOWN: (ErrorKind.NOT_FOUND, "to_account"),
    TransferRefusal.SOURCE_CLOSED: (ErrorKind.CONFLICT, None),
    TransferRefusal.TARGET_CLOSED: (ErrorKind.CONFLICT, "to_account"),
    TransferRefusal.CURRENCY_MISMATCH: (ErrorKind.INVALID, "amount.currency"),
    TransferRefusal.INSUFFICIENT_FUNDS: (ErrorKind.CONFLICT, "amount.minor"),
    TransferRefusal.CREDIT_NOT_TRANSFERABLE: (ErrorKind.CONFLICT, "amount.minor"),
}
REDEMPTION_REFUSALS: dict[BonusRedemptionRefusal, tuple[ErrorKind, str | None]] = {
    BonusRedemptionRefusal.UNKNOWN_ACCOUNT: (ErrorKind.NOT_FOUND, None),
    BonusRedemptionRefusal.ACCOUNT_CLOSED: (ErrorKind.CONFLICT, None),
    BonusRedemptionRefusal.CURRENCY_MISMATCH: (ErrorKind.INVALID, "amount.currency"),
    BonusRedemptionRefusal.INVALID_PURPOSE: (ErrorKind.INVALID, "purpose"),
    BonusRedemptionRefusal.INSUFFICIENT_BONUS: (ErrorKind.CONFLICT, "amount.minor"),
}
REFUSALS: dict[str, dict[Any, tuple[ErrorKind, str | None]]] = {
    "TransferRejected": TRANSFER_REFUSALS, "BonusRedemptionRejected": REDEMPTION_REFUSALS,
}


class BalanceView(BaseModel):
    account_number: str
    main: Money
    bonus: Money
    payment_type: PaymentType
    credit_limit: Money
    is_open: bool


class CampaignView(BaseModel):
    name: str
    percent_back: str = Field(description="What the subscriber reads, e.g. \"20 %\"", examples=["20 %"])
    basis_points: int = Field(description="The share given back, in 1/10,000 of the payment")
    channels: list[PaymentChannel] = Field(description="Payment channels it rewards; empty: every channel")
    min_payment: Money = Field(description="Smallest payment it rewards")
    max_bonus: Money | None = Field(description="Most bonus one payment earns; none: no cap")
    valid_from: datetime
    valid_to: datetime = Field(description="Exclusive")
    active: bool = Field(description="In force now (else announced for later)")

    @classmethod
    def of(cls, campaign: BonusCampaign, now: datetime) -> CampaignView:
        percent = f"{campaign.basis_points / 100:g} %"
        return cls(name=campaign.name, percent_back=percent, basis_points=campaign.basis_points,
                   channels=sorted(campaign.channels), min_payment=Money(minor=campaign.min_amount, currency=campaign.currency),
                   max_bonus=None if campaign.max_bonus is None else Money(minor=campaign.max_bonus, currency=campaign.currency),
                   valid_from=campaign.valid_from, valid_to=campaign.valid_to, active=campaign.in_force(now))


REQUESTED_BY = ("Who asks: the token says it (cabinet:<account> for a subscriber, the service's name for a"
                " service token); leave it out, or give the same")


class TransferBody(RequestBody):
    to_account: AccountNumber
    amount: PositiveMoney
    request_id: UUID | None = Field(default=None, description="Send the same id again to retry safely")
    requested_by: str | None = Field(default=None, min_length=1, max_length=64, description=REQUESTED_BY)


class RedemptionBody(RequestBody):
    amount: PositiveMoney = Field(description="Bonuses to spend")
    purpose: RedemptionPurpose = Field(description="discount or gift (bonuses pay charges by themselves)")
    description: str = Field(default="", max_length=200)
    request_id: UUID | None = Field(default=None, description="Send the same id again to retry safely")


class PaymentTypeBody(RequestBody):
    payment_type: PaymentType
    credit_limit: Money
    requested_by: str | None = Field(default=None, min_length=1, max_length=64, description=REQUESTED_BY)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


NonBlank = AfterValidator(_not_blank)


class OperatorBody(RequestBody):
    operator: Annotated[str, NonBlank] = Field(min_length=1, max_length=100, description="Who does it")
    reason: Annotated[str, NonBlank] = Field(min_length=1, max_length=500, description="Why: kept in the journal")

    def note(self) -> OperatorNote:
        return OperatorNote(self.operator, self.reason)


class ResolveBody(OperatorBody):
    target_account: AccountNumber


class EventsView(BaseModel):
    events: list[dict[str, Any]]


def _events(envelopes: list[Any]) -> EventsView:
    return EventsView(events=[e.model_dump(mode="json") for e in envelopes])


class RequestRejected(DomainError):
    """A request the ledger decided to refuse: its ...Rejected event is kept (the topic has it)
    and the caller gets its reason as a refusal, with the request's id."""

    def __init__(self, rejected: TransferRejected | BonusRedemptionRejected, kind: ErrorKind,
                 field: str | None) -> None:
        super().__init__(rejected.detail, code=rejected.reason.value, field=field, kind=kind)
        self.request_id = rejected.request_id

    def field_errors(self) -> list[dict[str, str]]:
        return input_errors(self)

    def details(self) -> dict[str, Any]:
        return {"request_id": str(self.request_id)}


def _answer(events: list[Any]) -> EventsView:
    """A request's events, or its refusal."""
    for envelope in events:
        refusals = REFUSALS.get(envelope.event_type)
        if refusals is not None:
            kind, field = refusals.get(envelope.payload.reason, (ErrorKind.CONFLICT, None))
            raise RequestRejected(envelope.payload, kind, field)
    return _events(events)


class ReplayBody(RequestBody):
    account: AccountNumber | None = Field(default=None, description="One account's events; none: everyone's")
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class ReplayView(BaseModel):
    republished: int
    topic: str


Republish = Callable[..., Awaitable[int]]


def _requester(caller: Principal, claimed: str | None) -> str:
    return as_credentials_say("requested_by", claimed, caller.requester)


def build_router(ctx: LedgerContext, republish: Republish) -> APIRouter:
    router = APIRouter(prefix="/ledger", tags=["ledger"], responses=problem_responses(401, 403, 404, 409, 422))

    @router.post("/replays", response_model=ReplayView)
    async def post_replay(caller: Caller, body: ReplayBody) -> ReplayView:
        """Publish the ledger's past events again on the replay topic, with their original ids."""
        require_service(caller)
        count = await republish(account=body.account, since=body.since, until=body.until)
        return ReplayView(republished=count, topic=ctx.topics(topics.REPLAY))

    @router.get("/campaigns", response_model=list[CampaignView])
    async def get_campaigns() -> list[CampaignView]:
        """The bonus campaigns ("20 % back") in force or announced: public, like the plans."""
        now = ctx.clock.now()
        return [CampaignView.of(campaign, now) for campaign in service.campaigns(ctx)]

    @router.get("/accounts/{number}", response_model=BalanceView)
    async def get_balance(caller: Caller, number: AccountPath) -> BalanceView:
        require_account(caller, number)
        state = await service.balance(ctx, number)
        return BalanceView(account_number=state.number, main=Money(minor=state.main, currency=state.currency),
                           bonus=Money(minor=state.bonus, currency=state.currency), payment_type=state.payment_type,
                           credit_limit=Money(minor=state.credit_limit, currency=state.currency), is_open=state.is_open)

    @router.get("/accounts/{number}/statement")
    async def get_statement(
        caller: Caller, number: AccountPath,
        start: Annotated[AwareDatetime, Query(alias="from", description="With its time zone")],
        end: Annotated[AwareDatetime, Query(alias="to", description="With its time zone")],
    ) -> dict[str, Any]:
        require_account(caller, number)
        if end < start:
            raise ApiError(422, "invalid_period", "the period ends before it starts",
                           [{"field": "to", "message": "must not be before from", "code": "invalid_period"}])
        statement = await service.statement(ctx, number, start, end)
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
        events = await service.transfer(ctx, number, body.to_account, body.amount,
                                        requested_by=_requester(caller, body.requested_by),
                                        request_id=body.request_id)
        return _answer(events)

    @router.post("/accounts/{number}/bonus-redemptions", response_model=EventsView)
    async def post_bonus_redemption(caller: Caller, number: AccountPath, body: RedemptionBody) -> EventsView:
        """Exchange bonuses for a discount or a gift: BonusRedeemed, or the refusal's reason."""
        require_account(caller, number)
        events = await service.redeem_bonus(ctx, number, body.amount, body.purpose,
                                            request_id=body.request_id, description=body.description)
        return _answer(events)

    @router.put("/accounts/{number}/payment-type", response_model=EventsView)
    async def put_payment_type(caller: Caller, number: AccountPath, body: PaymentTypeBody) -> EventsView:
        require_account(caller, number)
        return _events(await service.change_payment_type(ctx, number, body.payment_type, body.credit_limit,
                                                         requested_by=_requester(caller, body.requested_by)))

    @router.post("/suspense/{transaction_id}/resolve", response_model=EventsView)
    async def resolve(caller: Caller, transaction_id: UUID, body: ResolveBody) -> EventsView:
        require_service(caller)
        return _events(await service.resolve_suspense(ctx, transaction_id, body.target_account,
                                                      body.note()))

    @router.post("/transactions/{transaction_id}/reverse", response_model=EventsView)
    async def reverse(caller: Caller, transaction_id: UUID, body: OperatorBody) -> EventsView:
        require_service(caller)
        return _events(await service.reverse(ctx, transaction_id, body.note()))

    return router
