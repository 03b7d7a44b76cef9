"""What the tariff service's commands take and answer: validated where they enter (HTTP, the
CLI, a test); each is run by the function of :mod:`tariff.service` of the same name."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.tariff import ClosureSettlement, RequestChannel
from billing_events.service import Command
from tariff.domain import Subscription


class AccountCommand(Command):
    """A command about one account."""

    account_number: AccountNumber
    correlation_id: UUID | None = Field(
        default=None, description="Carried by every event the command publishes (new if absent)"
    )


EquipmentCode = Annotated[str, Field(min_length=1, max_length=40)]


class ActivatePlan(AccountCommand):
    plan: str = Field(min_length=1, max_length=40)
    equipment: list[EquipmentCode] = Field(
        default_factory=list, max_length=10, description="Equipment chosen with the plan"
    )


class ChangePlan(AccountCommand):
    plan: str = Field(min_length=1, max_length=40)


class AddOption(AccountCommand):
    option: str = Field(min_length=1, max_length=40)


class RemoveOption(AccountCommand):
    option: str = Field(min_length=1, max_length=40)


class RentEquipment(AccountCommand):
    equipment: EquipmentCode


class ReturnEquipment(AccountCommand):
    equipment: EquipmentCode


class StartVoluntaryBlock(AccountCommand):
    days: int = Field(description="1 to 30; checked by the domain so a refusal names rule 1")
    requested_via: RequestChannel = RequestChannel.CABINET


class EndVoluntaryBlock(AccountCommand):
    pass


class CloseAccount(AccountCommand):
    """Support closes the account: final charges through today, then the money left is refunded
    or transferred (``transfer_to``) by the ledger."""

    settlement: ClosureSettlement
    transfer_to: AccountNumber | None = None
    requested_by: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class CommandResult(BaseModel):
    """The account's state after the command and the types of the events it published."""

    subscription: Subscription
    events: list[str]
    billing_day: date = Field(description="The billing day the command was taken on")
