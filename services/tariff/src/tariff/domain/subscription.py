"""One account's subscription: its region, its plan and options over time, its balance and blocks.

Changes take effect from the billing day after the request (a day already begun is charged as
it began). The state keeps the terms in effect plus a schedule of future terms; ``terms_on(day)``
answers what a given day is charged for, so charging never depends on when housekeeping ran.
Every transition is a pure function returning an :class:`Outcome`: the new state and the events
to publish. A refused request raises a :class:`~tariff.errors.TariffError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from billing_contracts.catalog.common import AccountNumber
from billing_contracts.versions import is_newer
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType, PaymentTypeChanged
from billing_contracts.catalog.tariff import (
    ChargeApplied,
    FeeKind,
    EquipmentRented,
    EquipmentReturned,
    OptionAdded,
    OptionRemoved,
    SubscriptionActivated,
    TariffChanged,
)
from billing_contracts.envelope import Event
from billing_contracts.money import CurrencyMismatch, Money, PositiveMoney
from tariff.catalog import Catalog
from tariff.errors import (
    AlreadyActive,
    EquipmentAlreadyRented,
    EquipmentNotRented,
    EquipmentNotRentedWithNewPlan,
    NotActive,
    OptionAlreadyAdded,
    OptionNotPresent,
    OptionsNotSoldWithNewPlan,
    PlanUnchanged,
)


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubscriptionStatus(StrEnum):
    PENDING = "pending"  # registered, no plan activated yet
    ACTIVE = "active"  # a plan is activated (charged from its effective day on)
    CLOSED = "closed"  # closed by support: charged through its closing day, never after


class Terms(_State):
    """What is charged: a plan (None before activation), the options and the rented equipment,
    each kept sorted."""

    plan: str | None = None
    options: tuple[str, ...] = ()
    equipment: tuple[str, ...] = ()

    def with_plan(self, plan: str) -> Terms:
        return self.model_copy(update={"plan": plan})

    def with_option(self, option: str) -> Terms:
        return self.model_copy(update={"options": tuple(sorted({*self.options, option}))})

    def without_option(self, option: str) -> Terms:
        return self.model_copy(update={"options": tuple(o for o in self.options if o != option)})

    def with_equipment(self, equipment: str) -> Terms:
        return self.model_copy(update={"equipment": tuple(sorted({*self.equipment, equipment}))})

    def without_equipment(self, equipment: str) -> Terms:
        return self.model_copy(update={"equipment": tuple(e for e in self.equipment if e != equipment)})


class ScheduledTerms(_State):
    effective_from: date
    terms: Terms


class AccountBalance(_State):
    """What the ledger last told us about the account's money (from BalanceChanged)."""

    main: Money
    payment_type: PaymentType = PaymentType.PREPAID
    credit_limit: Money
    version: int | None = Field(
        default=None,
        description="The ledger's account_version of the BalanceChanged this balance came from"
        " (None: none applied yet, or only events from before versions)",
    )

    @classmethod
    def zero(cls, currency: str) -> AccountBalance:
        """A new account before its first ledger transaction."""
        return cls(main=Money.zero(currency), credit_limit=Money.zero(currency))

    @classmethod
    def from_event(cls, event: BalanceChanged, held: int | None = None) -> AccountBalance:
        """The balance the event tells; an unversioned event keeps the version ``held``."""
        version = held if event.account_version is None else event.account_version
        return cls(
            main=event.main, payment_type=event.payment_type, credit_limit=event.credit_limit,
            version=version,
        )

    def is_older_than(self, event: BalanceChanged | PaymentTypeChanged) -> bool:
        """Whether the event is newer than this balance: only then is it applied (and decided on)."""
        return is_newer(event.account_version, self.version)

    def with_payment_type(self, event: PaymentTypeChanged) -> AccountBalance:
        """The payment type and credit limit the event tells, the same money (none moved)."""
        version = self.version if event.account_version is None else event.account_version
        return self.model_copy(update={"payment_type": event.payment_type, "credit_limit": event.credit_limit,
                                       "version": version})

    def available(self) -> Money:
        """What the account can still spend: the balance, plus the credit limit on credit."""
        if self.payment_type is PaymentType.CREDIT:
            return self.main + self.credit_limit
        return self.main

    def in_debt(self) -> bool:
        """Prepaid below zero, or credit below minus its limit: the account must be blocked."""
        return self.available() < Money.zero(self.main.currency)

    def after(self, charges: Iterable[UnsettledCharge]) -> AccountBalance:
        """The balance once the ledger has taken ``charges`` from the main balance."""
        currency = self.main.currency
        taken = 0
        for charge in charges:  # in integers: a Money per step would cost more than the sum
            if charge.amount.currency != currency:
                raise CurrencyMismatch(f"cannot mix {currency} and {charge.amount.currency}")
            taken += charge.amount.minor
        return self.model_copy(update={"main": Money(minor=self.main.minor - taken, currency=currency)})


