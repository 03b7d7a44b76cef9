"""The tariff service's HTTP routes: the same command functions as :mod:`tariff.service`.

Refusals are :class:`tariff.errors.TariffError` domain errors, answered by the shared handler in
the suite's one shape (:class:`billing_events.http.Problem`) with the status of their kind: 404
for an account not registered here, 422 when the refusal names an input field (unknown plan, 0
or 31 days...) with that field in ``errors``, 409 when the request is well formed but the
account's state refuses it (no plan yet, the year's block already used...).

Who may call: the catalog (regions, channel packages, the plans and options of a region) is
public; an account's subscription and its commands take a subscriber token for that account or
a service token; closing billing days (the operator's catch-up) takes a service token. Where a
request was made (a voluntary block's ``requested_via``) is what the token says, never the body.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field, ValidationError

from billing_events.auth import Caller, Principal, as_credentials_say, require_account, require_service
from billing_events.catalog.tariff import RequestChannel
from billing_events.http import AccountPath, RequestBody, invalid_request, problem_responses
from billing_events.money import Money
from tariff import service
from tariff.catalog import Catalog, Option, Plan
from tariff.context import TariffContext
from tariff.domain import Subscription

RegionPath = Annotated[str, Path(min_length=1, max_length=64, description="Region code, e.g. moscow")]
OptionPath = Annotated[str, Path(min_length=1, max_length=40, description="Option code")]


class PlanRequest(RequestBody):
    plan: str = Field(min_length=1, max_length=40)


class OptionRequest(RequestBody):
    option: str = Field(min_length=1, max_length=40)


class BlockRequest(RequestBody):
    days: int = Field(description="1 to 30")
    requested_via: RequestChannel | None = Field(
        default=None, description="The token says it (cabinet for a subscriber, support for a service); leave it"
                                  " out, or give the same")


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


def _channel(caller: Principal) -> RequestChannel:
    """A subscriber asks in the cabinet; a service token is support (the call centre, operations)."""
    return RequestChannel.CABINET if caller.role == "subscriber" else RequestChannel.SUPPORT


def build_http_router(ctx: TariffContext) -> APIRouter:
    router = APIRouter(prefix="/tariff", tags=["tariff"], responses=problem_responses(404, 409, 422))
    private = problem_responses(401, 403)

    async def call(function: Any, command: Callable[[], Any]) -> Any:
        try:
            built = command()
        except ValidationError as exc:  # the command model's own limits
            return invalid_request(exc)
        return await function(ctx, built)

    @router.get("/catalog", response_model=CatalogView)
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

    @router.get("/regions/{region}/plans", response_model=list[PlanView])
    async def plans_of_region(region: RegionPath) -> Any:
        """The plans sold in the region: price, what each includes, the options it takes."""
        catalog = ctx.catalog
        return [PlanView.of(catalog, plan, region) for plan in catalog.plans_of_region(region)]

    @router.get("/regions/{region}/options", response_model=list[OptionView])
    async def options_of_region(region: RegionPath) -> Any:
        """The options sold in the region (multiroom, antivirus, channel packages) and the plans
        each can be added to."""
        catalog = ctx.catalog
        catalog.region(region)  # an unknown region is refused, not answered with no options
        return [OptionView.of(catalog, option, region) for option in catalog.options if region in option.prices]

    @router.get("/accounts/{account}", response_model=Subscription, responses=private)
    async def subscription(caller: Caller, account: AccountPath) -> Any:
        require_account(caller, account)
        return await service.get_subscription(ctx, account)

    @router.post("/accounts/{account}/plan", response_model=service.CommandResult, responses=private)
    async def activate(caller: Caller, account: AccountPath, body: PlanRequest) -> Any:
        require_account(caller, account)
        return await call(service.activate_plan,
                          lambda: service.ActivatePlan(account_number=account, plan=body.plan))

    @router.put("/accounts/{account}/plan", response_model=service.CommandResult, responses=private)
    async def change(caller: Caller, account: AccountPath, body: PlanRequest) -> Any:
        require_account(caller, account)
        return await call(service.change_tariff,
                          lambda: service.ChangePlan(account_number=account, plan=body.plan))

    @router.post("/accounts/{account}/options", response_model=service.CommandResult, responses=private)
    async def add(caller: Caller, account: AccountPath, body: OptionRequest) -> Any:
        require_account(caller, account)
        return await call(service.add_account_option,
                          lambda: service.AddOption(account_number=account, option=body.option))

    @router.delete("/accounts/{account}/options/{option}", response_model=service.CommandResult,
                   responses=private)
    async def remove(caller: Caller, account: AccountPath, option: OptionPath) -> Any:
        require_account(caller, account)
        return await call(service.remove_account_option,
                          lambda: service.RemoveOption(account_number=account, option=option))

    @router.post("/accounts/{account}/voluntary-block", response_model=service.CommandResult,
                 responses=private)
    async def start_block(caller: Caller, account: AccountPath, body: Annotated[BlockRequest, Body()]) -> Any:
        require_account(caller, account)
        return await call(service.start_block, lambda: service.StartVoluntaryBlock(
            account_number=account, days=body.days,
            requested_via=as_credentials_say("requested_via", body.requested_via, _channel(caller))))

    @router.delete("/accounts/{account}/voluntary-block", response_model=service.CommandResult,
                   responses=private)
    async def end_block(caller: Caller, account: AccountPath) -> Any:
        require_account(caller, account)
        return await call(service.end_block, lambda: service.EndVoluntaryBlock(account_number=account))

    @router.post("/billing-days/close", response_model=service.CloseResult, responses=private)
    async def close_billing_days(caller: Caller, body: CloseDaysRequest) -> Any:
        """Close every account's days not closed yet, in order, as the billing clock's midnight
        does: the operator's catch-up after the service was down. Closing a day twice charges
        nothing (each day is claimed once)."""
        require_service(caller)
        if body.until is None:
            return await service.billing_tick(ctx)
        return await service.close_days(ctx, body.until)

    return router

