"""The rewards catalogue: the gifts and discounts bonuses buy, kept as data like the campaigns.

The ledger owns it because it owns the bonuses: a redemption that names an item is checked
against the item's price in the same decision that checks the bonus balance, so what the
cabinet showed and what is taken cannot drift apart across services. Each item is a discount or
a gift (the redemption's purpose) at a price in bonus minor units; a redemption naming an item
must be of that kind and that price. A redemption naming no item (the older request) is
decided as before.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from billing_contracts.catalog.ledger import BonusRedemptionRequested, RedemptionPurpose
from billing_contracts.envelope import describe_validation_error
from billing_contracts.money import DEFAULT_CURRENCY, CurrencyCode, format_amount
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError, field_validator

from ledger.domain.errors import CommandRefused, ErrorCode, LedgerError

RewardCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", examples=["discount-100"])]


class InvalidRewards(LedgerError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REWARDS, message, field="rewards")


class Reward(BaseModel):
    """One item of the catalogue: what it is, whether a discount or a gift, what it costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: RewardCode
    name: str = Field(min_length=1, max_length=120)
    kind: RedemptionPurpose
    price: Annotated[StrictInt, Field(gt=0, description="In bonus minor units (1 bonus rouble = 100)")]
    currency: CurrencyCode = DEFAULT_CURRENCY
    description: str = Field(default="", max_length=300)

    @field_validator("kind")
    @classmethod
    def _bought_with_bonuses(cls, kind: RedemptionPurpose) -> RedemptionPurpose:
        if kind is RedemptionPurpose.CHARGE:
            raise ValueError("an item is a discount or a gift (bonuses pay charges through the charge itself)")
        return kind


_REWARDS = TypeAdapter(tuple[Reward, ...])


def parse_rewards(text: str | bytes, source: str = "<settings>") -> tuple[Reward, ...]:
    """The catalogue from its JSON file (a list of items); anything wrong raises
    :class:`InvalidRewards` naming the source and every problem."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise InvalidRewards(f"rewards catalogue {source}: not readable JSON: {exc}") from None
    try:
        rewards = _REWARDS.validate_python(data)
    except ValidationError as exc:
        raise InvalidRewards(f"rewards catalogue {source}: {describe_validation_error(exc)}") from None
    codes = [reward.code for reward in rewards]
    twice = sorted({code for code in codes if codes.count(code) > 1})
    if twice:
        raise InvalidRewards(f"rewards catalogue {source}: code(s) {', '.join(twice)} used twice")
    return rewards


def check_reward(rewards: tuple[Reward, ...], request: BonusRedemptionRequested) -> None:
    """A redemption naming an item must be of its kind and at its price; else refused in words."""
    if request.item is None:
        return
    reward = next((reward for reward in rewards if reward.code == request.item), None)
    if reward is None:
        raise CommandRefused(ErrorCode.UNKNOWN_REWARD, f"no item {request.item!r} in the rewards catalogue",
                             field="item")
    if request.purpose is not reward.kind:
        raise CommandRefused(ErrorCode.REWARD_MISMATCH,
                             f"{reward.name!r} is a {reward.kind.value}, not a {request.purpose.value}",
                             field="purpose")
    if (request.amount.minor, request.amount.currency) != (reward.price, reward.currency):
        raise CommandRefused(ErrorCode.REWARD_MISMATCH,
                             f"{reward.name!r} costs {format_amount(reward.price, reward.currency)} in bonuses,"
                             f" not {request.amount}", field="amount.minor")
