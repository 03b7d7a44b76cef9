"""The cabinet row of ``python -m bench`` at a tiny size: the overview's time beside the calls
it makes, each made directly (how fast is not checked: the row's numbers belong to
docs/performance.md)."""

from __future__ import annotations

from bench import cabinet
from bench.infra import Broker, Databases
from billing_events.testing.infrastructure import Infrastructure

OVERVIEW_CALLS = {
    "GET /ledger/accounts/{account}", "GET /ledger/accounts/{account}/statement", "GET /tariff/accounts/{account}",
    "GET /tariff/accounts/{account}/forecast", "GET /identity/me", "GET /identity/me/accounts",
}
"""What the overview asks the services for (billing_cabinet.app's ``_overview_page``): the
region's plans come from the cabinet's copy of the public catalog."""


async def test_the_cabinet_row_times_the_overview_and_each_call_it_makes(
        bootstrap_servers: str, infrastructure: Infrastructure) -> None:
    databases = Databases(infrastructure.postgres_url)
    figures = await cabinet.run(Broker(bootstrap_servers, "the tests' broker"), databases,
                                subscribers=3, rounds=2, say=lambda _line: None)

    assert (figures["subscribers"], figures["rounds"], figures["pages"]) == (3, 2, 6)
    assert set(figures["calls"]) == OVERVIEW_CALLS  # the reference is the page's own calls, each timed
    for name in ("cabinet_overview_p50_ms", "cabinet_overview_p95_ms", "slowest_call_p95_ms", "calls_at_once_p95_ms"):
        assert figures[name] > 0, name
    assert all(call["p95_ms"] >= call["p50_ms"] > 0 for call in figures["calls"].values()), figures["calls"]
    assert figures["slowest_call_p95_ms"] == max(call["p95_ms"] for call in figures["calls"].values())
    assert figures["calls"][figures["slowest_call"]]["p95_ms"] == figures["slowest_call_p95_ms"]
    assert databases.created == []  # the services' databases are dropped with them
