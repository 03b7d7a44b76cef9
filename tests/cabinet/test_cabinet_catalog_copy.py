"""The cabinet keeps the tariff's public catalog pages for a while: they are everyone's, and a page
showing plan names should not wait for them on every view."""

from __future__ import annotations

import httpx

from billing_cabinet.services import Services

PLANS = [{"code": "internet-100", "name": "Интернет 100"}]


def counting() -> tuple[list[str], httpx.MockTransport]:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json=PLANS)

    return asked, httpx.MockTransport(answer)


async def test_a_catalog_page_is_asked_once_while_it_is_kept_and_again_after() -> None:
    asked, transport = counting()
    kept = Services({"tariff": "http://tariff"}, 5, transport, catalog_seconds=3600)
    assert [await kept.catalog("/tariff/regions/moscow/plans") for _ in range(3)] == [PLANS] * 3
    assert asked == ["/tariff/regions/moscow/plans"]

    asked, transport = counting()
    never_kept = Services({"tariff": "http://tariff"}, 5, transport, catalog_seconds=0)
    for _ in range(2):
        await never_kept.catalog("/tariff/regions/moscow/plans")
    assert asked == ["/tariff/regions/moscow/plans"] * 2
