"""The ledger's HTTP door: the same service functions the command topic and the CLI use."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from billing_contracts import topics
from billing_events.auth import AuthenticatedRoute, Caller, Principal, as_credentials_say, require_account, require_scope
from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.ledger import (
    PaymentType,
    RedemptionPurpose,
)
from billing_contracts.catalog.payments import PaymentChannel
from billing_events.errors import DomainError
from billing_events.http import (AccountPath, ApiError, PositiveAmount, RequestBody, callers, command_of, json_body,
                                 problem_responses)
from billing_contracts.money import Money, PositiveMoney

from ledger import commands, receipt_pdf, service
from ledger.acquirer import SIGNATURE_HEADER, Acquirer, CallbackBody, callback_body
from ledger.context import LedgerContext
from ledger.domain import STATEMENT_COLUMNS, BonusCampaign, BonusHistory, BonusLine, OperatorNote, Receipt
from ledger.domain.card import CardIntent, IntentStatus, Verdict

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


class PaymentBehindView(BaseModel):
    transaction_id: UUID
    channel: PaymentChannel
    reference: str
    amount: Money


class ChargeBehindView(BaseModel):
    billing_day: str = Field(description="The day the charge is for (ISO date)")
    charged_for: str = Field(description="The item, e.g. \"plan internet-100\"")


class BonusLineView(BaseModel):
    transaction_id: UUID
    change: str = Field(description="earned, spent, or corrected (an operator's reversal); bonuses do not expire")
    amount: Money = Field(description="Signed: spent is negative")
    occurred_at: datetime
    bonus_balance_after: Money
    campaign: str | None = Field(description="Earned: the campaign that gave it (null: no campaign listed now gives it)")
    payment: PaymentBehindView | None = Field(description="Earned: the payment it was earned for")
    purpose: RedemptionPurpose | None = Field(description="Spent: what the bonuses bought")
    request_id: UUID | None = Field(description="Spent on request: the redemption request's id")
    charge: ChargeBehindView | None = Field(description="Spent on a charge: the charge it paid")

    @classmethod
    def of(cls, line: BonusLine, currency: str) -> BonusLineView:
        payment = line.payment
        return cls(
            transaction_id=line.transaction_id, change=line.change.value,
            amount=Money(minor=line.amount, currency=currency), occurred_at=line.occurred_at,
            bonus_balance_after=Money(minor=line.balance_after, currency=currency), campaign=line.campaign,
            payment=None if payment is None else PaymentBehindView(
                transaction_id=payment.transaction_id, channel=payment.channel, reference=payment.reference,
                amount=Money(minor=payment.amount, currency=currency)),
            purpose=line.purpose, request_id=line.request_id,
            charge=None if line.charge is None else ChargeBehindView(billing_day=line.charge.billing_day.isoformat(),
                                                                     charged_for=line.charge.what),
        )


class BonusHistoryView(BaseModel):
    account_number: str
    earned: Money
    spent: Money = Field(description="As a positive amount")
    bonus_balance: Money
    lines: list[BonusLineView] = Field(description="Oldest first")

    @classmethod
    def of(cls, history: BonusHistory) -> BonusHistoryView:
        currency = history.currency
        return cls(account_number=history.account, earned=Money(minor=history.earned, currency=currency),
                   spent=Money(minor=history.spent, currency=currency),
                   bonus_balance=Money(minor=history.balance, currency=currency),
                   lines=[BonusLineView.of(line, currency) for line in history.lines])


CSV, PDF, HTML = "text/csv", "application/pdf", "text/html"
Format = Annotated[Literal["json", "csv", "pdf"] | None, Query(
    alias="format", description="Instead of an Accept header: csv for the statement, pdf for a receipt")]


def _wants(request: Request, asked: str | None, media_type: str) -> bool:
    """Did the caller ask for ``media_type`` (``?format=`` wins over the Accept header)?"""
    if asked is not None:
        return media_type.endswith(f"/{asked}")
    return media_type in request.headers.get("accept", "")


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _receipt_pdf(receipt: Receipt) -> Response:
    return _download(receipt_pdf.render(receipt), PDF, f"receipt-{receipt.transaction_id}.pdf")


REQUESTED_BY = ("Who asks: the token says it (cabinet:<account> for a subscriber, the service's name for a"
                " service token); leave it out, or give the same")


class TransferBody(RequestBody):
    to_account: AccountNumber
    amount: PositiveAmount
    request_id: commands.RequestId = None
    requested_by: commands.Requester | None = Field(default=None, description=REQUESTED_BY)


class RedemptionBody(RequestBody):
    item: commands.RewardCode | None = Field(
        default=None, description="An item of the rewards catalogue (GET /ledger/rewards): its price and kind are"
                                  " taken (given amount or purpose must match them)")
    amount: PositiveAmount | None = Field(default=None, description="Bonuses to spend; required without item")
    purpose: RedemptionPurpose | None = Field(
        default=None, description="discount or gift (bonuses pay charges by themselves); required without item")
    description: commands.RedemptionDescription = ""
    request_id: commands.RequestId = None

    @model_validator(mode="after")
    def _an_item_or_an_amount_and_purpose(self) -> RedemptionBody:
        if self.item is None and (self.amount is None or self.purpose is None):
            raise ValueError("name an item of the rewards catalogue, or give amount and purpose")
        return self


class RewardView(BaseModel):
    code: str
    name: str
    kind: RedemptionPurpose = Field(description="discount or gift")
    price: Money = Field(description="In bonuses")
    description: str


class PaymentTypeBody(RequestBody):
    payment_type: PaymentType
    credit_limit: Money
    requested_by: commands.Requester | None = Field(default=None, description=REQUESTED_BY)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


NonBlank = AfterValidator(_not_blank)


class OperatorBody(RequestBody):
    operator: Annotated[str, NonBlank] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Who does it: the token says it (the operator's name, or the service's); leave it out, or give"
                    " the same")
    reason: Annotated[str, NonBlank] = Field(min_length=1, max_length=500, description="Why: kept in the journal")

    def note(self, caller: Principal) -> OperatorNote:
        return OperatorNote(as_credentials_say("operator", self.operator, caller.subject), self.reason)


class ResolveBody(OperatorBody):
    target_account: AccountNumber


class EventsView(BaseModel):
    events: list[dict[str, Any]]


def _events(envelopes: list[Any]) -> EventsView:
    return EventsView(events=[e.model_dump(mode="json") for e in envelopes])


class CardPaymentBody(RequestBody):
    amount: PositiveAmount = Field(description="What the subscriber pays by card; the account is the token's")


class CardPaymentView(BaseModel):
    intent_id: UUID
    account_number: str
    amount: Money
    status: IntentStatus = Field(description="open (not paid yet), paid, or declined")
    pay_url: str = Field(description="Send the subscriber here to pay: the acquirer's page (in development, the"
                                     " ledger's own development page, a path on the ledger's address)")
    acquirer_reference: str | None = Field(description="Paid: the acquirer's reference, the payment's on the statement")

    @classmethod
    def of(cls, intent: CardIntent, acquirer: Acquirer) -> CardPaymentView:
        return cls(intent_id=intent.intent_id, account_number=intent.account, amount=intent.amount,
                   status=intent.status, pay_url=acquirer.pay_url(intent), acquirer_reference=intent.acquirer_reference)


class CallbackAnswer(BaseModel):
    intent_id: UUID
    status: IntentStatus
    repeat: bool = Field(description="The same callback again: nothing changed")


class DevelopmentAcquirerAnswer(BaseModel):
    callbacks: list[dict[str, Any]] = Field(description="Each callback the page sent: the ledger's status and answer")


def _subscriber(caller: Principal) -> str:
    """The account of a subscriber's own route: a card payment is the subscriber's, never a service's."""
    if caller.role != "subscriber":
        raise ApiError(403, "subscriber_only", "the subscriber's own route: a subscriber token is required")
    return caller.subject