class UnsettledCharge(_State):
    """A charge this service published that the ledger has not (wholly) settled yet.

    ``amount`` is what is still to be taken: it counts against the main balance in full, even
    where the ledger may pay part of it from the bonus balance (the tariff cannot know how much
    bonus will be left by then), so the expected balance is never better than the real one.
    """

    event_id: UUID = Field(description="The published ChargeApplied's event id")
    charge_id: str
    amount: PositiveMoney


class VoluntaryBlock(_State):
    """A voluntary block covering the billing days ``start`` to ``last_day`` inclusive.

    ``last_day`` moves earlier when the subscriber ends the block early; ``ended`` is set once
    the end was announced (AccountUnblocked), early or at the planned end.
    """

    start: date
    days: int = Field(ge=1, description="The length the subscriber chose")
    last_day: date
    price: PositiveMoney
    ended: bool = False

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.last_day

    @property
    def years(self) -> range:
        """The calendar years the block counts toward: each year one of its days falls in, and
        the year it started even when ended before covering a day (its use is spent)."""
        return range(self.start.year, max(self.start, self.last_day).year + 1)


class ItemPeriod(_State):
    """A plan, an option or a rented item of equipment over the days it was in effect, and what it
    was charged for them."""

    fee_kind: FeeKind = Field(description="subscription (a plan), option or equipment")
    code: str
    started: date = Field(description="The first billing day it was in effect")
    ended: date | None = Field(default=None, description="The last billing day it was in effect; none: it still is")
    charged_days: int = Field(default=0, description="Days it was charged (a blocked day is not)")
    charged: Money = Field(description="What it was charged in all")
    daily_fee: Money | None = Field(default=None, description="What its last charged day cost")


class Subscription(_State):
    account_number: AccountNumber
    region: str
    terms: Terms = Terms()
    schedule: tuple[ScheduledTerms, ...] = Field(
        default=(), description="Future terms, by ascending effective_from"
    )
    balance: AccountBalance
    debt_blocked: bool = False
    voluntary_blocks: tuple[VoluntaryBlock, ...] = Field(
        default=(), description="Every voluntary block ever taken, oldest first"
    )
    unsettled: tuple[UnsettledCharge, ...] = Field(
        default=(),
        description="Charges published but not yet settled in a BalanceChanged, oldest first",
    )
    history: tuple[ItemPeriod, ...] = Field(
        default=(),
        description="Every plan and option in effect on a closed billing day, oldest first: recorded by the day"
                    " close that finds a change in effect (accounts billed before it was kept start at their"
                    " first day closed since)",
    )
    closed_on: date | None = Field(
        default=None, description="The closing day: the last billing day charged; none while open"
    )

    @property
    def expected_balance(self) -> AccountBalance:
        """The ledger's last word on the balance, less the charges published since that it has
        not settled yet: what the balance will be once it has (the debt rule's input)."""
        return self.balance.after(self.unsettled)

    def terms_on(self, day: date) -> Terms:
        due = [entry.terms for entry in self.schedule if entry.effective_from <= day]
        return due[-1] if due else self.terms

    @property
    def planned_terms(self) -> Terms:
        """The terms once every scheduled change has taken effect: what new requests build on."""
        return self.schedule[-1].terms if self.schedule else self.terms

    @property
    def status(self) -> SubscriptionStatus:
        if self.closed_on is not None:
            return SubscriptionStatus.CLOSED
        if self.planned_terms.plan is None:
            return SubscriptionStatus.PENDING
        return SubscriptionStatus.ACTIVE

    def voluntary_block_on(self, day: date) -> VoluntaryBlock | None:
        return next((block for block in self.voluntary_blocks if block.covers(day)), None)

    @property
    def unended_voluntary_block(self) -> VoluntaryBlock | None:
        return next((block for block in self.voluntary_blocks if not block.ended), None)

    def is_blocked_on(self, day: date) -> bool:
        return self.debt_blocked or self.voluntary_block_on(day) is not None

    def settled(self, day: date) -> Subscription:
        """Fold the scheduled terms due by ``day`` into the terms in effect (housekeeping)."""
        if not self.schedule or self.schedule[0].effective_from > day:
            return self  # nothing due: most days of most accounts (a copy costs more than this close)
        return self.model_copy(
            update={
                "terms": self.terms_on(day),
                "schedule": tuple(entry for entry in self.schedule if entry.effective_from > day),
            }
        )

    def scheduled(self, terms: Terms, effective_from: date) -> Subscription:
        """Plan ``terms`` from ``effective_from``; they replace anything planned from then on."""
        kept = tuple(entry for entry in self.schedule if entry.effective_from < effective_from)
        entry = ScheduledTerms(effective_from=effective_from, terms=terms)
        return self.model_copy(update={"schedule": (*kept, entry)})


@dataclass(frozen=True)
class Outcome:
    """The state after a transition and the events it must publish, in order."""

    state: Subscription
    events: tuple[Event, ...] = ()

    @property
    def charges(self) -> tuple[ChargeApplied, ...]:
        return tuple(event for event in self.events if isinstance(event, ChargeApplied))


