"""Each service's own events, kept in its outbox: the index behind ``billing history``.

The services' databases are the system of record, and each keeps the events it published (the
outbox, retained: ``outbox_retention_hours=0``). ``GET /<service>/accounts/{account}/events``
reads one account's events from that archive through the ``outbox_by_key`` index, a page at a
time: what it costs follows the account's own events, not the size of the topics, and the last
page says so (``next_after_id`` is null) instead of a reader guessing from a quiet broker.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from billing_events.auth import AuthenticatedRoute, Caller, require_scope
from billing_events.db import Database
from billing_contracts.envelope import REGISTRY, UPCASTERS
from billing_events.http import callers, problem_responses
from billing_events.event_log import account_page

PAGE_SIZE = 1000


class AccountEvents(BaseModel):
    """One page of an account's events, oldest first."""

    events: list[dict[str, Any]] = Field(description="Envelopes as the service published them (newest versions only)")
    next_after_id: int | None = Field(description="Pass as after_id for the next page; null: this was the last page")


def is_current_version(headers: dict[str, str]) -> bool:
    """Is the row the event itself (from the headers, without decoding the body)? An older
    version published beside the newest (``copy_of``; before that header, any older version
    that cannot be read as the newest) tells the same fact again."""
    if "copy_of" in headers:
        return False
    event_type, version = headers.get("event_type"), headers.get("schema_version", "")
    versions = [known for (kind, known) in REGISTRY if kind == event_type]
    return (not versions or version == str(max(versions))
            or (version.isdigit() and (event_type, int(version)) in UPCASTERS))


def events_router(service: str, db: Database) -> APIRouter:
    router = APIRouter(route_class=AuthenticatedRoute, prefix=f"/{service}", tags=[service], responses=problem_responses(401, 403, 422))

    @router.get("/accounts/{account}/events", response_model=AccountEvents, response_class=Response,
                openapi_extra=callers("service"))
    async def account_events(
        caller: Caller,
        account: Annotated[str, Path(pattern=r"^[0-9]{12}$")],
        after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_SIZE)] = PAGE_SIZE,
    ) -> Response:
        """The events this service published about one account, in the order it staged them
        (operations: a service or operator token with the ``<service>:history`` scope)."""
        require_scope(caller, f"{service}:history")
        async with db.connect() as conn:
            rows = await account_page(conn, account, after_id=after_id, limit=limit)
        # The stored bytes are the published JSON: passed through, never decoded and encoded again.
        events = b",".join(row.value for row in rows if is_current_version(row.headers))
        following = str(rows[-1].id).encode() if len(rows) == limit else b"null"
        return Response(b'{"events":[' + events + b'],"next_after_id":' + following + b"}",
                        media_type="application/json")

    return router
