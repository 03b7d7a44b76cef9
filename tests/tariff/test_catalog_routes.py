"""The catalog a subscriber and an operator can find: regions, channel packages, the plans and
options of a region with prices, what each plan includes and what can be combined; public routes,
from the catalog file a setting names."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_events.testing.clock import RunningClock
from tariff.app import build_runtime
from tariff.catalog import DEFAULT_CATALOG_PATH
from tariff.errors import CatalogInvalid
from tariff.settings import TariffSettings


@asynccontextmanager
async def _public(make_settings: Any, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The tariff's routes, asked without a token (the catalog is public)."""
    settings = await make_settings(TariffSettings, database="sqlite", **overrides)
    runtime = build_runtime(settings, RunningClock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app),
                                 base_url="http://tariff/tariff") as http:
        yield http


async def test_the_catalog_lists_regions_and_channel_packages(make_settings: Any, catalog: Any) -> None:
    async with _public(make_settings) as http:
        answer = await http.get("/catalog")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["version"], body["currency"]) == (catalog.version, "RUB")
    assert [(r["code"], r["voluntary_block_price"]) for r in body["regions"]] == [
        ("moscow", {"minor": 15000, "currency": "RUB"}), ("spb", {"minor": 12000, "currency": "RUB"}),
        ("kazan", {"minor": 9000, "currency": "RUB"})]
    packages = {p["code"]: p["channels"] for p in body["channel_packages"]}
    assert packages["optimum"][:len(packages["basic"])] == packages["basic"]  # optimum includes basic
    assert "Discovery Channel" in packages["optimum"] and "Discovery Channel" not in packages["basic"]


async def test_the_plans_of_a_region_say_what_they_include_and_which_options_they_take(make_settings: Any,
                                                                                         catalog: Any) -> None:
    async with _public(make_settings) as http:
        plans = {p["code"]: p for p in (await http.get("/regions/moscow/plans")).json()}
        kazan = {p["code"] for p in (await http.get("/regions/kazan/plans")).json()}
    combo = plans["combo-100-optimum"]
    assert (combo["kind"], combo["monthly_price_minor"], combo["currency"]) == ("bundle", 80000, "RUB")
    assert (combo["internet_mbps"], combo["tv_package"], combo["parts"]) == (100, "optimum", ["internet-100", "tv-optimum"])
    assert combo["tv_channels"] == len(catalog.channels_of_package("optimum"))
    assert combo["options"] == ["multiroom", "antivirus", "kino", "sport", "kids"]
    assert (plans["internet-100"]["tv_channels"], plans["internet-100"]["options"]) == (0, ["antivirus"])
    assert (plans["tv-basic"]["internet_mbps"], plans["tv-basic"]["options"]) == (None, ["multiroom", "kino", "sport", "kids"])
    assert "internet-500" in plans and "internet-500" not in kazan  # the list depends on the region


async def test_the_options_of_a_region_name_their_channels_and_the_plans_they_go_with(make_settings: Any) -> None:
    async with _public(make_settings) as http:
        options = {o["code"]: o for o in (await http.get("/regions/kazan/options")).json()}
        unknown = await http.get("/regions/atlantis/options")
    assert "sport" not in options  # not sold in Kazan
    kino = options["kino"]
    assert (kino["kind"], kino["monthly_price_minor"]) == ("channel_package", 24900)
    assert "Кинохит" in kino["channels"]
    assert "combo-500-maximum" not in kino["sold_with"]  # that bundle is not sold in Kazan
    assert "internet-100" not in kino["sold_with"] and "tv-basic" in kino["sold_with"]
    assert options["antivirus"]["channels"] == []
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "region"


async def test_operations_publish_another_catalog_file_and_a_broken_one_stops_the_start(
    make_settings: Any, tmp_path: Path
) -> None:
    edited = tmp_path / "catalog.yaml"
    edited.write_text(re.sub(r"^version: \d+$", "version: 7", DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"),
                             flags=re.MULTILINE)
                      .replace("voluntary_block_price: 15000", "voluntary_block_price: 17500"), encoding="utf-8")
    async with _public(make_settings, catalog_path=edited) as http:
        body = (await http.get("/catalog")).json()
    assert body["version"] == 7 and body["regions"][0]["voluntary_block_price"]["minor"] == 17500

    edited.write_text(edited.read_text(encoding="utf-8").replace("prices: {moscow: 55000", "prices: {mars: 55000"),
                      encoding="utf-8")
    with pytest.raises(CatalogInvalid) as caught:
        async with _public(make_settings, catalog_path=edited):
            pass
    assert str(edited) in caught.value.message and "mars" in caught.value.message
