"""The notifier's HTTP routes for operations: the delivery log of one account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from billing_events.runtime import ServiceRuntime
from fastapi import APIRouter, HTTPException, Path, Query

from notifier.service import DeliveryLog, DeliveryLogQuery, delivery_log
from notifier.store import DeliveryStatus


def build_router(runtime: Callable[[], ServiceRuntime]) -> APIRouter:
    router = APIRouter(prefix="/notifier", tags=["notifier"])

    @router.get("/accounts/{account_number}/deliveries", response_model=DeliveryLog,
                responses={404: {"description": "the notifier knows nothing of this account"}})
    async def account_deliveries(
        account_number: Annotated[str, Path(pattern=r"^\d{12}$")],
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(ge=1)] = None,
    ) -> DeliveryLog:
        query = DeliveryLogQuery(account_number=account_number, status=status, limit=limit, before_id=before_id)
        found = await delivery_log(runtime(), query)
        if found.subscriber is None and not found.deliveries:
            raise HTTPException(status_code=404, detail=f"no subscriber or delivery for account {account_number}")
        return found

    return router
