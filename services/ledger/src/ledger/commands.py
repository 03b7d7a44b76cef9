"""What the ledger's commands take: validated where they enter (HTTP, a test, the simulation);
each is run by the function of :mod:`ledger.service` of the same name. Who asks
(``requested_by``, an operator's note) is what the caller's credentials say: a door fills it in
from them, never from a body. The acquirer's callback, which settles a card payment, is
:class:`ledger.domain.card.Callback`, built once its signature holds."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.ledger import PaymentType, RedemptionPurpose
from billing_contracts.money import Money, PositiveMoney
from billing_events.service import Command
from ledger.domain import OperatorNote

RequestId = Annotated[UUID | None, Field(description="Send the same id again to retry safely")]
Requester = Annotated[str, Field(min_length=1, max_length=64)]
RewardCode = Annotated[str, Field(min_length=1, max_length=40)]
RedemptionDescription = Annotated[str, StringConstraints(max_length=200, strip_whitespace=False)]
"""Kept as the caller wrote it: the request the command topic carries says what was sent."""


class Transfer(Command):
    """Move money between two main balances (a subscriber's request only out of their own account)."""

    from_account: AccountNumber
    to_account: AccountNumber
    amount: PositiveMoney
    requested_by: Requester
    request_id: RequestId = None


class RedeemBonus(Command):
    """Exchange an account's bonuses for a discount or a gift (``item``: the rewards catalogue's, at its price)."""

    account_number: AccountNumber
    amount: PositiveMoney
    purpose: RedemptionPurpose
    description: RedemptionDescription = ""
    item: RewardCode | None = None
    request_id: RequestId = None


class ChangePaymentType(Command):
    """Switch an account between prepaid and credit; a subscriber's own request has a ceiling on the limit."""

    account_number: AccountNumber
    payment_type: PaymentType
    credit_limit: Money
    requested_by: Requester


class ResolveSuspense(Command):
    """Operations move a payment parked in suspense to the account it was meant for."""

    parked_transaction_id: UUID
    target_account: AccountNumber
    operator: OperatorNote


class Reverse(Command):
    """An operator's correction: a new transaction with the negated postings of ``transaction_id``."""

    transaction_id: UUID
    operator: OperatorNote


class OpenCardPayment(Command):
    """An intent to pay ``amount`` by card into the account (a subscriber's token names it)."""

    account_number: AccountNumber
    amount: PositiveMoney
