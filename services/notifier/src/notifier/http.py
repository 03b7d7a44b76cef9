"""The notifier's HTTP routes: the delivery log of one account.

It takes a subscriber token for that account or a service token (operations); refusals have the
suite's one shape (:class:`billing_events.http.Problem`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from billing_events.auth import Caller, require_account
from billing_events.http import ApiError, problem_responses
from billing_events.runtime import ServiceRuntime
from fastapi import APIRouter, Path, Query

from notifier.service import DeliveryLog, DeliveryLogQuery, delivery_log
from notifier.store import DeliveryStatus


def build_router(runtime: Callable[[], ServiceRuntime]) -> APIRouter:
    router = APIRouter(prefix="/notifier", tags=["notifier"], responses=problem_responses(401, 403, 422))

    @router.get("/accounts/{account_number}/deliveries", response_model=DeliveryLog,
                responses={404: {**problem_responses(404)[404],
                                 "description": "the notifier knows nothing of this account"}})
    async def account_deliveries(
        caller: Caller,
        account_number: Annotated[str, Path(pattern=r"^[0-9]{12}$")],
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> DeliveryLog:
        require_account(caller, account_number)
        query = DeliveryLogQuery(account_number=account_number, status=status, limit=limit, before_id=before_id)
        found = await delivery_log(runtime(), query)
        if found.subscriber is None and not found.deliveries:
            raise ApiError(404, "unknown_account", "the notifier has no subscriber or delivery for this account")
        return found

    return router
