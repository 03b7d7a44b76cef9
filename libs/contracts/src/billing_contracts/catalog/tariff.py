"""Events the tariff service publishes: fees to charge and the account's access state."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, NamedTuple, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from billing_contracts import topics
from billing_contracts.catalog.common import AccountNumber
from billing_contracts.envelope import Event, upcaster
from billing_contracts.money import Money, PositiveMoney


class FeeKind(StrEnum):
    SUBSCRIPTION = "subscription"
    OPTION = "option"
    VOLUNTARY_BLOCK = "voluntary_block"
    EQUIPMENT = "equipment"


class ChargedItem(StrEnum):
    """What a fee is the price of."""

    PLAN = "plan"
    OPTION = "option"
    REGION = "region"
    """The region's voluntary block price."""
    EQUIPMENT = "equipment"


_ITEM_OF_FEE = {FeeKind.SUBSCRIPTION: ChargedItem.PLAN, FeeKind.OPTION: ChargedItem.OPTION,
                FeeKind.VOLUNTARY_BLOCK: ChargedItem.REGION, FeeKind.EQUIPMENT: ChargedItem.EQUIPMENT}


class ChargedFor(BaseModel):
    """The tariff catalog's item whose price a charge is."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item: ChargedItem
    code: str = Field(min_length=1, max_length=64, examples=["internet-100"],
                      description="The plan or option code of the tariff catalog; the region code for a"
                                  " voluntary block; the equipment code")


class _Charge(Event):
    """What every version of ChargeApplied says (a base: not an event type of its own)."""

    topic: ClassVar[str] = topics.TARIFF

    charge_id: str = Field(min_length=1, max_length=128, examples=["100000000008:2026-11-25:subscription:internet-100"])
    account_number: AccountNumber
    amount: PositiveMoney
    fee_kind: FeeKind
    billing_day: date
    description: str = Field(default="", max_length=200)


class ChargeApplied(_Charge):
    """Debit the subscriber for a fee. ``charge_id`` is unique: the ledger posts it once.

    v2: ``charged_for`` names the plan, option, region or equipment whose price it is (the
    statement shows it; v1 readers had to take it apart from ``charge_id``). v1 is published
    beside it; a producer may publish v1 alone while its consumers upgrade."""

    event_type: ClassVar[str] = "ChargeApplied"
    version: ClassVar[int] = 2

    charged_for: ChargedFor

    @classmethod
    def of(cls, account_number: str, day: date, kind: FeeKind, code: str, amount: PositiveMoney,
           description: str) -> ChargeApplied:
        """The charge of ``kind`` for the catalog item ``code`` on billing day ``day``."""
        return cls(charge_id=charge_id(account_number, day, kind, code), account_number=account_number,
                   amount=amount, fee_kind=kind, billing_day=day, description=description,
                   charged_for=ChargedFor(item=_ITEM_OF_FEE[kind], code=code))

    @property
    def key(self) -> ChargeKey:
        return ChargeKey(self.billing_day, self.fee_kind, self.charged_for.code)

    def previous_versions(self) -> tuple[Event, ...]:
        # v1's fields are v2's, validated when this charge was made: taken as they are, not
        # dumped and validated again (a day close makes a v1 copy of every charge).
        return (ChargeAppliedV1.model_construct(**{name: getattr(self, name) for name in ChargeAppliedV1.model_fields}),)


class ChargeAppliedV1(_Charge):
    """v1 of ChargeApplied (superseded by v2, still published beside it)."""

    event_type: ClassVar[str] = "ChargeApplied"


@upcaster
def charge_applied_v1_to_v2(old: ChargeAppliedV1) -> ChargeApplied:
    """v1 named the item only inside ``charge_id`` (``account:day:fee_kind:code``)."""
    key = parse_charge_id(old.charge_id)
    if key is None or (key.billing_day, key.fee_kind) != (old.billing_day, old.fee_kind):
        raise ValueError("charge_id does not name the billing day, fee kind and item charged")
    return ChargeApplied.of(old.account_number, old.billing_day, old.fee_kind, key.code, old.amount,
                            old.description)


def charge_id(account_number: str, day: date, kind: FeeKind, code: str) -> str:
    """``account:billing_day:fee_kind:code``: a function of what is charged alone, so closing a
    day twice yields the same ids. ``code`` is the plan or option (the region for a block fee)."""
    return f"{account_number}:{day.isoformat()}:{kind.value}:{code}"


class ChargeKey(NamedTuple):
    billing_day: date
    fee_kind: FeeKind
    code: str

    @property
    def what(self) -> str:
        """What was charged, for people: "plan internet-100", "option antivirus", "voluntary block"."""
        return {FeeKind.SUBSCRIPTION: f"plan {self.code}", FeeKind.OPTION: f"option {self.code}",
                FeeKind.VOLUNTARY_BLOCK: "voluntary block", FeeKind.EQUIPMENT: f"equipment {self.code}"}[self.fee_kind]


def parse_charge_id(value: str) -> ChargeKey | None:
    """The day, fee kind and code a :func:`charge_id` names; None for another shape."""
    parts = value.split(":", 3)
    if len(parts) != 4:
        return None
    try:
        return ChargeKey(date.fromisoformat(parts[1]), FeeKind(parts[2]), parts[3])
    except ValueError:
        return None


class BlockReason(StrEnum):
    DEBT = "debt"
    VOLUNTARY = "voluntary"


class AccountBlocked(Event):
    event_type: ClassVar[str] = "AccountBlocked"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    reason: BlockReason
    blocked_at: AwareDatetime = Field(
        description="When the block took effect. A voluntary block, or a debt block decided by a balance change:"
                    " the moment it was decided. A debt block decided by closing a billing day (that day's"
                    " charges took the balance into debt): the end of that day in the billing time zone, however"
                    " late the day was closed (a catch-up)")
    until: date | None = Field(default=None, description="Last day of a voluntary block")


class AccountUnblocked(Event):
    event_type: ClassVar[str] = "AccountUnblocked"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    reason: BlockReason = Field(description="The reason of the block that ended")
    unblocked_at: AwareDatetime = Field(
        description="When the block ended. A voluntary block ending on its own: the end of its last day in the"
                    " billing time zone, however late that day was closed (a catch-up); otherwise the moment it"
                    " was decided (a payment, an early end requested)")


CatalogCode = Annotated[str, Field(min_length=1, max_length=40)]
"""A plan or option code of the tariff catalog (the catalog keeps them to ``[a-z0-9-]``)."""


class SubscriptionActivated(Event):
    """A plan was activated for an account; charging starts on ``effective_from``."""

    event_type: ClassVar[str] = "SubscriptionActivated"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    region: str = Field(
        min_length=1, max_length=64, description="Region code from the tariff catalog"
    )
    plan: CatalogCode = Field(description="Plan code from the tariff catalog")
    monthly_price: PositiveMoney = Field(description="The plan's monthly price in the region")
    effective_from: date = Field(description="First billing day charged at this plan")


class TariffChanged(Event):
    """The account moves to another plan from ``effective_from`` (the billing day after the request)."""

    event_type: ClassVar[str] = "TariffChanged"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    previous_plan: CatalogCode = Field(description="Plan code before the change")
    plan: CatalogCode = Field(description="Plan code from effective_from on")
    monthly_price: PositiveMoney = Field(description="The new plan's monthly price in the region")
    effective_from: date = Field(description="First billing day charged at the new plan")


class OptionAdded(Event):
    """An option (multiroom, antivirus, a channel package) is charged from ``effective_from``."""

    event_type: ClassVar[str] = "OptionAdded"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    option: CatalogCode = Field(description="Option code from the tariff catalog")
    monthly_price: PositiveMoney = Field(description="The option's monthly price in the region")
    effective_from: date = Field(description="First billing day the option is charged")


class OptionRemoved(Event):
    """An option is no longer charged from ``effective_from`` on."""

    event_type: ClassVar[str] = "OptionRemoved"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    option: CatalogCode = Field(description="Option code from the tariff catalog")
    effective_from: date = Field(description="First billing day the option is no longer charged")


class EquipmentRented(Event):
    """Equipment (a router, a set-top box) is on the account from ``effective_from``: chosen with
    the plan at activation or added later. Charged daily like an option unless free with the plan."""

    event_type: ClassVar[str] = "EquipmentRented"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    equipment: CatalogCode = Field(description="Equipment code from the tariff catalog")
    monthly_price: Money = Field(
        description="The monthly rent with the plan in the region; zero where it is free with the plan"
                    " (a later plan change may change it: each billing day is charged at that day's plan)")
    effective_from: date = Field(description="First billing day the equipment is on the account")


class EquipmentReturned(Event):
    """Equipment is no longer on the account (nor charged) from ``effective_from`` on."""

    event_type: ClassVar[str] = "EquipmentReturned"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    equipment: CatalogCode = Field(description="Equipment code from the tariff catalog")
    effective_from: date = Field(description="First billing day the equipment is no longer charged")


class RequestChannel(StrEnum):
    """Where a subscriber asked for something (the voluntary block: cabinet or support)."""

    CABINET = "cabinet"
    SUPPORT = "support"


class VoluntaryBlockStarted(Event):
    """A paid voluntary block began: no fees for the days ``start`` to ``last_day`` inclusive.

    Published together with the ChargeApplied for its price and AccountBlocked(voluntary).
    """

    event_type: ClassVar[str] = "VoluntaryBlockStarted"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    start: date = Field(description="First blocked billing day")
    last_day: date = Field(description="Last blocked billing day; charging resumes the day after")
    days: int = Field(ge=1, le=30, description="Length of the block the subscriber chose")
    price: PositiveMoney = Field(description="What the block cost (the region's price)")
    requested_via: RequestChannel


class VoluntaryBlockEnded(Event):
    """A voluntary block is over, at its planned end or earlier because the subscriber asked.

    Published together with AccountUnblocked(voluntary).
    """

    event_type: ClassVar[str] = "VoluntaryBlockEnded"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    start: date = Field(description="First blocked billing day")
    last_day: date = Field(
        description="Last billing day that was blocked; before start if it ended on its first day"
    )
    early: bool = Field(description="True when the subscriber ended it before the planned end")
    ended_at: AwareDatetime = Field(description="As AccountUnblocked.unblocked_at, which is published with it")


class ClosureSettlement(StrEnum):
    """What becomes of the money left on a closed account, as the operator chose."""

    REFUND = "refund"
    """Paid back to the subscriber outside the suite (a payout from the operator's refunds account)."""
    TRANSFER = "transfer"
    """Moved to another personal account (``transfer_to``)."""


class SubscriptionClosed(Event):
    """The account is closed: its final charges (every billing day up to ``last_day``) were
    published before this event, under the same key, and nothing is charged after it. The ledger
    settles what is left on the main balance as ``settlement`` says, then closes the account; its
    number is never issued again.

    Published by the tariff when support (an operator, a service token) closes the account."""

    event_type: ClassVar[str] = "SubscriptionClosed"
    topic: ClassVar[str] = topics.TARIFF

    account_number: AccountNumber
    last_day: date = Field(description="The closing day: the last billing day charged")
    settlement: ClosureSettlement
    transfer_to: AccountNumber | None = Field(
        default=None, description="The account the money left goes to; only, and required, for settlement transfer")
    requested_by: str = Field(min_length=1, max_length=64, description="Who closed it, as their credentials say")
    reason: str = Field(min_length=1, max_length=500, description="Why, in the operator's words")
    closed_at: AwareDatetime

    @model_validator(mode="after")
    def _target_only_for_a_transfer(self) -> Self:
        if (self.settlement is ClosureSettlement.TRANSFER) != (self.transfer_to is not None):
            raise ValueError("transfer_to is required for, and only for, settlement transfer")
        if self.transfer_to == self.account_number:
            raise ValueError("the money cannot be transferred to the account being closed")
        return self
