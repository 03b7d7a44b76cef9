"""The tariff service's HTTP routes: the same command functions as :mod:`tariff.service`.

Refusals are :class:`tariff.errors.TariffError` domain errors, answered by the shared handler in
the suite's one shape (:class:`billing_events.http.Problem`) with the status of their kind: 404
for an account not registered here, 422 when the refusal names an input field (unknown plan, 0
or 31 days...) with that field in ``errors``, 409 when the request is well formed but the
account's state refuses it (no plan yet, the year's block already used...).

Who may call: the catalog (regions, channel packages, the plans, options and equipment of a
region) is public; an account's subscription and its commands take a subscriber token for that
account or a service or operator token with ``tariff:accounts``; closing billing days (the
operator's catch-up) takes ``tariff:close-days`` and closing an account (support) ``tariff:close-accounts``. Where a request was made (a voluntary block's ``requested_via``)
is what the token says, never the body.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from billing_events.auth import AuthenticatedRoute, Caller, Principal, as_credentials_say, require_account, require_scope
from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.tariff import ClosureSettlement, FeeKind, RequestChannel
from billing_events.http import AccountPath, RequestBody, callers, command_of, problem_responses
from billing_contracts.money import Money
from tariff import commands, service
from tariff.catalog import Catalog, Equipment, Option, Plan
from tariff.context import TariffContext
from tariff.domain import Forecast, ItemPeriod, Subscription

RegionPath = Annotated[str, Path(min_length=1, max_length=64, description="Region code, e.g. moscow")]
OptionPath = Annotated[str, Path(min_length=1, max_length=40, description="Option code")]
EquipmentPath = Annotated[str, Path(min_length=1, max_length=40, description="Equipment code")]


class PlanRequest(RequestBody):
    plan: str = Field(min_length=1, max_length=40)


class ActivationRequest(PlanRequest):
    equipment: list[str] = Field(default_factory=list, description="Equipment chosen with the plan (codes)")


class EquipmentRequest(RequestBody):
    equipment: str = Field(min_length=1, max_length=40)


class OptionRequest(RequestBody):
    option: str = Field(min_length=1, max_length=40)


class BlockRequest(RequestBody):
    days: int = Field(description="1 to 30")
    requested_via: RequestChannel | None = Field(
        default=None, description="The token says it (cabinet for a subscriber, support for a service); leave it"
                                  " out, or give the same")


class ClosureRequest(RequestBody):
    settlement: ClosureSettlement = Field(description="refund: paid back outside the suite; transfer: to transfer_to")
    transfer_to: AccountNumber | None = Field(default=None, description="For settlement transfer: the account"
                                                                        " the money left goes to")
    reason: str = Field(min_length=1, max_length=500, description="Why, in the operator's words (journaled)")


class CloseDaysRequest(RequestBody):
    until: date | None = Field(default=None, description="Last day to close; default and at most: yesterday")


class RegionView(BaseModel):
    code: str
    name: str
    voluntary_block_price: Money = Field(description="What one voluntary block costs in the region")


class ChannelPackageView(BaseModel):
    code: str
    name: str
    channels: list[str] = Field(description="Every channel, those of included packages first")


class CatalogView(BaseModel):
    version: int
    currency: str
    regions: list[RegionView]
    channel_packages: list[ChannelPackageView]


class PlanView(BaseModel):
    code: str
    name: str
    kind: str
    monthly_price_minor: int
    currency: str
    internet_mbps: int | None = Field(description="Home internet speed; none for TV only")
    tv_package: str | None = Field(description="The channel package it shows; none for internet only")
    tv_channels: int = Field(description="How many TV channels it shows")
    parts: list[str] = Field(description="A bundle's internet and TV plans")
    options: list[str] = Field(description="Options that can be added to it in this region")

    @classmethod
    def of(cls, catalog: Catalog, plan: Plan, region: str) -> PlanView:
        components = catalog.components(plan.code)
        return cls(code=plan.code, name=plan.name, kind=plan.kind.value, monthly_price_minor=plan.prices[region],
                   currency=catalog.currency,
                   internet_mbps=next((p.internet_mbps for p in components if p.internet_mbps), None),
                   tv_package=next((p.tv_package for p in components if p.tv_package), None),
                   tv_channels=len(catalog.channels_of_plan(plan.code)), parts=list(plan.parts),
                   options=[option.code for option in catalog.options_for_plan(plan.code, region)])


class OptionView(BaseModel):
    code: str
    name: str
    kind: str
    monthly_price_minor: int
    currency: str
    channels: list[str] = Field(description="The channels of a channel package option")
    sold_with: list[str] = Field(description="The region's plans it can be added to")

    @classmethod
    def of(cls, catalog: Catalog, option: Option, region: str) -> OptionView:
        sold_in_region = {plan.code for plan in catalog.plans_of_region(region)}
        return cls(code=option.code, name=option.name, kind=option.kind.value,
                   monthly_price_minor=option.prices[region], currency=catalog.currency,
                   channels=list(catalog.channels_of_option(option.code)),
                   sold_with=[plan for plan in option.sold_with if plan in sold_in_region])


ITEM_NAMES = {FeeKind.SUBSCRIPTION: "plan", FeeKind.OPTION: "option", FeeKind.EQUIPMENT: "equipment"}


class ItemPeriodView(BaseModel):
    item: str = Field(description="plan, option or equipment")
    code: str
    name: str = Field(description="The catalog's name for it (the code, if the catalog no longer lists it)")
    started: date = Field(description="The first billing day it was in effect")
    ended: date | None = Field(description="The last billing day it was in effect; null: it still is")
    days: int = Field(description="Billing days it was in effect, up to the last day closed")
    charged_days: int = Field(description="Of those, the days it was charged (a blocked day is not)")
    daily_fee: Money | None = Field(description="What its last charged day cost (a month's days differ by a kopeck"
                                                " at most)")
    charged: Money = Field(description="What it was charged in all")

    @classmethod
    def of(cls, catalog: Catalog, period: ItemPeriod, last_closed: date) -> ItemPeriodView:
        listed = {FeeKind.SUBSCRIPTION: catalog.plans, FeeKind.OPTION: catalog.options,
                  FeeKind.EQUIPMENT: catalog.equipment}[period.fee_kind]
        name = next((entry.name for entry in listed if entry.code == period.code), period.code)
        last = period.ended or last_closed
        return cls(item=ITEM_NAMES[period.fee_kind], code=period.code, name=name, started=period.started,
                   ended=period.ended, days=(last - period.started).days + 1, charged_days=period.charged_days,
                   daily_fee=period.daily_fee, charged=period.charged)


class TariffHistoryView(BaseModel):
    account_number: str
    last_closed_day: date | None = Field(description="The last billing day charged; the periods count up to it")
    periods: list[ItemPeriodView] = Field(description="Oldest first")


class DailyItemView(BaseModel):
    item: str = Field(description="plan, option or equipment")
    code: str
    name: str
    daily_fee: Money


class ForecastView(BaseModel):
    today: date = Field(description="The billing day (billing time zone)")
    daily_fee: Money = Field(description="What today costs: the plan, the options and the rented equipment in effect")
    items: list[DailyItemView]
    available: Money = Field(description="The balance once the charges on their way are taken, with the credit"
                                         " limit on a credit account")
    first_day_to_charge: date = Field(description="The first day not charged yet (a day is charged once it ends)")
    lasts_until: date | None = Field(description="The last day the money pays for in full; null: more than three"
                                                 " years")
    month_end: date
    to_pay_now: Money = Field(description="What to pay now to stay unblocked to the end of the month (credit: to"
                                          " stay within the credit limit); zero when the money suffices")

    @classmethod
    def of(cls, forecast: Forecast) -> ForecastView:
        items = [DailyItemView(item=ITEM_NAMES[item.fee_kind], code=item.code,
                               name=item.name, daily_fee=item.fee) for item in forecast.items]
        return cls(today=forecast.today, daily_fee=forecast.daily_fee, items=items, available=forecast.available,
                   first_day_to_charge=forecast.first_day_to_charge, lasts_until=forecast.lasts_until,
                   month_end=forecast.month_end, to_pay_now=forecast.to_pay_now)


class EquipmentView(BaseModel):
    code: str
    name: str
    kind: str
    monthly_price_minor: int | None = Field(description="The rent with the plans it is not free with; none where"
                                                        " it is free with every plan it is rented with here")
    currency: str
    free_with: list[str] = Field(description="The region's plans it costs nothing with")
    rented_with: list[str] = Field(description="The region's plans it can be rented with (free or not)")

    @classmethod
    def of(cls, catalog: Catalog, item: Equipment, region: str) -> EquipmentView:
        rented_with = [plan.code for plan in catalog.plans_of_region(region)
                       if item in catalog.equipment_for_plan(plan.code, region)]
        return cls(code=item.code, name=item.name, kind=item.kind.value, monthly_price_minor=item.prices.get(region),
                   currency=catalog.currency, free_with=[plan for plan in rented_with if item.is_free_with(plan)],
                   rented_with=rented_with)


def _channel(caller: Principal) -> RequestChannel:
    """A subscriber asks in the cabinet; a service or operator token is support (the call centre, operations)."""
    return RequestChannel.CABINET if caller.role == "subscriber" else RequestChannel.SUPPORT


def build_router(ctx: TariffContext) -> APIRouter:
    router = APIRouter(route_class=AuthenticatedRoute, prefix="/tariff", tags=["tariff"], responses=problem_responses(400, 404, 409, 422))
    private = problem_responses(401, 403)

    async def call(function: Any, command: Callable[[], Any]) -> Any:
        return await function(ctx, command_of(command))

    @router.get("/catalog", response_model=CatalogView, openapi_extra=callers("anonymous", "subscriber", "service"))
    async def whole_catalog() -> Any:
        """The regions (with the price of a voluntary block) and the TV channel packages; the
        plans and options of a region are under ``/tariff/regions/{region}``."""
        catalog = ctx.catalog
        return CatalogView(
            version=catalog.version, currency=catalog.currency,
            regions=[RegionView(code=r.code, name=r.name, voluntary_block_price=catalog.voluntary_block_price(r.code))
                     for r in catalog.regions],
            channel_packages=[ChannelPackageView(code=p.code, name=p.name, channels=list(catalog.channels_of_package(p.code)))
                              for p in catalog.channel_packages],
        )

    @router.get("/regions/{region}/plans", response_model=list[PlanView], openapi_extra=callers("anonymous", "subscriber", "service"))
    async def plans_of_region(region: RegionPath) -> Any:
        """The plans sold in the region: price, what each includes, the options it takes."""
        catalog = ctx.catalog
        return [PlanView.of(catalog, plan, region) for plan in catalog.plans_of_region(region)]

    @router.get("/regions/{region}/options", response_model=list[OptionView], openapi_extra=callers("anonymous", "subscriber", "service"))
    async def options_of_region(region: RegionPath) -> Any:
        """The options sold in the region (multiroom, antivirus, channel packages) and the plans
        each can be added to."""
        catalog = ctx.catalog
        catalog.region(region)  # an unknown region is refused, not answered with no options
        return [OptionView.of(catalog, option, region) for option in catalog.options if region in option.prices]

    @router.get("/regions/{region}/equipment", response_model=list[EquipmentView],
                openapi_extra=callers("anonymous", "subscriber", "service"))
    async def equipment_of_region(region: RegionPath) -> Any:
        """The equipment (routers, set-top boxes) rented in the region: the plans it is free
        with, the monthly rent with the others."""
        catalog = ctx.catalog
        catalog.region(region)
        found = [EquipmentView.of(catalog, item, region) for item in catalog.equipment]
        return [view for view in found if view.rented_with]

    @router.get("/accounts/{account}", response_model=Subscription, responses=private,
                openapi_extra=callers("subscriber", "service"))
    async def subscription(caller: Caller, account: AccountPath) -> Any:
        require_account(caller, account)
        return await service.get_subscription(ctx, account)

    @router.get("/accounts/{account}/tariff-history", response_model=TariffHistoryView, responses=private,
                openapi_extra=callers("subscriber", "service"))
    async def tariff_history(caller: Caller, account: AccountPath) -> Any:
        """Every plan and option the account had: the days each was in effect, its daily fee and
        what it was charged in all (a change counts from the first day it is in effect)."""
        require_account(caller, account)
        history = await service.tariff_history(ctx, account)
        last_closed = history.last_closed_day or ctx.billing_day() - timedelta(days=1)
        return TariffHistoryView(account_number=account, last_closed_day=history.last_closed_day,
                                 periods=[ItemPeriodView.of(ctx.catalog, period, last_closed)
                                          for period in history.state.history])

    @router.get("/accounts/{account}/forecast", response_model=ForecastView, responses=private,
                openapi_extra=callers("subscriber", "service"))
    async def forecast(caller: Caller, account: AccountPath) -> Any:
        """Today's daily fee, the day the money lasts until at the current plan, and the amount to
        pay now to stay unblocked to the end of the month, in the daily charges' whole kopecks."""
        require_account(caller, account)
        return ForecastView.of(await service.account_forecast(ctx, account))

    @router.post("/accounts/{account}/plan", response_model=commands.CommandResult, responses=private,
                 openapi_extra=callers("subscriber", "service"))
    async def activate(caller: Caller, account: AccountPath, body: ActivationRequest) -> Any:
        require_account(caller, account)
        return await call(service.activate_plan, lambda: commands.ActivatePlan(
            account_number=account, plan=body.plan, equipment=body.equipment))

    @router.put("/accounts/{account}/plan", response_model=commands.CommandResult, responses=private,
                openapi_extra=callers("subscriber", "service"))
    async def change(caller: Caller, account: AccountPath, body: PlanRequest) -> Any:
        require_account(caller, account)
        return await call(service.change_tariff,
                          lambda: commands.ChangePlan(account_number=account, plan=body.plan))

    @router.post("/accounts/{account}/options", response_model=commands.CommandResult, responses=private,
                 openapi_extra=callers("subscriber", "service"))
    async def add(caller: Caller, account: AccountPath, body: OptionRequest) -> Any:
        require_account(caller, account)
        return await call(service.add_account_option,
                          lambda: commands.AddOption(account_number=account, option=body.option))

    @router.delete("/accounts/{account}/options/{option}", response_model=commands.CommandResult,
                   responses=private, openapi_extra=callers("subscriber", "service"))
    async def remove(caller: Caller, account: AccountPath, option: OptionPath) -> Any:
        require_account(caller, account)
        return await call(service.remove_account_option,
                          lambda: commands.RemoveOption(account_number=account, option=option))

    @router.post("/accounts/{account}/equipment", response_model=commands.CommandResult, responses=private,
                 openapi_extra=callers("subscriber", "service"))
    async def rent(caller: Caller, account: AccountPath, body: EquipmentRequest) -> Any:
        """Rent equipment from the next billing day: free with some plans, a daily fee with others."""
        require_account(caller, account)
        return await call(service.rent_account_equipment,
                          lambda: commands.RentEquipment(account_number=account, equipment=body.equipment))

    @router.delete("/accounts/{account}/equipment/{equipment}", response_model=commands.CommandResult,
                   responses=private, openapi_extra=callers("subscriber", "service"))
    async def return_(caller: Caller, account: AccountPath, equipment: EquipmentPath) -> Any:
        """Return equipment: not charged from the next billing day on."""
        require_account(caller, account)
        return await call(service.return_account_equipment,
                          lambda: commands.ReturnEquipment(account_number=account, equipment=equipment))

    @router.post("/accounts/{account}/voluntary-block", response_model=commands.CommandResult,
                 responses=private, openapi_extra=callers("subscriber", "service"))
    async def start_block(caller: Caller, account: AccountPath, body: Annotated[BlockRequest, Body()]) -> Any:
        require_account(caller, account)
        return await call(service.start_block, lambda: commands.StartVoluntaryBlock(
            account_number=account, days=body.days,
            requested_via=as_credentials_say("requested_via", body.requested_via, _channel(caller))))

    @router.delete("/accounts/{account}/voluntary-block", response_model=commands.CommandResult,
                   responses=private, openapi_extra=callers("subscriber", "service"))
    async def end_block(caller: Caller, account: AccountPath) -> Any:
        require_account(caller, account)
        return await call(service.end_block, lambda: commands.EndVoluntaryBlock(account_number=account))

    @router.post("/accounts/{account}/closure", response_model=commands.CommandResult, responses=private,
                 openapi_extra=callers("service"))
    async def close_account(caller: Caller, account: AccountPath, body: ClosureRequest) -> Any:
        """Support closes the account (a service token): every day not charged yet through today
        is charged, nothing after; the ledger then refunds or transfers the money left and closes
        the account there. Refused while the final charges would leave a debt."""
        require_scope(caller, "tariff:close-accounts")
        return await call(service.close_account, lambda: commands.CloseAccount(
            account_number=account, settlement=body.settlement, transfer_to=body.transfer_to,
            requested_by=caller.requester, reason=body.reason))

    @router.post("/billing-days/close", response_model=service.CloseResult, responses=private,
                 openapi_extra=callers("service"))
    async def close_billing_days(caller: Caller, body: CloseDaysRequest) -> Any:
        """Close every account's days not closed yet, in order, as the billing clock's midnight
        does: the operator's catch-up after the service was down. Closing a day twice charges
        nothing (each day is claimed once)."""
        require_scope(caller, "tariff:close-days")
        if body.until is None:
            return await service.billing_tick(ctx)
        return await service.close_days(ctx, body.until)

    return router

