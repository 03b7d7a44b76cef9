"""An account's whole life, merged from every service's own events.

Each service keeps the events it published (and the payments it took from the channels) in its
database and answers ``GET /<service>/accounts/{account}/events`` from an index on the account,
a page at a time (:mod:`billing_events.archive`). So a history costs what the account's own
events cost, whatever the size of the topics, ends when the last page says so, and survives a
broker that lost its topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from billing_cli.output import Exit, fail, money
from billing_contracts import topics
from billing_contracts.envelope import Envelope, decode_object

HISTORY_TOPICS = (topics.IDENTITY, topics.PAYMENTS, topics.LEDGER, topics.LEDGER_COMMANDS, topics.TARIFF, topics.NOTIFIER)


@dataclass(frozen=True)
class HistoryLine:
    envelope: Envelope[Any]
    balance: int | None
    """The main balance after this event, for events that moved money (BalanceChanged)."""


async def read_account(services: Mapping[str, str], token: str, account: str) -> list[Envelope[Any]]:
    """Every event the services (name -> base URL) published about ``account``."""
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        found = await asyncio.gather(*(_read_service(client, name, url, account) for name, url in services.items()))
    return [envelope for events in found for envelope in events]


async def _read_service(client: httpx.AsyncClient, name: str, url: str, account: str) -> list[Envelope[Any]]:
    found: list[Envelope[Any]] = []
    after: int | None = 0
    while after is not None:
        try:
            response = await client.get(f"{url}/{name}/accounts/{account}/events", params={"after_id": after})
        except httpx.TransportError as exc:
            fail(f"the {name} service is not reachable at {url}: {type(exc).__name__}", Exit.UNREACHABLE)
        if response.status_code >= 400:
            fail(f"{name} refused the history ({response.status_code}): {response.text[:200]}",
                 Exit.NOT_FOUND if response.status_code == 404 else Exit.REFUSED)
        page = response.json()
        found.extend(decode_object(event) for event in page["events"])
        after = page["next_after_id"]
    return found


def timeline(envelopes: list[Envelope[Any]]) -> list[HistoryLine]:
    """Events in the order they happened, each money event with the balance it left."""
    ordered = sorted({e.event_id: e for e in envelopes}.values(), key=lambda e: (e.occurred_at, e.event_id))
    lines = []
    for envelope in ordered:
        balance = envelope.payload.main.minor if envelope.event_type == "BalanceChanged" else None
        lines.append(HistoryLine(envelope, balance))
    return lines


def summary(envelope: Envelope[Any], account: str | None = None) -> str:
    """One line a person reads about ``account`` (by default the one the event is keyed by): the
    event's own fields, an account number only when it is another one, money as money, no secrets."""
    payload, account = envelope.payload, account or envelope.account
    skip = {"sealed_secret", "sealed_contact", "transaction_id", "cause_event_id"}
    parts = []
    for name, value in payload:
        if name in skip or value in (None, "", (), account):
            continue
        if hasattr(value, "minor") and hasattr(value, "currency"):
            value = money(value.minor, value.currency)
        elif hasattr(value, "value"):
            value = value.value
        parts.append(f"{name}={value}")
    return ", ".join(parts)
