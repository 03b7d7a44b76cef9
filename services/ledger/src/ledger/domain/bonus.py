"""Bonus campaigns: the rule lives in data (settings), the arithmetic lives here.

A campaign gives back ``basis_points`` / 10 000 of a payment (2 000 = "20 % back") for payments
received in ``[valid_from, valid_to)`` through one of its channels (none listed: every channel),
of at least ``min_amount``, in its currency. The bonus is rounded **down to the kopeck**, so the
operator never gives away a fraction it did not promise, and capped at ``max_bonus`` if set.
Campaigns do not add up: when several apply, the most generous one wins (the earliest listed on a
tie), which is what a subscriber reading "20 % back" expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing_contracts.catalog.payments import PaymentChannel
from billing_contracts.envelope import describe_validation_error
from billing_contracts.money import DEFAULT_CURRENCY, MINOR_UNIT_DIGITS, Money
from pydantic import TypeAdapter, ValidationError

from ledger.domain.errors import ErrorCode, LedgerError

FULL_BASIS_POINTS = 10_000


class InvalidCampaign(LedgerError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(ErrorCode.INVALID_CAMPAIGN, message, field=field)


@dataclass(frozen=True, slots=True)
class BonusCampaign:
    name: str
    basis_points: int
    valid_from: datetime
    valid_to: datetime
    channels: frozenset[PaymentChannel] = frozenset()
    min_amount: int = 0
    currency: str = DEFAULT_CURRENCY
    max_bonus: int | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidCampaign("a campaign needs a name", "name")
        if not 0 < self.basis_points <= FULL_BASIS_POINTS:
            raise InvalidCampaign("basis_points must be in 1..10000 (100 % back)", "basis_points")
        if self.valid_from.tzinfo is None or self.valid_to.tzinfo is None:
            raise InvalidCampaign("campaign dates must be timezone-aware", "valid_from")
        if self.valid_from >= self.valid_to:
            raise InvalidCampaign("valid_from must come before valid_to", "valid_to")
        if self.min_amount < 0:
            raise InvalidCampaign("min_amount cannot be negative", "min_amount")
        if self.currency not in MINOR_UNIT_DIGITS:
            raise InvalidCampaign(f"unknown currency {self.currency!r}", "currency")
        if self.max_bonus is not None and self.max_bonus <= 0:
            raise InvalidCampaign("max_bonus must be more than zero when set", "max_bonus")

    def applies_to(self, paid: Money, channel: PaymentChannel, received_at: datetime) -> bool:
        return (
            paid.currency == self.currency
            and paid.minor >= self.min_amount
            and self.in_force(received_at)
            and (not self.channels or channel in self.channels)
        )

    def in_force(self, at: datetime) -> bool:
        return self.valid_from <= at < self.valid_to

    def bonus_for(self, amount: int) -> int:
        bonus = amount * self.basis_points // FULL_BASIS_POINTS
        return bonus if self.max_bonus is None else min(bonus, self.max_bonus)


def best_bonus(
    campaigns: Iterable[BonusCampaign],
    *,
    paid: Money,
    channel: PaymentChannel,
    received_at: datetime,
) -> tuple[BonusCampaign, int] | None:
    """The most generous campaign for this payment and its bonus; None if none gives any."""
    best: tuple[BonusCampaign, int] | None = None
    for campaign in campaigns:
        if campaign.applies_to(paid, channel, received_at):
            bonus = campaign.bonus_for(paid.minor)
            if bonus > 0 and (best is None or bonus > best[1]):
                best = (campaign, bonus)
    return best


def campaign_behind(
    campaigns: Iterable[BonusCampaign],
    *,
    paid: Money,
    channel: PaymentChannel,
    bonus: int,
    booked_at: datetime,
) -> BonusCampaign | None:
    """The campaign that gave ``bonus`` for a payment booked at ``booked_at``: the journal keeps
    the payment and its bonus, and the campaign is the one whose rule gives exactly that bonus
    for it (in force when it was booked, else the latest that began before: a payment made
    during a campaign may be booked after it ended). None: no campaign listed now gives it."""
    candidates = [
        campaign for campaign in campaigns
        if paid.currency == campaign.currency and paid.minor >= campaign.min_amount
        and (not campaign.channels or channel in campaign.channels)
        and campaign.valid_from <= booked_at and campaign.bonus_for(paid.minor) == bonus
    ]
    return max(candidates, key=lambda campaign: (campaign.in_force(booked_at), campaign.valid_from), default=None)


_CAMPAIGN = TypeAdapter(BonusCampaign)


def parse_campaigns(data: Sequence[dict[str, Any]] | str | bytes, source: str = "<settings>") -> tuple[BonusCampaign, ...]:
    """Campaigns from settings: a list of mappings, or the same as JSON text. Anything wrong
    raises :class:`InvalidCampaign` naming the source, the campaign and every problem in it."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidCampaign(f"bonus campaigns {source}: not readable JSON: {exc}", "campaigns") from None
    if not isinstance(data, list):
        raise InvalidCampaign(f"bonus campaigns {source}: the top level must be a list of campaigns", "campaigns")
    return tuple(_campaign(item, number, source) for number, item in enumerate(data, start=1))


def _campaign(item: Any, number: int, source: str) -> BonusCampaign:
    where = f"bonus campaigns {source}, campaign {number}"
    try:
        return _CAMPAIGN.validate_python(item)
    except ValidationError as exc:
        raise InvalidCampaign(f"{where}: {describe_validation_error(exc)}", "campaigns") from None
    except InvalidCampaign as exc:
        raise InvalidCampaign(f"{where}: {exc.field}: {exc.message}", exc.field or "campaigns") from None
