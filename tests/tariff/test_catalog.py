"""The shipped tariff catalog, its lookups, and the errors a broken catalog file produces."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tariff.catalog import DEFAULT_CATALOG_PATH, Catalog, PlanKind, load_catalog, parse_catalog
from tariff.errors import (
    CatalogInvalid,
    OptionNotSoldInRegion,
    OptionNotSoldWithPlan,
    PlanNotSoldInRegion,
    TariffError,
    UnknownOption,
    UnknownPlan,
    UnknownRegion,
)


def test_shipped_catalog_has_versioned_regions_plans_and_options(catalog: Catalog) -> None:
    assert catalog.version >= 1
    assert {region.code for region in catalog.regions} >= {"moscow", "spb", "kazan"}
    assert {plan.kind for plan in catalog.plans} == set(PlanKind)
    assert {option.code for option in catalog.options} >= {"multiroom", "antivirus"}


def test_every_bundle_is_cheaper_than_its_parts_wherever_it_is_sold(catalog: Catalog) -> None:
    bundles = [plan for plan in catalog.plans if plan.kind is PlanKind.BUNDLE]
    assert bundles
    for bundle in bundles:
        for region in bundle.prices:
            apart = sum(catalog.plan_price(part, region).minor for part in bundle.parts)
            assert catalog.plan_price(bundle.code, region).minor < apart


def test_a_region_sees_only_the_plans_priced_for_it(catalog: Catalog) -> None:
    kazan = [plan.code for plan in catalog.plans_of_region("kazan")]
    moscow = [plan.code for plan in catalog.plans_of_region("moscow")]
    assert "internet-500" in moscow
    assert "internet-500" not in kazan
    assert all("kazan" in catalog.plan(code).prices for code in kazan)
    with pytest.raises(PlanNotSoldInRegion) as refused:
        catalog.plan_price("internet-500", "kazan")
    assert refused.value.code == "plan_not_in_region"
    assert refused.value.field == "plan"


def test_prices_are_per_region_in_the_catalog_currency(catalog: Catalog) -> None:
    moscow = catalog.plan_price("internet-100", "moscow")
    kazan = catalog.plan_price("internet-100", "kazan")
    assert moscow.currency == kazan.currency == catalog.currency
    assert moscow != kazan
    assert catalog.voluntary_block_price("moscow") != catalog.voluntary_block_price("kazan")
    antivirus = catalog.option_price("antivirus", "spb")
    assert (antivirus.minor, antivirus.currency) == (
        catalog.option("antivirus").prices["spb"],
        catalog.currency,
    )


@pytest.mark.parametrize(
    ("lookup", "error", "field"),
    [
        (lambda c: c.region("atlantis"), UnknownRegion, "region"),
        (lambda c: c.plans_of_region("atlantis"), UnknownRegion, "region"),
        (lambda c: c.plan("internet-9000"), UnknownPlan, "plan"),
        (lambda c: c.plan_price("internet-9000", "moscow"), UnknownPlan, "plan"),
        (lambda c: c.option("golf-tv"), UnknownOption, "option"),
        (lambda c: c.option_price("sport", "kazan"), OptionNotSoldInRegion, "option"),
        (
            lambda c: c.require_option_sold_with("multiroom", "internet-100", "moscow"),
            OptionNotSoldWithPlan,
            "option",
        ),
    ],
)
def test_lookups_name_what_was_not_found(
    catalog: Catalog, lookup: Callable[[Catalog], object], error: type[TariffError], field: str
) -> None:
    with pytest.raises(error) as refused:
        lookup(catalog)
    assert refused.value.field == field
    assert refused.value.code == error.code


def test_options_are_sold_with_their_plans_only(catalog: Catalog) -> None:
    assert catalog.option_allowed_with_plan("antivirus", "internet-100", "moscow")
    assert catalog.option_allowed_with_plan("multiroom", "combo-100-optimum", "moscow")
    assert not catalog.option_allowed_with_plan("multiroom", "internet-100", "moscow")
    assert not catalog.option_allowed_with_plan("sport", "tv-basic", "kazan")
    offered = {option.code for option in catalog.options_for_plan("tv-basic", "kazan")}
    assert "multiroom" in offered
    assert "antivirus" not in offered
    assert "sport" not in offered


def test_channel_lists_follow_packages_and_bundles(catalog: Catalog) -> None:
    basic = catalog.channels_of_plan("tv-basic")
    optimum = catalog.channels_of_plan("tv-optimum")
    maximum = catalog.channels_of_plan("tv-maximum")
    assert len(basic) < len(optimum) < len(maximum)
    assert set(basic) < set(optimum) < set(maximum)
    assert len(set(maximum)) == len(maximum)
    assert catalog.channels_of_plan("combo-100-optimum") == optimum
    assert catalog.channels_of_plan("internet-100") == ()
    assert catalog.channels_of_option("kino") == catalog.channels_of_package("kino")
    assert catalog.channels_of_option("antivirus") == ()


def test_home_internet_comes_from_internet_plans_and_bundles(catalog: Catalog) -> None:
    assert catalog.has_home_internet("internet-100")
    assert catalog.has_home_internet("combo-300-maximum")
    assert not catalog.has_home_internet("tv-maximum")


# A broken catalog: each case edits the shipped file's data and names a phrase of the error.


def _shipped() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))


def _plan(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(plan for plan in data["plans"] if plan["code"] == code)


def _option(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(option for option in data["options"] if option["code"] == code)


BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "price for an unknown region": (
        lambda d: _plan(d, "internet-100")["prices"].update(sochi=50000),
        "internet-100: price for unknown region 'sochi'",
    ),
    "bundle not cheaper": (
        lambda d: _plan(d, "combo-100-optimum")["prices"].update(moscow=95000),
        "bundle combo-100-optimum: costs 950.00 RUB in moscow, not less than its parts apart (950.00 RUB)",
    ),
    "bundle sold where a part is not": (
        lambda d: _plan(d, "combo-500-maximum")["prices"].update(kazan=70000),
        "bundle combo-500-maximum: sold in kazan but its part(s) internet-500 are not",
    ),
    "bundle of two internet plans": (
        lambda d: _plan(d, "combo-100-optimum").update(parts=["internet-100", "internet-300"]),
        "parts must be one internet plan and one TV plan",
    ),
    "option sold with an unknown plan": (
        lambda d: _option(d, "antivirus")["sold_with"].append("internet-9000"),
        "option antivirus: sold with unknown plan 'internet-9000'",
    ),
    "duplicate plan code": (
        lambda d: d["plans"].append(dict(_plan(d, "tv-basic"))),
        "plan code 'tv-basic' is used twice",
    ),
    "misspelt field": (
        lambda d: _plan(d, "tv-basic").update(price=_plan(d, "tv-basic").pop("prices")),
        "plans.3.price: Extra inputs are not permitted",
    ),
    "fractional price": (
        lambda d: _plan(d, "tv-basic")["prices"].update(moscow=250.5),
        "plans.3.prices.moscow",
    ),
    "negative price": (
        lambda d: _option(d, "kids")["prices"].update(spb=-1),
        "greater than 0",
    ),
    "missing version": (lambda d: d.pop("version"), "version: Field required"),
    "unknown currency": (lambda d: d.update(currency="XXX"), "unknown currency 'XXX'"),
    "plan with two kinds": (
        lambda d: _plan(d, "tv-basic").update(internet_mbps=100),
        "exactly one of internet_mbps, tv_package or parts",
    ),
    "channel package option without a package": (
        lambda d: _option(d, "kino").pop("channel_package"),
        "channel_package is required for, and only for, kind channel_package",
    ),
    "unknown channel package": (
        lambda d: _plan(d, "tv-basic").update(tv_package="radio"),
        "plan tv-basic: unknown channel package 'radio'",
    ),
    "package including itself": (
        lambda d: d["channel_packages"][0].update(includes=["maximum"]),
        "includes itself through basic -> maximum -> optimum -> basic",
    ),
}


@pytest.mark.parametrize("case", BREAKAGES, ids=list(BREAKAGES))
def test_a_broken_catalog_is_refused_with_a_clear_reason(case: str) -> None:
    breakage, phrase = BREAKAGES[case]
    data = _shipped()
    breakage(data)
    with pytest.raises(CatalogInvalid) as refused:
        parse_catalog(yaml.safe_dump(data, allow_unicode=True), source="edited.yaml")
    assert refused.value.code == "catalog_invalid"
    assert "edited.yaml" in str(refused.value)
    assert phrase in str(refused.value)


def test_the_unedited_data_passes_the_same_round_trip() -> None:
    data = _shipped()
    assert parse_catalog(yaml.safe_dump(data, allow_unicode=True)) == load_catalog()


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("version: 1\nversion: 2\n", "duplicate key 'version'"),
        ("version: [1\n", "not readable YAML"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_yaml_is_refused(text: str, phrase: str) -> None:
    with pytest.raises(CatalogInvalid, match=phrase):
        parse_catalog(text)


def test_a_missing_catalog_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogInvalid, match="cannot be read"):
        load_catalog(tmp_path / "absent.yaml")