def _development_page(intent: CardIntent) -> str:
    amount = html.escape(str(intent.amount))
    forms = "".join(
        f'<form method="post" action="/ledger/dev-acquirer/{intent.intent_id}/{action}">'
        f'<button type="submit">{label}</button></form>'
        for action, label in (("approve", "Approve"), ("decline", "Decline"), ("approve-twice", "Approve twice")))
    return (f"<!doctype html><html><head><title>Development acquirer</title></head><body>"
            f"<h1>Development acquirer</h1><p>Pay {amount} into account {intent.account}"
            f" (intent {intent.intent_id}, {intent.status.value}).</p>{forms}"
            f"<p>Not a real acquirer: it signs the callbacks with the secret the ledger holds.</p></body></html>")


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


def build_router(ctx: LedgerContext, republish: Republish, acquirer: Acquirer, *, development: bool) -> APIRouter:
    """The ledger's routes; ``development`` adds the development acquirer page (never in production)."""
    router = APIRouter(route_class=AuthenticatedRoute, prefix="/ledger", tags=["ledger"], responses=problem_responses(400, 401, 403, 404, 409, 422))

    @router.post("/replays", response_model=ReplayView, openapi_extra=callers("service"))
    async def post_replay(caller: Caller, body: ReplayBody) -> ReplayView:
        """Publish the ledger's past events again on the replay topic, with their original ids."""
        require_scope(caller, "ledger:replay")
        count = await republish(account=body.account, since=body.since, until=body.until)
        return ReplayView(republished=count, topic=ctx.topics(topics.REPLAY))

    @router.get("/campaigns", response_model=list[CampaignView], openapi_extra=callers("anonymous", "subscriber", "service"))
    async def get_campaigns() -> list[CampaignView]:
        """The bonus campaigns ("20 % back") in force or announced: public, like the plans."""
        now = ctx.clock.now()
        return [CampaignView.of(campaign, now) for campaign in service.campaigns(ctx)]

    @router.get("/rewards", response_model=list[RewardView],
                openapi_extra=callers("anonymous", "subscriber", "service"))
    async def get_rewards() -> list[RewardView]:
        """The gifts and discounts bonuses buy, with their prices in bonuses: public, like the
        campaigns. Redeem one with POST /ledger/accounts/{number}/bonus-redemptions {"item": code}."""
        return [RewardView(code=r.code, name=r.name, kind=r.kind, price=Money(minor=r.price, currency=r.currency),
                           description=r.description) for r in ctx.rewards]

    @router.get("/accounts/{number}", response_model=BalanceView, openapi_extra=callers("subscriber", "service"))
    async def get_balance(caller: Caller, number: AccountPath) -> BalanceView:
        require_account(caller, number)
        state = await service.balance(ctx, number)
        return BalanceView(account_number=state.number, main=Money(minor=state.main, currency=state.currency),
                           bonus=Money(minor=state.bonus, currency=state.currency), payment_type=state.payment_type,
                           credit_limit=Money(minor=state.credit_limit, currency=state.currency), is_open=state.is_open)

    @router.get("/accounts/{number}/statement", openapi_extra=callers("subscriber", "service"),
                responses={200: {"content": {CSV: {}}, "description": "JSON, or CSV (Accept: text/csv or ?format=csv)"}})
    async def get_statement(
        caller: Caller, number: AccountPath, request: Request,
        start: Annotated[AwareDatetime, Query(alias="from", description="With its time zone")],
        end: Annotated[AwareDatetime, Query(alias="to", description="With its time zone; exclusive")],
        asked: Format = None,
    ) -> Any:
        """The main balance's entries over a period with a running balance: each charge with its
        billing day and what it paid for; the totals in and out (JSON), or the lines as CSV."""
        require_account(caller, number)
        if end < start:
            raise ApiError(422, "invalid_period", "the period ends before it starts",
                           [{"field": "to", "message": "must not be before from", "code": "invalid_period"}])
        statement = await service.statement(ctx, number, start, end)
        rows = [line.row(statement.currency) for line in statement.lines]
        if _wants(request, asked, CSV):
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=STATEMENT_COLUMNS, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
            return _download(text.getvalue().encode(), f"{CSV}; charset=utf-8",
                             f"statement-{number}-{start.date()}-{end.date()}.csv")
        return {
            "account": statement.account, "currency": statement.currency,
            "from": start.isoformat(), "to": end.isoformat(),
            "opening_balance": statement.opening_balance, "closing_balance": statement.closing_balance,
            "total_in": statement.total_in, "total_out": statement.total_out, "lines": rows,
        }

    @router.get("/accounts/{number}/bonus-history", response_model=BonusHistoryView,
                openapi_extra=callers("subscriber", "service"))
    async def get_bonus_history(caller: Caller, number: AccountPath) -> BonusHistoryView:
        """How the bonuses were earned (the campaign and the payment behind each) and spent (the
        redemption or the charge they paid), with the bonus balance after each line."""
        require_account(caller, number)
        return BonusHistoryView.of(await service.bonus_history(ctx, number))

    @router.get("/accounts/{number}/payments/{transaction_id}/receipt", openapi_extra=callers("subscriber", "service"),
                responses={200: {"content": {PDF: {}}, "description": "JSON, or a PDF (Accept: application/pdf,"
                                                                       " ?format=pdf or .../receipt.pdf)"}})
    async def get_receipt(caller: Caller, number: AccountPath, transaction_id: UUID, request: Request,
                          asked: Format = None) -> Any:
        """The receipt of one payment credited to the account (its transaction id, as the
        statement lists it): JSON, or a PDF to download."""
        require_account(caller, number)
        receipt = await service.account_receipt(ctx, number, transaction_id)
        return _receipt_pdf(receipt) if _wants(request, asked, PDF) else receipt.as_dict()

    @router.get("/accounts/{number}/payments/{transaction_id}/receipt.pdf", openapi_extra=callers("subscriber", "service"),
                response_class=Response, responses={200: {"content": {PDF: {}}}})
    async def get_receipt_pdf(caller: Caller, number: AccountPath, transaction_id: UUID) -> Response:
        """The receipt of one payment as a PDF to download."""
        require_account(caller, number)
        return _receipt_pdf(await service.account_receipt(ctx, number, transaction_id))

    @router.post("/accounts/{number}/transfers", response_model=EventsView, openapi_extra=callers("subscriber", "service"))
    async def post_transfer(caller: Caller, number: AccountPath, body: TransferBody) -> EventsView:
        require_account(caller, number)
        command = command_of(lambda: commands.Transfer(
            from_account=number, to_account=body.to_account, amount=body.amount,
            requested_by=_requester(caller, body.requested_by), request_id=body.request_id))
        return _events(await service.transfer(ctx, command))

    @router.post("/accounts/{number}/bonus-redemptions", response_model=EventsView,
                 openapi_extra=callers("subscriber", "service"))
    async def post_bonus_redemption(caller: Caller, number: AccountPath, body: RedemptionBody) -> EventsView:
        """Exchange bonuses for an item of the rewards catalogue (or a discount or gift of an
        amount): BonusRedeemed, or the refusal's reason."""
        require_account(caller, number)
        amount, purpose, description = body.amount, body.purpose, body.description
        if body.item is not None:
            reward = service.reward(ctx, body.item)
            amount = amount or PositiveMoney(minor=reward.price, currency=reward.currency)
            purpose = purpose or reward.kind
            description = description or reward.name
        assert amount is not None and purpose is not None  # the body's own validation
        command = command_of(lambda: commands.RedeemBonus(
            account_number=number, amount=amount, purpose=purpose, description=description, item=body.item,
            request_id=body.request_id))
        return _events(await service.redeem_bonus(ctx, command))

    @router.put("/accounts/{number}/payment-type", response_model=EventsView, openapi_extra=callers("subscriber", "service"))
    async def put_payment_type(caller: Caller, number: AccountPath, body: PaymentTypeBody) -> EventsView:
        require_account(caller, number)
        command = command_of(lambda: commands.ChangePaymentType(
            account_number=number, payment_type=body.payment_type, credit_limit=body.credit_limit,
            requested_by=_requester(caller, body.requested_by)))
        return _events(await service.change_payment_type(ctx, command))

    @router.post("/card-payments", response_model=CardPaymentView, status_code=201,
                 openapi_extra=callers("subscriber"))
    async def post_card_payment(caller: Caller, body: CardPaymentBody) -> CardPaymentView:
        """Pay by card on the website: an intent for the token's own account, and the acquirer's
        page to send the subscriber to. The acquirer's callback settles it."""
        command = command_of(lambda: commands.OpenCardPayment(account_number=_subscriber(caller), amount=body.amount))
        intent = await service.open_card_payment(ctx, command)
        return CardPaymentView.of(intent, acquirer)

    @router.get("/card-payments/{intent_id}", response_model=CardPaymentView, openapi_extra=callers("subscriber"))
    async def get_card_payment(caller: Caller, intent_id: UUID) -> CardPaymentView:
        """A card payment of the token's account: open, paid or declined."""
        return CardPaymentView.of(await service.card_payment(ctx, intent_id, of_account=_subscriber(caller)), acquirer)

    @router.post("/card-payments/callbacks", response_model=CallbackAnswer, openapi_extra={
        **callers("anonymous"), **json_body(CallbackBody, description=(
            f"Signed by the acquirer: {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw body with the shared"
            " secret>; the signature is the credential, no token"))})
    async def post_card_callback(request: Request) -> CallbackAnswer:
        """The acquirer's verdict on a card payment: approved (the payment is kept before this
        answers) or declined. The same callback again answers 200 and changes nothing."""
        return await take_callback(await request.body(), request.headers.get(SIGNATURE_HEADER))

    async def take_callback(body: bytes, signature: str | None) -> CallbackAnswer:
        settlement = await service.settle_card_payment(ctx, acquirer.verified(body, signature))
        return CallbackAnswer(intent_id=settlement.intent.intent_id, status=settlement.intent.status,
                              repeat=settlement.repeat)

    if development:
        _development_acquirer(router, ctx, acquirer, take_callback)

    @router.post("/suspense/{transaction_id}/resolve", response_model=EventsView, openapi_extra=callers("service"))
    async def resolve(caller: Caller, transaction_id: UUID, body: ResolveBody) -> EventsView:
        require_scope(caller, "ledger:resolve")
        command = command_of(lambda: commands.ResolveSuspense(
            parked_transaction_id=transaction_id, target_account=body.target_account, operator=body.note(caller)))
        return _events(await service.resolve_suspense(ctx, command))

    @router.post("/transactions/{transaction_id}/reverse", response_model=EventsView,
                 openapi_extra=callers("service"))
    async def reverse(caller: Caller, transaction_id: UUID, body: OperatorBody) -> EventsView:
        require_scope(caller, "ledger:reverse")
        command = command_of(lambda: commands.Reverse(transaction_id=transaction_id, operator=body.note(caller)))
        return _events(await service.reverse(ctx, command))

    return router