def next_billing_day(today: date) -> date:
    return today + timedelta(days=1)


def register(account_number: str, region: str, catalog: Catalog) -> Subscription:
    """A subscriber just registered (SubscriberRegistered): known region, no plan yet."""
    catalog.region(region)
    return Subscription(
        account_number=account_number,
        region=region,
        balance=AccountBalance.zero(catalog.currency),
    )


def activate(
    state: Subscription, catalog: Catalog, plan: str, today: date, equipment: Iterable[str] = ()
) -> Outcome:
    """Activate the first plan, with the equipment chosen for it; the plan must be sold in the
    subscriber's region, and each piece of equipment rented with it there."""
    if state.planned_terms.plan is not None:
        raise AlreadyActive(state.account_number, state.planned_terms.plan)
    price = catalog.plan_price(plan, state.region)
    effective_from = next_billing_day(today)
    event = SubscriptionActivated(
        account_number=state.account_number,
        region=state.region,
        plan=plan,
        monthly_price=price,
        effective_from=effective_from,
    )
    activated = Outcome(state.scheduled(state.planned_terms.with_plan(plan), effective_from), (event,))
    for code in dict.fromkeys(equipment):
        rented = rent_equipment(activated.state, catalog, code, today)
        activated = Outcome(rented.state, (*activated.events, *rented.events))
    return activated


def change_plan(state: Subscription, catalog: Catalog, plan: str, today: date) -> Outcome:
    """Move to another plan of the region. Options the new plan is not sold with are refused
    (the subscriber removes them first) rather than dropped silently."""
    current = _require_plan(state)
    if plan == current:
        raise PlanUnchanged(plan)
    price = catalog.plan_price(plan, state.region)
    orphans = [
        option
        for option in state.planned_terms.options
        if not catalog.option_allowed_with_plan(option, plan, state.region)
    ]
    if orphans:
        raise OptionsNotSoldWithNewPlan(plan, orphans)
    unrentable = [
        code
        for code in state.planned_terms.equipment
        if catalog.equipment_item(code) not in catalog.equipment_for_plan(plan, state.region)
    ]
    if unrentable:
        raise EquipmentNotRentedWithNewPlan(plan, unrentable)
    effective_from = next_billing_day(today)
    event = TariffChanged(
        account_number=state.account_number,
        previous_plan=current,
        plan=plan,
        monthly_price=price,
        effective_from=effective_from,
    )
    return Outcome(state.scheduled(state.planned_terms.with_plan(plan), effective_from), (event,))


def add_option(state: Subscription, catalog: Catalog, option: str, today: date) -> Outcome:
    """Add an option sold with the (planned) plan in the subscriber's region."""
    plan = _require_plan(state)
    catalog.require_option_sold_with(option, plan, state.region)
    if option in state.planned_terms.options:
        raise OptionAlreadyAdded(option)
    effective_from = next_billing_day(today)
    event = OptionAdded(
        account_number=state.account_number,
        option=option,
        monthly_price=catalog.option_price(option, state.region),
        effective_from=effective_from,
    )
    terms = state.planned_terms.with_option(option)
    return Outcome(state.scheduled(terms, effective_from), (event,))


def remove_option(state: Subscription, option: str, today: date) -> Outcome:
    if option not in state.planned_terms.options:
        raise OptionNotPresent(option)
    effective_from = next_billing_day(today)
    event = OptionRemoved(
        account_number=state.account_number, option=option, effective_from=effective_from
    )
    terms = state.planned_terms.without_option(option)
    return Outcome(state.scheduled(terms, effective_from), (event,))


def rent_equipment(state: Subscription, catalog: Catalog, equipment: str, today: date) -> Outcome:
    """Put equipment rented with the (planned) plan in the subscriber's region on the account."""
    plan = _require_plan(state)
    monthly = catalog.equipment_rent(equipment, plan, state.region)
    if equipment in state.planned_terms.equipment:
        raise EquipmentAlreadyRented(equipment)
    effective_from = next_billing_day(today)
    event = EquipmentRented(
        account_number=state.account_number,
        equipment=equipment,
        monthly_price=monthly,
        effective_from=effective_from,
    )
    terms = state.planned_terms.with_equipment(equipment)
    return Outcome(state.scheduled(terms, effective_from), (event,))


def return_equipment(state: Subscription, equipment: str, today: date) -> Outcome:
    if equipment not in state.planned_terms.equipment:
        raise EquipmentNotRented(equipment)
    effective_from = next_billing_day(today)
    event = EquipmentReturned(
        account_number=state.account_number, equipment=equipment, effective_from=effective_from
    )
    terms = state.planned_terms.without_equipment(equipment)
    return Outcome(state.scheduled(terms, effective_from), (event,))


def _require_plan(state: Subscription) -> str:
    plan = state.planned_terms.plan
    if plan is None:
        raise NotActive(state.account_number)
    return plan
