"""The notifier's HTTP routes: the delivery log of one account.

It takes a subscriber token for that account or a service token (operations); refusals have the
suite's one shape (:class:`billing_events.http.Problem`).
"""

from __future__ import annotations

from typing import Annotated

from billing_events.auth import AuthenticatedRoute, Caller, require_account
from billing_events.http import AccountPath, callers, problem_responses
from fastapi import APIRouter, Query

from notifier.context import NotifierContext
from notifier.service import DeliveryLog, DeliveryLogQuery, delivery_log
from notifier.store import DeliveryStatus


def build_router(context: NotifierContext) -> APIRouter:
    router = APIRouter(route_class=AuthenticatedRoute, prefix="/notifier", tags=["notifier"], responses=problem_responses(401, 403, 422))

    @router.get("/accounts/{account_number}/deliveries", response_model=DeliveryLog,
                openapi_extra=callers("subscriber", "service"),
                responses={404: {**problem_responses(404)[404],
                                 "description": "the notifier knows nothing of this account"}})
    async def account_deliveries(
        caller: Caller,
        account_number: AccountPath,
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> DeliveryLog:
        require_account(caller, account_number)
        query = DeliveryLogQuery(account_number=account_number, status=status, limit=limit, before_id=before_id)
        return await delivery_log(context, query)

    return router