TakeCallback = Callable[[bytes, str | None], Awaitable[CallbackAnswer]]


def _development_acquirer(router: APIRouter, ctx: LedgerContext, acquirer: Acquirer, take_callback: TakeCallback) -> None:
    """The page that stands in for the acquirer's under `make run`: its buttons send the callbacks
    an acquirer would, signed with the secret, through the very door the acquirer's come in by."""

    @router.get("/dev-acquirer/{intent_id}", response_class=Response, openapi_extra=callers("anonymous"),
                responses={200: {"content": {HTML: {}}}})
    async def get_development_acquirer(intent_id: UUID) -> Response:
        """Development only: the acquirer's page for an intent, with approve / decline / approve twice."""
        return Response(_development_page(await service.card_payment(ctx, intent_id)), media_type=f"{HTML}; charset=utf-8")

    @router.post("/dev-acquirer/{intent_id}/{action}", response_model=DevelopmentAcquirerAnswer,
                 openapi_extra=callers("anonymous"))
    async def post_development_acquirer(intent_id: UUID,
                                        action: Literal["approve", "decline", "approve-twice"],
                                        ) -> DevelopmentAcquirerAnswer | Response:
        """Development only: send the acquirer's signed callback (twice for approve-twice); then back
        to the shop (303 to BILLING_LEDGER_CARD_RETURN_URL) when one is set, else the callbacks sent."""
        intent = await service.card_payment(ctx, intent_id)
        verdict = Verdict.DECLINED if action == "decline" else Verdict.APPROVED
        body = callback_body(intent, verdict, f"DEV-{intent.intent_id.hex}", ctx.clock.now())
        answers = []
        for _ in range(2 if action == "approve-twice" else 1):
            try:
                answer = await take_callback(body, acquirer.signature(body))
                answers.append({"status": 200, "answer": answer.model_dump(mode="json")})
            except DomainError as refused:
                answers.append({"status": refused.http_status,
                                "answer": {"code": str(refused.code), "message": refused.message}})
        back = acquirer.back_to_shop(intent)
        if back is not None:
            return Response(status_code=303, headers={"Location": back})
        return DevelopmentAcquirerAnswer(callbacks=answers)
