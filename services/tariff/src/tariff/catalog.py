"""The tariff catalog: regions, plans, options, equipment and TV channels, kept as data operations
can edit.

The catalog is a versioned YAML file (``catalog.yaml`` beside this module is the default). Every
price is a monthly price in minor units (kopecks) of the catalog's currency, given per region:
a plan or an option is sold in exactly the regions that price it, which is how "the list of
tariffs depends on the region" is expressed. Equipment (a router, a set-top box) is rented with
the plans it is sold with: free with those listed under ``free_with``, at its regional price
with the others ("usually free with the plan, not always"). A bundle names its internet and TV parts and must
cost less than the two apart in every region it is sold in.

Entities are YAML lists with an explicit ``code`` (not mappings keyed by code) and the loader
refuses duplicate mapping keys, because plain YAML silently keeps the last of two equal keys.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from billing_contracts.envelope import describe_validation_error
from billing_contracts.money import MINOR_UNIT_DIGITS, CurrencyCode, Money, PositiveMoney, format_amount
from tariff.errors import (
    CatalogInvalid,
    EquipmentNotSoldInRegion,
    EquipmentNotSoldWithPlan,
    OptionNotSoldInRegion,
    OptionNotSoldWithPlan,
    PlanNotSoldInRegion,
    UnknownChannelPackage,
    UnknownEquipment,
    UnknownOption,
    UnknownPlan,
    UnknownRegion,
)

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.yaml")

# Codes go into charge ids and event fields, so they stay short and plain.
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", examples=["internet-100"])]
Name = Annotated[str, Field(min_length=1, max_length=80)]
MonthlyKopecks = Annotated[StrictInt, Field(gt=0, description="Monthly price in minor units")]
RegionalPrices = Annotated[
    dict[Code, MonthlyKopecks],
    Field(min_length=1, description="Region code -> monthly price; sold only where priced"),
]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Spec):
    code: Code
    name: Name
    voluntary_block_price: MonthlyKopecks = Field(description="Price of one voluntary block")


class ChannelPackage(_Spec):
    """A list of TV channels; ``includes`` lets a bigger package extend smaller ones."""

    code: Code
    name: Name
    includes: tuple[Code, ...] = ()
    channels: tuple[Annotated[str, Field(min_length=1, max_length=80)], ...] = ()


class PlanKind(StrEnum):
    INTERNET = "internet"
    TV = "tv"
    BUNDLE = "bundle"


class Plan(_Spec):
    """Exactly one of: an internet plan (``internet_mbps``), a TV plan (``tv_package``), or a
    bundle of one internet and one TV plan (``parts``)."""

    code: Code
    name: Name
    internet_mbps: Annotated[StrictInt, Field(gt=0)] | None = None
    tv_package: Code | None = None
    parts: tuple[Code, ...] = ()
    prices: RegionalPrices

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        given = [self.internet_mbps is not None, self.tv_package is not None, bool(self.parts)]
        if given.count(True) != 1:
            raise ValueError("a plan has exactly one of internet_mbps, tv_package or parts")
        return self

    @property
    def kind(self) -> PlanKind:
        if self.parts:
            return PlanKind.BUNDLE
        return PlanKind.INTERNET if self.internet_mbps is not None else PlanKind.TV


class OptionKind(StrEnum):
    MULTIROOM = "multiroom"
    ANTIVIRUS = "antivirus"
    CHANNEL_PACKAGE = "channel_package"


class Option(_Spec):
    code: Code
    name: Name
    kind: OptionKind
    channel_package: Code | None = Field(default=None, description="Only for channel packages")
    sold_with: tuple[Code, ...] = Field(min_length=1, description="Plan codes it can be added to")
    prices: RegionalPrices

    @model_validator(mode="after")
    def _package_matches_kind(self) -> Self:
        if (self.kind is OptionKind.CHANNEL_PACKAGE) != (self.channel_package is not None):
            raise ValueError("channel_package is required for, and only for, kind channel_package")
        return self


class EquipmentKind(StrEnum):
    ROUTER = "router"
    SET_TOP_BOX = "set_top_box"


class Equipment(_Spec):
    code: Code
    name: Name
    kind: EquipmentKind
    sold_with: tuple[Code, ...] = Field(min_length=1, description="Plan codes it can be rented with")
    free_with: tuple[Code, ...] = Field(default=(), description="Of those, the plans it costs nothing with")
    prices: RegionalPrices = Field(description="The monthly rent with the other plans, per region")

    def is_free_with(self, plan: str) -> bool:
        return plan in self.free_with


def _duplicates(codes: list[str]) -> list[str]:
    return sorted({code for code in codes if codes.count(code) > 1})


class Catalog(_Spec):
    version: Annotated[StrictInt, Field(ge=1, description="Bumped on every published change")]
    currency: CurrencyCode
    regions: tuple[Region, ...] = Field(min_length=1)
    channel_packages: tuple[ChannelPackage, ...] = ()
    plans: tuple[Plan, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()
    equipment: tuple[Equipment, ...] = ()

    _regions: dict[str, Region] = PrivateAttr()
    _packages: dict[str, ChannelPackage] = PrivateAttr()
    _plans: dict[str, Plan] = PrivateAttr()
    _options: dict[str, Option] = PrivateAttr()
    _equipment: dict[str, Equipment] = PrivateAttr()

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, currency: str) -> str:
        if currency not in MINOR_UNIT_DIGITS:
            raise ValueError(f"unknown currency {currency!r}")
        return currency

    def model_post_init(self, context: Any, /) -> None:
        self._regions = {region.code: region for region in self.regions}
        self._packages = {package.code: package for package in self.channel_packages}
        self._plans = {plan.code: plan for plan in self.plans}
        self._options = {option.code: option for option in self.options}
        self._equipment = {item.code: item for item in self.equipment}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [
            *self._duplicate_codes(),
            *self._unknown_price_regions(),
            *self._package_problems(),
            *self._plan_problems(),
            *self._option_problems(),
            *self._equipment_problems(),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _duplicate_codes(self) -> list[str]:
        groups = {
            "region": self.regions,
            "channel package": self.channel_packages,
            "plan": self.plans,
            "option": self.options,
            "equipment": self.equipment,
        }
        return [
            f"{what} code {code!r} is used twice"
            for what, items in groups.items()
            for code in _duplicates([item.code for item in items])
        ]

    def _unknown_price_regions(self) -> list[str]:
        return [
            f"{item.code}: price for unknown region {region!r}"
            for item in (*self.plans, *self.options, *self.equipment)
            for region in item.prices
            if region not in self._regions
        ]

    def _package_problems(self) -> list[str]:
        problems = [
            f"channel package {package.code}: includes unknown package {included!r}"
            for package in self.channel_packages
            for included in package.includes
            if included not in self._packages
        ]
        if not problems:
            problems = [
                f"channel package {code}: includes itself through {' -> '.join(path)}"
                for code in self._packages
                if (path := self._include_cycle(code, (code,)))
            ]
        return problems

    def _include_cycle(self, code: str, path: tuple[str, ...]) -> tuple[str, ...]:
        for included in self._packages[code].includes:
            if included == path[0]:
                return (*path, included)
            if included not in path and (cycle := self._include_cycle(included, (*path, included))):
                return cycle
        return ()

    def _plan_problems(self) -> list[str]:
        problems = [
            f"plan {plan.code}: unknown channel package {plan.tv_package!r}"
            for plan in self.plans
            if plan.tv_package is not None and plan.tv_package not in self._packages
        ]
        for bundle in (plan for plan in self.plans if plan.kind is PlanKind.BUNDLE):
            problems += self._bundle_problems(bundle)
        return problems

    def _bundle_problems(self, bundle: Plan) -> list[str]:
        unknown = [part for part in bundle.parts if part not in self._plans]
        if unknown:
            return [f"bundle {bundle.code}: unknown part(s) {', '.join(unknown)}"]
        parts = [self._plans[part] for part in bundle.parts]
        if sorted(part.kind for part in parts) != sorted([PlanKind.INTERNET, PlanKind.TV]):
            return [f"bundle {bundle.code}: parts must be one internet plan and one TV plan"]
        problems = []
        for region, price in bundle.prices.items():
            unsold = [part.code for part in parts if region not in part.prices]
            if unsold:
                problems.append(
                    f"bundle {bundle.code}: sold in {region} but its part(s)"
                    f" {', '.join(unsold)} are not"
                )
            elif price >= (apart := sum(part.prices[region] for part in parts)):
                problems.append(
                    f"bundle {bundle.code}: costs {format_amount(price, self.currency)} in {region},"
                    f" not less than its parts apart ({format_amount(apart, self.currency)})"
                )
        return problems

    def _option_problems(self) -> list[str]:
        problems = [
            f"option {option.code}: sold with unknown plan {plan!r}"
            for option in self.options
            for plan in option.sold_with
            if plan not in self._plans
        ]
        problems += [
            f"option {option.code}: unknown channel package {option.channel_package!r}"
            for option in self.options
            if option.channel_package is not None and option.channel_package not in self._packages
        ]
        return problems

    def _equipment_problems(self) -> list[str]:
        problems = [
            f"equipment {item.code}: sold with unknown plan {plan!r}"
            for item in self.equipment
            for plan in item.sold_with
            if plan not in self._plans
        ]
        problems += [
            f"equipment {item.code}: free with plan {plan!r} it is not sold with"
            for item in self.equipment
            for plan in item.free_with
            if plan not in item.sold_with
        ]
        return problems

    # Lookups. Each raises a TariffError naming what was not found.

    def region(self, code: str) -> Region:
        try:
            return self._regions[code]
        except KeyError:
            raise UnknownRegion(code) from None

    def plan(self, code: str) -> Plan:
        try:
            return self._plans[code]
        except KeyError:
            raise UnknownPlan(code) from None

    def option(self, code: str) -> Option:
        try:
            return self._options[code]
        except KeyError:
            raise UnknownOption(code) from None

    def channel_package(self, code: str) -> ChannelPackage:
        try:
            return self._packages[code]
        except KeyError:
            raise UnknownChannelPackage(code) from None

    def plans_of_region(self, region: str) -> tuple[Plan, ...]:
        """The plans a subscriber of the region may choose, in catalog order."""
        self.region(region)
        return tuple(plan for plan in self.plans if region in plan.prices)

    def options_for_plan(self, plan: str, region: str) -> tuple[Option, ...]:
        """The options that can be added to the plan in the region, in catalog order."""
        self.plan_price(plan, region)
        return tuple(
            option
            for option in self.options
            if plan in option.sold_with and region in option.prices
        )

    def plan_price(self, plan: str, region: str) -> PositiveMoney:
        """Monthly price of the plan in the region; refused if the plan is not sold there."""
        self.region(region)
        try:
            return self._money(self.plan(plan).prices[region])
        except KeyError:
            raise PlanNotSoldInRegion(plan, region) from None

    def option_price(self, option: str, region: str) -> PositiveMoney:
        self.region(region)
        try:
            return self._money(self.option(option).prices[region])
        except KeyError:
            raise OptionNotSoldInRegion(option, region) from None

    def option_allowed_with_plan(self, option: str, plan: str, region: str) -> bool:
        self.plan(plan)
        self.region(region)
        sold = self.option(option)
        return plan in sold.sold_with and region in sold.prices

    def require_option_sold_with(self, option: str, plan: str, region: str) -> Option:
        """The option, if it may be added to the plan in the region; otherwise say why not."""
        self.option_price(option, region)
        self.plan(plan)
        sold = self.option(option)
        if plan not in sold.sold_with:
            raise OptionNotSoldWithPlan(option, plan)
        return sold

    def equipment_item(self, code: str) -> Equipment:
        try:
            return self._equipment[code]
        except KeyError:
            raise UnknownEquipment(code) from None

    def equipment_for_plan(self, plan: str, region: str) -> tuple[Equipment, ...]:
        """The equipment that can be rented with the plan in the region, in catalog order."""
        self.plan_price(plan, region)
        return tuple(item for item in self.equipment if self._rentable(item, plan, region))

    def equipment_rent(self, code: str, plan: str, region: str) -> Money:
        """What the equipment costs a month with the plan in the region: zero where it is free
        with the plan; refused where it is not rented with the plan there."""
        self.plan_price(plan, region)
        item = self.equipment_item(code)
        if not self._rentable(item, plan, region):
            raise EquipmentNotSoldWithPlan(code, plan, region)
        if item.is_free_with(plan):
            return Money.zero(self.currency)
        return self.equipment_price(code, region)

    def equipment_price(self, code: str, region: str) -> PositiveMoney:
        """The equipment's monthly rent in the region, where it is not free with the plan."""
        self.region(region)
        try:
            return self._money(self.equipment_item(code).prices[region])
        except KeyError:
            raise EquipmentNotSoldInRegion(code, region) from None

    @staticmethod
    def _rentable(item: Equipment, plan: str, region: str) -> bool:
        return plan in item.sold_with and (item.is_free_with(plan) or region in item.prices)

    def voluntary_block_price(self, region: str) -> PositiveMoney:
        return self._money(self.region(region).voluntary_block_price)

    def components(self, plan: str) -> tuple[Plan, ...]:
        """The internet and TV plans a plan is made of: its parts for a bundle, else itself."""
        found = self.plan(plan)
        return tuple(self._plans[part] for part in found.parts) or (found,)

    def has_home_internet(self, plan: str) -> bool:
        return any(part.internet_mbps is not None for part in self.components(plan))

    def channels_of_package(self, package: str) -> tuple[str, ...]:
        """The package's channels after its includes, each once, included packages first."""
        found = self.channel_package(package)
        channels: dict[str, None] = {}
        for included in found.includes:
            channels.update(dict.fromkeys(self.channels_of_package(included)))
        channels.update(dict.fromkeys(found.channels))
        return tuple(channels)

    def channels_of_plan(self, plan: str) -> tuple[str, ...]:
        """The TV channels a plan shows; none for an internet-only plan."""
        return tuple(
            channel
            for part in self.components(plan)
            if part.tv_package is not None
            for channel in self.channels_of_package(part.tv_package)
        )

    def channels_of_option(self, option: str) -> tuple[str, ...]:
        package = self.option(option).channel_package
        return self.channels_of_package(package) if package is not None else ()

    def _money(self, minor: int) -> PositiveMoney:
        return PositiveMoney(minor=minor, currency=self.currency)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping with the same key twice instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_catalog(text: str, source: str = "<text>") -> Catalog:
    """Read and validate a catalog, or raise :class:`CatalogInvalid` listing every problem."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CatalogInvalid(source, f"not readable YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogInvalid(source, "the top level must be a mapping")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogInvalid(source, describe_validation_error(exc)) from None


def load_catalog(path: Path = DEFAULT_CATALOG_PATH) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogInvalid(str(path), f"cannot be read: {exc.strerror}") from None
    return parse_catalog(text, source=str(path))
