"""Every refusal of the tariff service: a machine-readable code, a message a person can act on,
the input at fault (``field``) and the kind of refusal (``kind``), which alone decides the HTTP
status and the dead letter (:mod:`billing_events.errors`): an account not registered here is
NOT_FOUND; a refusal that names an input is INVALID; one the account's state gives is CONFLICT.

These live apart from :mod:`tariff.domain` because the catalog raises them too, and the domain
reads the catalog: one module both can import keeps the imports one-way.
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from billing_events.errors import DomainError, ErrorKind
from billing_contracts.money import Money


class TariffError(DomainError):
    """Base of every tariff refusal."""

    code = "tariff_error"


class CatalogInvalid(TariffError):
    code = "catalog_invalid"
    kind = ErrorKind.INVALID

    def __init__(self, source: str, problems: str) -> None:
        super().__init__(f"tariff catalog {source} is invalid: {problems}")


class UnknownRegion(TariffError):
    code = "unknown_region"
    kind = ErrorKind.INVALID

    def __init__(self, region: str) -> None:
        super().__init__(f"unknown region {region!r}", field="region", params={"region": region})


class UnknownPlan(TariffError):
    code = "unknown_plan"
    kind = ErrorKind.INVALID

    def __init__(self, plan: str) -> None:
        super().__init__(f"unknown tariff plan {plan!r}", field="plan", params={"plan": plan})


class UnknownOption(TariffError):
    code = "unknown_option"
    kind = ErrorKind.INVALID

    def __init__(self, option: str) -> None:
        super().__init__(f"unknown option {option!r}", field="option", params={"option": option})


class UnknownEquipment(TariffError):
    code = "unknown_equipment"
    kind = ErrorKind.INVALID

    def __init__(self, equipment: str) -> None:
        super().__init__(f"unknown equipment {equipment!r}", field="equipment", params={"equipment": equipment})


class EquipmentNotSoldWithPlan(TariffError):
    code = "equipment_not_sold_with_plan"
    kind = ErrorKind.INVALID

    def __init__(self, equipment: str, plan: str, region: str) -> None:
        super().__init__(
            f"equipment {equipment!r} is not rented with plan {plan!r} in region {region!r}",
            field="equipment", params={"equipment": equipment, "plan": plan, "region": region},
        )


class EquipmentNotSoldInRegion(TariffError):
    code = "equipment_not_in_region"
    kind = ErrorKind.INVALID

    def __init__(self, equipment: str, region: str) -> None:
        super().__init__(f"equipment {equipment!r} is not rented out in region {region!r}", field="equipment",
                         params={"equipment": equipment, "region": region})


class EquipmentAlreadyRented(TariffError):
    code = "equipment_already_rented"
    kind = ErrorKind.INVALID

    def __init__(self, equipment: str) -> None:
        super().__init__(f"equipment {equipment!r} is already on the account", field="equipment",
                         params={"equipment": equipment})


class EquipmentNotRented(TariffError):
    code = "equipment_not_rented"
    kind = ErrorKind.INVALID

    def __init__(self, equipment: str) -> None:
        super().__init__(f"equipment {equipment!r} is not on the account", field="equipment",
                         params={"equipment": equipment})


class EquipmentNotRentedWithNewPlan(TariffError):
    code = "equipment_not_rented_with_new_plan"
    kind = ErrorKind.INVALID

    def __init__(self, plan: str, equipment: list[str]) -> None:
        super().__init__(
            f"plan {plan!r} is not rented with equipment {', '.join(equipment)}; return it first",
            field="plan", params={"plan": plan, "equipment": equipment},
        )


class UnknownChannelPackage(TariffError):
    code = "unknown_channel_package"
    kind = ErrorKind.INVALID

    def __init__(self, package: str) -> None:
        super().__init__(f"unknown channel package {package!r}", field="package", params={"package": package})


class PlanNotSoldInRegion(TariffError):
    code = "plan_not_in_region"
    kind = ErrorKind.INVALID

    def __init__(self, plan: str, region: str) -> None:
        super().__init__(f"plan {plan!r} is not sold in region {region!r}", field="plan",
                         params={"plan": plan, "region": region})


class OptionNotSoldInRegion(TariffError):
    code = "option_not_in_region"
    kind = ErrorKind.INVALID

    def __init__(self, option: str, region: str) -> None:
        super().__init__(f"option {option!r} is not sold in region {region!r}", field="option",
                         params={"option": option, "region": region})


class OptionNotSoldWithPlan(TariffError):
    code = "option_not_sold_with_plan"
    kind = ErrorKind.INVALID

    def __init__(self, option: str, plan: str) -> None:
        super().__init__(f"option {option!r} is not sold with plan {plan!r}", field="option",
                         params={"option": option, "plan": plan})


class AlreadyActive(TariffError):
    code = "already_active"
    kind = ErrorKind.INVALID

    def __init__(self, account_number: str, plan: str) -> None:
        super().__init__(
            f"account {account_number} already has plan {plan!r}; change the plan instead",
            field="plan", params={"plan": plan},
        )


class NotActive(TariffError):
    code = "not_active"
    kind = ErrorKind.CONFLICT

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number} has no active plan; activate one first")


class PlanUnchanged(TariffError):
    code = "plan_unchanged"
    kind = ErrorKind.INVALID

    def __init__(self, plan: str) -> None:
        super().__init__(f"the account is already on plan {plan!r}", field="plan", params={"plan": plan})


class OptionsNotSoldWithNewPlan(TariffError):
    code = "options_not_sold_with_new_plan"
    kind = ErrorKind.INVALID

    def __init__(self, plan: str, options: list[str]) -> None:
        super().__init__(
            f"plan {plan!r} is not sold with option(s) {', '.join(options)}; remove them first",
            field="plan", params={"plan": plan, "options": options},
        )


class OptionAlreadyAdded(TariffError):
    code = "option_already_added"
    kind = ErrorKind.INVALID

    def __init__(self, option: str) -> None:
        super().__init__(f"option {option!r} is already on the account", field="option", params={"option": option})


class OptionNotPresent(TariffError):
    code = "option_not_present"
    kind = ErrorKind.INVALID

    def __init__(self, option: str) -> None:
        super().__init__(f"option {option!r} is not on the account", field="option", params={"option": option})


class VoluntaryBlockRefused(TariffError):
    """A voluntary block request broke one of the rules of the domain note; ``rule`` says which."""

    code = "voluntary_block_refused"
    rule: ClassVar[str]

    def __init__(self, detail: str, *, field: str | None = None, params: dict[str, Any] | None = None) -> None:
        super().__init__(f"voluntary block request refused by {self.rule}: {detail}", field=field, params=params)


class BlockDaysOutOfRange(VoluntaryBlockRefused):
    code = "block_days_out_of_range"
    kind = ErrorKind.INVALID
    rule = "rule 1 (a block lasts at most 30 days a year)"

    def __init__(self, days: int, maximum: int) -> None:
        super().__init__(f"{days} day(s) asked, allowed 1 to {maximum}", field="days",
                         params={"days": days, "maximum": maximum})


class BlockAlreadyUsedThisYear(VoluntaryBlockRefused):
    code = "block_once_a_year"
    kind = ErrorKind.CONFLICT
    rule = "rule 1 (only once a calendar year; a block counts toward every year it touches)"

    def __init__(self, year: int, previous_start: date, previous_last_day: date) -> None:
        super().__init__(
            f"the {year} block was already used, by the block from {previous_start.isoformat()}"
            f" to {previous_last_day.isoformat()}",
            params={"year": year, "previous_start": previous_start, "previous_last_day": previous_last_day},
        )


class BlockNeedsHomeInternet(VoluntaryBlockRefused):
    code = "block_needs_home_internet"
    kind = ErrorKind.INVALID
    rule = "rule 3 (not available without a home internet connection)"

    def __init__(self, plan: str) -> None:
        super().__init__(f"plan {plan!r} has no home internet", field="plan", params={"plan": plan})


class BlockNotAffordable(VoluntaryBlockRefused):
    code = "block_insufficient_funds"
    kind = ErrorKind.CONFLICT
    rule = "rule 5 (the account must have enough money to pay for the block)"

    def __init__(self, price: Money, available: Money) -> None:
        super().__init__(f"the block costs {price}, the account can pay {available}",
                         params={"price": price, "available": available})


class BlockAlreadyRunning(VoluntaryBlockRefused):
    code = "block_already_running"
    kind = ErrorKind.CONFLICT
    rule = "rule 1 (one block at a time, once a year)"

    def __init__(self, last_day: date) -> None:
        super().__init__(f"a voluntary block is running until {last_day.isoformat()}", params={"last_day": last_day})


class NoRunningBlock(VoluntaryBlockRefused):
    code = "no_running_block"
    kind = ErrorKind.CONFLICT
    rule = "rule 6 (only a running block can be ended early)"

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number} has no running voluntary block")


class AccountIsClosed(TariffError):
    code = "account_closed"
    kind = ErrorKind.CONFLICT

    def __init__(self, account_number: str, closed_on: date) -> None:
        super().__init__(f"account {account_number} was closed on {closed_on.isoformat()}")


class ClosureLeavesDebt(TariffError):
    code = "closure_leaves_debt"
    kind = ErrorKind.CONFLICT

    def __init__(self, account_number: str, owed: Money) -> None:
        super().__init__(
            f"account {account_number} would owe {owed} after its final charges; the debt is paid"
            " before the account is closed",
            params={"owed": owed},
        )


class ClosureTargetRefused(TariffError):
    code = "closure_target_refused"
    kind = ErrorKind.INVALID

    def __init__(self, detail: str) -> None:
        super().__init__(f"the money left cannot go there: {detail}", field="transfer_to")


class UnknownAccount(TariffError):
    """The account was never registered here (no SubscriberRegistered reached the tariff)."""

    code = "unknown_account"
    kind = ErrorKind.NOT_FOUND

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number} is not registered", field="account_number")
