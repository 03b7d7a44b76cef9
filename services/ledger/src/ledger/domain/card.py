"""Card payments from the cabinet: a payment intent, and what an acquirer's callback does to it.

The cabinet opens an intent (the account its token names, an amount); the subscriber pays it on
the acquirer's page; the acquirer's callback settles it once. An approval is the intent's one
payment (channel ``card``, the acquirer's reference); a decline ends it without money. The same
callback again changes nothing and is answered as the first was; any other verdict on a settled
intent is a conflict, never a second payment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from billing_contracts.money import Money

from ledger.domain.accounts import AccountState
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.outcome import check_movement_limit, require_open


class IntentStatus(StrEnum):
    OPEN = "open"
    """Waiting for the acquirer's verdict."""
    PAID = "paid"
    DECLINED = "declined"


class Verdict(StrEnum):
    """What the acquirer says of the card payment."""

    APPROVED = "approved"
    DECLINED = "declined"


SETTLED_BY: dict[Verdict, IntentStatus] = {Verdict.APPROVED: IntentStatus.PAID, Verdict.DECLINED: IntentStatus.DECLINED}


@dataclass(frozen=True)
class CardIntent:
    intent_id: UUID
    account: str
    amount: Money
    status: IntentStatus
    created_at: datetime
    acquirer_reference: str | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True)
class Callback:
    """An acquirer's callback, once its signature holds."""

    intent_id: UUID
    verdict: Verdict
    amount: Money
    reference: str
    sent_at: datetime


@dataclass(frozen=True)
class Settlement:
    intent: CardIntent
    repeat: bool
    """The same callback again: nothing changed, the first answer stands."""

    @property
    def pays(self) -> bool:
        """This callback is the intent's payment: its PaymentReceived is staged now."""
        return not self.repeat and self.intent.status is IntentStatus.PAID


def open_intent(account: AccountState | None, number: str, amount: Money, *, intent_id: UUID, now: datetime,
                max_payment: int) -> CardIntent:
    """An intent to pay ``amount`` by card into the open account ``number``."""
    require_open(account, amount.currency, number=number)
    check_movement_limit(amount, max_payment)
    return CardIntent(intent_id=intent_id, account=number, amount=amount, status=IntentStatus.OPEN, created_at=now)


def check_fresh(callback: Callback, now: datetime, window: timedelta) -> None:
    """A callback signed longer ago (or further ahead) than ``window`` is a replay of a captured
    one, refused whatever it says: within the window, a repeat is absorbed by :func:`settle`."""
    if abs(now - callback.sent_at) > window:
        raise CommandRefused(ErrorCode.STALE_CALLBACK, "the callback was not sent within the accepted window",
                             field="sent_at")


def settle(intent: CardIntent | None, callback: Callback, now: datetime) -> Settlement:
    """What the acquirer's ``callback`` does to ``intent`` (None: no such intent)."""
    if intent is None:
        raise CommandRefused(ErrorCode.UNKNOWN_INTENT, "no such card payment intent", field="intent_id")
    if (callback.amount.minor, callback.amount.currency) != (intent.amount.minor, intent.amount.currency):
        raise CommandRefused(ErrorCode.CALLBACK_AMOUNT_MISMATCH,
                             f"the callback says {callback.amount}, the intent is for {intent.amount}",
                             field="amount")
    settled_as = SETTLED_BY[callback.verdict]
    if intent.status is IntentStatus.OPEN:
        reference = callback.reference if settled_as is IntentStatus.PAID else None
        return Settlement(replace(intent, status=settled_as, acquirer_reference=reference, settled_at=now),
                          repeat=False)
    if intent.status is settled_as and (settled_as is IntentStatus.DECLINED or
                                        intent.acquirer_reference == callback.reference):
        return Settlement(intent, repeat=True)
    raise CommandRefused(ErrorCode.INTENT_ALREADY_SETTLED,
                         f"the card payment intent is already {intent.status.value}", field="intent_id")


__all__ = ["SETTLED_BY", "Callback", "CardIntent", "IntentStatus", "Settlement", "Verdict", "check_fresh",
           "open_intent", "settle"]
