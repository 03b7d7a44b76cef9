"""The contract's account number: twelve ASCII digits with their Luhn check digit, one rule for
every service and every event field that names an account, while a payment keeps carrying
whatever twelve digits a payer typed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pydantic import AfterValidator, TypeAdapter, ValidationError

from billing_contracts.accounts import AccountNumber, InvalidAccountNumber, luhn_check_digit
from billing_contracts.catalog import common
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import REGISTRY
from billing_contracts.money import Money


def test_a_valid_number_is_its_string_with_its_check_digit() -> None:
    number = AccountNumber("100000000008")
    assert number == "100000000008" and f"sub:{number}:main" == "sub:100000000008:main"
    assert number.check_digit == "8" == luhn_check_digit("10000000000")


def test_a_number_typed_in_groups_is_parsed() -> None:
    assert AccountNumber.parse("1000 0000 0008") == AccountNumber.parse("1000-0000-0008") == "100000000008"
    assert isinstance(AccountNumber.parse(" 1000 0000 0016 "), AccountNumber)


@pytest.mark.parametrize(("typed", "reason"), [
    ("100000000009", "the account number has a typo: its check digit does not match"),
    ("10000000", "an account number has 12 digits"),
    ("10000000000x", "an account number has 12 digits"),
    ("١٠٠٠٠٠٠٠٠٠٠٨", "an account number has 12 digits"),  # Arabic-Indic digits are not ASCII
])
def test_a_wrong_number_is_refused_with_its_reason(typed: str, reason: str) -> None:
    with pytest.raises(InvalidAccountNumber) as refused:
        AccountNumber.parse(typed)
    assert str(refused.value) == reason
    assert not AccountNumber.is_valid(typed)


def test_the_shape_is_twelve_ascii_digits_whatever_the_check_digit() -> None:
    assert AccountNumber.has_shape("100000000009") and not AccountNumber.is_valid("100000000009")
    assert AccountNumber.is_valid("100000000016")
    assert not AccountNumber.has_shape("1000 0000 0008") and AccountNumber.digits_of("1000 0000-0008") == "100000000008"


def test_a_payment_may_still_name_a_mistyped_number() -> None:
    """The ledger parks such a payment in suspense: the event's field must not refuse it."""
    paid = PaymentReceived(account_number="100000000009", channel="terminal", reference="T-1",
                           amount=Money(minor=100), received_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert paid.account_number == "100000000009"


CHECK_DIGIT = next(meta for meta in common.AccountNumber.__metadata__ if isinstance(meta, AfterValidator))
NAMING_AN_ACCOUNT = sorted(
    f"{event.event_type}.v{event.version}.{name}" for event in REGISTRY.values()
    for name, field in event.model_fields.items() if CHECK_DIGIT in field.metadata
)


def test_every_field_typed_as_an_account_number_refuses_a_wrong_check_digit() -> None:
    field = TypeAdapter(common.AccountNumber)
    assert field.validate_python("100000000008") == "100000000008"
    with pytest.raises(ValidationError, match="check digit does not match"):
        field.validate_python("500000020008")  # the registration that opened a ledger account (issue 26)
    with pytest.raises(ValidationError):
        field.validate_python("١٠٠٠٠٠٠٠٠٠٠٨")  # the schema's \\d takes other scripts' digits; the check does not
    assert {"SubscriberRegistered.v1.account_number", "BalanceChanged.v1.account_number",
            "TransferRequested.v1.to_account", "ChargeApplied.v2.account_number"} <= set(NAMING_AN_ACCOUNT)
    assert not any(name.startswith("PaymentReceived.") for name in NAMING_AN_ACCOUNT)
