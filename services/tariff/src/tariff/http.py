"""The tariff service's HTTP routes: the same command functions as :mod:`tariff.service`.

Refusals answer ``{"code", "message", "field"}``: 404 for an account not registered here, 422
when the refusal names an input field (unknown plan, 0 or 31 days...), 409 when the request is
well formed but the account's state refuses it (no plan yet, the year's block already used...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from billing_events.catalog.tariff import RequestChannel
from tariff import service
from tariff.domain import Subscription
from tariff.errors import TariffError, UnknownAccount
from tariff.runtime import TariffRuntime

AccountPath = Annotated[str, Path(pattern=r"^\d{12}$", description="12-digit account number")]


class PlanRequest(BaseModel):
    plan: str = Field(min_length=1, max_length=40)


class OptionRequest(BaseModel):
    option: str = Field(min_length=1, max_length=40)


class BlockRequest(BaseModel):
    days: int = Field(description="1 to 30")
    requested_via: RequestChannel = RequestChannel.CABINET


class PlanView(BaseModel):
    code: str
    name: str
    kind: str
    monthly_price_minor: int
    currency: str


def refusal(exc: TariffError) -> JSONResponse:
    if isinstance(exc, UnknownAccount):
        status = 404
    elif exc.field is not None:
        status = 422
    else:
        status = 409
    return JSONResponse(
        {"code": exc.code, "message": exc.message, "field": exc.field}, status_code=status
    )


def build_http_router(get_runtime: Callable[[], TariffRuntime]) -> APIRouter:
    router = APIRouter(prefix="/tariff", tags=["tariff"])

    async def call(function: Any, command: Any) -> Any:
        try:
            return await function(get_runtime(), command)
        except TariffError as exc:
            return refusal(exc)

    @router.get("/regions/{region}/plans", response_model=list[PlanView])
    async def plans_of_region(region: str) -> Any:
        catalog = get_runtime().catalog
        try:
            return [
                PlanView(code=plan.code, name=plan.name, kind=plan.kind.value,
                         monthly_price_minor=plan.prices[region], currency=catalog.currency)
                for plan in catalog.plans_of_region(region)
            ]
        except TariffError as exc:
            return refusal(exc)

    @router.get("/accounts/{account}", response_model=Subscription)
    async def subscription(account: AccountPath) -> Any:
        try:
            return await service.get_subscription(get_runtime(), account)
        except TariffError as exc:
            return refusal(exc)

    @router.post("/accounts/{account}/plan", response_model=service.CommandResult)
    async def activate(account: AccountPath, body: PlanRequest) -> Any:
        return await call(service.activate_plan,
                          service.ActivatePlan(account_number=account, plan=body.plan))

    @router.put("/accounts/{account}/plan", response_model=service.CommandResult)
    async def change(account: AccountPath, body: PlanRequest) -> Any:
        return await call(service.change_tariff,
                          service.ChangePlan(account_number=account, plan=body.plan))

    @router.post("/accounts/{account}/options", response_model=service.CommandResult)
    async def add(account: AccountPath, body: OptionRequest) -> Any:
        return await call(service.add_account_option,
                          service.AddOption(account_number=account, option=body.option))

    @router.delete("/accounts/{account}/options/{option}", response_model=service.CommandResult)
    async def remove(account: AccountPath, option: str) -> Any:
        return await call(service.remove_account_option,
                          service.RemoveOption(account_number=account, option=option))

    @router.post("/accounts/{account}/voluntary-block", response_model=service.CommandResult)
    async def start_block(account: AccountPath, body: Annotated[BlockRequest, Body()]) -> Any:
        return await call(service.start_block, service.StartVoluntaryBlock(
            account_number=account, days=body.days, requested_via=body.requested_via))

    @router.delete("/accounts/{account}/voluntary-block", response_model=service.CommandResult)
    async def end_block(account: AccountPath) -> Any:
        return await call(service.end_block, service.EndVoluntaryBlock(account_number=account))

    return router

