"""``billing catalog``: what can be bought where, from the tariff service's catalog routes, and
the bonus campaigns in force, from the ledger's (each service answers for what it owns)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from billing_cli.actions import call_service
from billing_cli.output import console, emit_json, money, reported


def _price(view: dict[str, Any]) -> str:
    return money(view["monthly_price_minor"], view["currency"])


def _includes(plan: dict[str, Any]) -> str:
    parts = [f"internet {plan['internet_mbps']} Mbit/s"] if plan["internet_mbps"] else []
    if plan["tv_package"]:
        parts.append(f"TV {plan['tv_package']} ({plan['tv_channels']} channels)")
    return " + ".join(parts)


def _money_view(value: dict[str, Any] | None) -> str:
    return "-" if value is None else money(value["minor"], value["currency"])


def _overview(catalog: dict[str, Any], campaigns: list[dict[str, Any]]) -> None:
    regions = Table(title=f"Regions (tariff catalog version {catalog['version']})")
    for column in ("region", "name", "voluntary block"):
        regions.add_column(column)
    for region in catalog["regions"]:
        regions.add_row(region["code"], region["name"], _money_view(region["voluntary_block_price"]))
    console.print(regions)
    packages = Table(title="TV channel packages")
    for column in ("package", "name", "channels"):
        packages.add_column(column)
    for package in catalog["channel_packages"]:
        packages.add_row(package["code"], package["name"], str(len(package["channels"])))
    console.print(packages)
    offers = Table(title="Bonus campaigns")
    for column in ("campaign", "back", "channels", "min payment", "cap per payment", "from", "to (excl.)", "now"):
        offers.add_column(column)
    for campaign in campaigns:
        offers.add_row(campaign["name"], campaign["percent_back"], ", ".join(campaign["channels"]) or "all",
                       _money_view(campaign["min_payment"]), _money_view(campaign["max_bonus"]),
                       campaign["valid_from"][:10], campaign["valid_to"][:10],
                       "active" if campaign["active"] else "announced")
    console.print(offers)
    console.print("plans, options and equipment of a region: billing catalog --region CODE")


def _region(region: str, plans: list[dict[str, Any]], options: list[dict[str, Any]],
            equipment: list[dict[str, Any]]) -> None:
    table = Table(title=f"Plans in {region} (charged daily: the monthly price over the month's days)")
    for column in ("plan", "name", "includes", "per month", "options it takes"):
        table.add_column(column, justify="right" if column == "per month" else "left")
    for plan in plans:
        table.add_row(plan["code"], plan["name"], _includes(plan), _price(plan), ", ".join(plan["options"]) or "-")
    console.print(table)
    table = Table(title=f"Options in {region}")
    for column in ("option", "name", "per month", "with plans"):
        table.add_column(column, justify="right" if column == "per month" else "left")
    for option in options:
        name = option["name"] + (f" ({len(option['channels'])} channels)" if option["channels"] else "")
        table.add_row(option["code"], name, _price(option), ", ".join(option["sold_with"]))
    console.print(table)
    table = Table(title=f"Equipment in {region}")
    for column in ("equipment", "name", "per month", "free with (rented at the monthly price with the others)"):
        table.add_column(column, justify="right" if column == "per month" else "left")
    for item in equipment:
        rent = "-" if item["monthly_price_minor"] is None else _price(item)
        table.add_row(item["code"], item["name"], rent, ", ".join(item["free_with"]) or "-")
    console.print(table)


def catalog(
    region: Annotated[str | None, typer.Option(help="The plans, options and equipment of this region (e.g. moscow)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """What is sold where: regions, channel packages and bonus campaigns; with --region, the
    region's plans (what each includes, the options it takes), options and equipment, with prices."""
    with reported():
        if region is None:
            found = call_service("tariff", "GET", "/tariff/catalog")
            campaigns = call_service("ledger", "GET", "/ledger/campaigns")
            if as_json:
                emit_json({**found, "campaigns": campaigns})
            else:
                _overview(found, campaigns)
            return
        plans = call_service("tariff", "GET", f"/tariff/regions/{region}/plans")
        options = call_service("tariff", "GET", f"/tariff/regions/{region}/options")
        equipment = call_service("tariff", "GET", f"/tariff/regions/{region}/equipment")
        if as_json:
            emit_json({"region": region, "plans": plans, "options": options, "equipment": equipment})
        else:
            _region(region, plans, options, equipment)
