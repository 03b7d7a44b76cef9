"""Money enters the journal once: every request that can move money has a business key, and the
ledger keeps one record per key with the fate it got.

"Already done?" is asked of the key, never of the outcome: a payment first parked in suspense
and delivered again once its account exists would otherwise build a *different* transaction
(credited, not parked) and the money would exist twice. The first fate wins; a repeat with the
same content changes nothing, a repeat with other content is a conflict, reported and never
applied.

A request id is the requester's own (as Stripe scopes an idempotency key to its account): the
key of a transfer or a payment type change is its requester and request id, that of a bonus
redemption its account and request id. One subscriber reusing another's id makes a new request
of their own, never a conflict naming the other's accounts, and cannot make theirs fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from billing_contracts.catalog.ledger import BonusRedemptionRequested, PaymentTypeChangeRequested, TransferRequested
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied
from billing_contracts.money import Money

from ledger.domain.errors import ANNOUNCEMENTS, CommandRefused, ErrorCode
from ledger.domain.outcome import Outcome, SuspenseStatus


class KeyFamily(StrEnum):
    PAYMENT = "payment"
    """channel + the channel's reference"""
    CHARGE = "charge"
    """the tariff service's charge id"""
    TRANSFER = "transfer"
    BONUS_REDEMPTION = "bonus_redemption"
    PAYMENT_TYPE_CHANGE = "payment_type_change"
    """the subscriber's or operator's request id"""
    SUSPENSE_PLACEMENT = "suspense_placement"
    """the parked transaction, and how many times it was placed before (a reversed placement
    re-opens the item for another one)"""


class Fate(StrEnum):
    POSTED = "posted"
    PARKED = "parked"
    PLACED = "placed"
    REFUSED = "refused"
    """announced as refused (TransferRejected, BonusRedemptionRejected): an answer, not an error"""
    APPLIED = "applied"
    """a settings change that moved no money"""


@dataclass(frozen=True, slots=True)
class BusinessKey:
    family: KeyFamily
    key: str
    fingerprint: str
    """The request's meaningful content, readable: what a repeat must match to be the same request."""
    unscoped: str | None = None
    """The key a request had before keys were scoped to their requester (its bare request id):
    a request decided then and delivered again is a repeat when its content is the same."""

    def describe(self) -> str:
        return f"{self.family.value} {self.key}"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    family: KeyFamily
    key: str
    fingerprint: str
    fate: Fate
    refusal: str | None
    transaction_ids: tuple[UUID, ...]
    cause_event_id: UUID | None
    answer: str | None = None
    """For a command from a door that waits for an answer (HTTP, CLI): the events it produced,
    as JSON, so a retry is answered with the very same outcome."""


def _money(money: Money) -> str:
    return str(money)


def request_key(requester: str, request_id: UUID) -> str:
    """A request id in its requester's scope: the business key of the request and of its transaction."""
    return f"{requester}/{request_id}"


def request_id_in(key: str) -> UUID:
    """The request id a key of :func:`request_key` holds (or a key written before keys were
    scoped to their requester: the bare id)."""
    return UUID(key.rpartition("/")[2])


def business_key(payload: Any) -> BusinessKey | None:
    """The key and fingerprint of a request that can move money (None: it cannot)."""
    match payload:
        case PaymentReceived():
            return BusinessKey(KeyFamily.PAYMENT, payload.payment_key,
                               f"{payload.account_number} {_money(payload.amount)}")
        case ChargeApplied():
            return BusinessKey(KeyFamily.CHARGE, payload.charge_id,
                               f"{payload.account_number} {_money(payload.amount)} {payload.fee_kind.value}")
        case TransferRequested():
            return BusinessKey(KeyFamily.TRANSFER, request_key(payload.requested_by, payload.request_id),
                               f"{payload.from_account} -> {payload.to_account} {_money(payload.amount)}",
                               str(payload.request_id))
        case BonusRedemptionRequested():
            return BusinessKey(KeyFamily.BONUS_REDEMPTION, request_key(payload.account_number, payload.request_id),
                               f"{payload.account_number} {_money(payload.amount)} {payload.purpose.value}",
                               str(payload.request_id))
        case PaymentTypeChangeRequested():
            return BusinessKey(KeyFamily.PAYMENT_TYPE_CHANGE, request_key(payload.requested_by, payload.request_id),
                               f"{payload.account_number} {payload.payment_type.value}"
                               f" {_money(payload.credit_limit)}", str(payload.request_id))
    return None


def placement_key(parked_transaction_id: UUID, placed_before: int, target_number: str) -> BusinessKey:
    return BusinessKey(KeyFamily.SUSPENSE_PLACEMENT, f"{parked_transaction_id}#{placed_before + 1}", target_number)


def record_for(records: Mapping[tuple[KeyFamily, str], IdempotencyRecord],
               key: BusinessKey) -> IdempotencyRecord | None:
    """The record of ``key``'s request: under its scoped key, or under the bare request id it
    had before with the very same content (an unscoped record with other content was someone
    else's request: never a conflict, never shown)."""
    record = records.get((key.family, key.key))
    if record is None and key.unscoped is not None:
        unscoped = records.get((key.family, key.unscoped))
        return unscoped if unscoped is not None and unscoped.fingerprint == key.fingerprint else None
    return record


def is_repeat(record: IdempotencyRecord | None, key: BusinessKey) -> bool:
    """True: this request was decided before, nothing happens again. Raises on a conflict."""
    if record is None:
        return False
    if record.fingerprint != key.fingerprint:
        raise CommandRefused(
            ErrorCode.CONFLICTING_DUPLICATE,
            f"{key.describe()} was first seen as {record.fingerprint} ({record.fate.value}),"
            f" now as {key.fingerprint}: refused, the first stands",
        )
    return True



def fate_of(outcome: Outcome) -> tuple[Fate, str | None]:
    """What a decided request became, for its record."""
    for event in outcome.events:
        if isinstance(event.payload, ANNOUNCEMENTS):
            return Fate.REFUSED, event.payload.reason.value
    if outcome.suspense is not None:
        return (Fate.PARKED if outcome.suspense.status is SuspenseStatus.OPEN else Fate.PLACED), None
    return (Fate.POSTED if outcome.transactions else Fate.APPLIED), None


def record_of(
    key: BusinessKey, outcome: Outcome, cause_event_id: UUID | None, *, answer: str | None = None
) -> IdempotencyRecord:
    fate, refusal = fate_of(outcome)
    return IdempotencyRecord(key.family, key.key, key.fingerprint, fate, refusal,
                             tuple(txn.id for txn in outcome.transactions), cause_event_id, answer)
