"""Money crosses every wall as integer minor units with an ISO 4217 currency code."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

# Minor units per currency the operator accepts; a currency not listed here is refused.
MINOR_UNIT_DIGITS: dict[str, int] = {"RUB": 2, "EUR": 2, "USD": 2}
DEFAULT_CURRENCY = "RUB"
MAX_MINOR = 10**15
"""Ten trillion roubles: more is a typo or an attack, refused before it reaches a database."""

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["RUB"])]


def format_amount(minor: int, currency: str, *, thousands: str = "", point: str = ".", unit: str | None = None) -> str:
    """Money as people read it, for any integer (also one no Money may hold): ``"1234.50 RUB"``
    in messages and logs; a table groups the thousands (``thousands=" "``: ``"1 234.50 RUB"``), a
    letter to a subscriber also writes the decimal point and the currency its way
    (``point=",", unit="₽"``: ``"1 234,50 ₽"``). The one money formatter of the suite."""
    digits = MINOR_UNIT_DIGITS.get(currency, 2)
    units, fraction = divmod(abs(minor), 10**digits)
    decimals = f"{point}{fraction:0{digits}d}" if digits else ""
    sign, whole = "-" if minor < 0 else "", f"{units:,}".replace(",", thousands)
    return f"{sign}{whole}{decimals} {unit or currency}"


CURRENCY_SIGNS: dict[str, str] = {"RUB": "₽", "EUR": "€", "USD": "$"}


def money_for_people(amount: Money | dict[str, Any]) -> str:
    """``1 234,50 ₽``: how a notice or a refusal shows money to a subscriber in every language, with
    a plain space between thousands and before the sign (it keeps English EUR texts in GSM-7);
    also takes Money as a dict, the way it looks after a JSON round trip."""
    money = Money.model_validate(amount)
    return format_amount(money.minor, money.currency, thousands=" ", point=",",
                         unit=CURRENCY_SIGNS.get(money.currency, money.currency))


class CurrencyMismatch(ValueError):
    pass


class Money(BaseModel):
    """An amount in minor units (kopecks for RUB). Negative amounts are allowed: a debt is money too."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minor: StrictInt = Field(
        ge=-MAX_MINOR, le=MAX_MINOR, description="Amount in minor units of the currency (kopecks for RUB)"
    )
    currency: CurrencyCode = DEFAULT_CURRENCY

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if code not in MINOR_UNIT_DIGITS:
            raise ValueError(f"unknown currency {code!r}; accepted: {', '.join(MINOR_UNIT_DIGITS)}")
        return code

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Self:
        return cls(minor=0, currency=currency)

    @classmethod
    def parse(cls, amount: str, currency: str = DEFAULT_CURRENCY) -> Self:
        """Read a human amount such as ``"1234.50"``; more decimals than the currency has is an error."""
        digits = MINOR_UNIT_DIGITS.get(currency)
        if digits is None:
            raise ValueError(f"unknown currency {currency!r}; accepted: {', '.join(MINOR_UNIT_DIGITS)}")
        try:
            value = Decimal(amount.strip().replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"{amount!r} is not an amount") from None
        if not value.is_finite():
            raise ValueError(f"{amount!r} is not an amount")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > digits:
            raise ValueError(f"{amount!r} has more than {digits} decimals for {currency}")
        minor = int(value.scaleb(digits))
        if abs(minor) > MAX_MINOR:
            raise ValueError(f"{amount} {currency} is more than the {format_amount(MAX_MINOR, currency)} an amount may be")
        return cls(minor=minor, currency=currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor=self.minor + other.minor, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor=self.minor - other.minor, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(minor=-self.minor, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-MINOR_UNIT_DIGITS[self.currency])

    def __str__(self) -> str:
        return format_amount(self.minor, self.currency)


class PositiveMoney(Money):
    """Money that must be more than zero: a payment, a charge, a transfer."""

    @model_validator(mode="before")
    @classmethod
    def _from_money(cls, value: Any) -> Any:
        # Any Money may be offered where a positive amount is required; the check decides.
        if isinstance(value, Money) and not isinstance(value, cls):
            return {"minor": value.minor, "currency": value.currency}
        return value

    @field_validator("minor")
    @classmethod
    def _positive(cls, minor: int) -> int:
        if minor <= 0:
            raise ValueError("amount must be greater than zero")
        return minor
