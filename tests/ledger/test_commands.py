"""Each ledger command model refuses, before any service function sees it, what it should: a
field of the wrong shape, an amount that is not more than zero where one moves money, a field it
does not declare."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from billing_contracts.catalog.ledger import PaymentType, RedemptionPurpose
from billing_contracts.money import Money
from billing_events.service import Command
from ledger.commands import ChangePaymentType, OpenCardPayment, RedeemBonus, ResolveSuspense, Reverse, Transfer
from ledger.domain import OperatorNote

A, B = "100000000008", "100000000016"
MISTYPED = "100000000009"
"""A's number with another check digit."""
NOTE = OperatorNote("operator.test", "the payer typed it wrong")

TAKEN: dict[type[Command], dict[str, Any]] = {
    Transfer: {"from_account": A, "to_account": B, "amount": Money(minor=1), "requested_by": f"cabinet:{A}"},
    RedeemBonus: {"account_number": A, "amount": Money(minor=1), "purpose": RedemptionPurpose.GIFT},
    ChangePaymentType: {"account_number": A, "payment_type": PaymentType.PREPAID, "credit_limit": Money(minor=0),
                        "requested_by": "operator"},
    ResolveSuspense: {"parked_transaction_id": uuid4(), "target_account": B, "operator": NOTE},
    Reverse: {"transaction_id": uuid4(), "operator": NOTE},
    OpenCardPayment: {"account_number": A, "amount": Money(minor=1)},
}


@pytest.mark.parametrize("command", TAKEN)
def test_a_command_with_its_fields_right_is_taken_and_one_with_a_field_it_does_not_declare_is_not(
        command: type[Command]) -> None:
    command(**TAKEN[command])
    with pytest.raises(ValidationError) as refused:
        command(**TAKEN[command], account="100000000016")
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("account",), "extra_forbidden")]


@pytest.mark.parametrize(("command", "wrong", "field"), [
    (Transfer, {"amount": Money(minor=0)}, "amount"),
    (Transfer, {"amount": Money(minor=-1)}, "amount"),
    (Transfer, {"to_account": MISTYPED}, "to_account"),
    (Transfer, {"from_account": "10000000000"}, "from_account"),
    (Transfer, {"requested_by": ""}, "requested_by"),
    (Transfer, {"requested_by": "x" * 65}, "requested_by"),
    (Transfer, {"request_id": "not-a-uuid"}, "request_id"),
    (RedeemBonus, {"amount": Money(minor=0)}, "amount"),
    (RedeemBonus, {"purpose": "cash"}, "purpose"),
    (RedeemBonus, {"item": ""}, "item"),
    (RedeemBonus, {"item": "x" * 41}, "item"),
    (RedeemBonus, {"description": "x" * 201}, "description"),
    (ChangePaymentType, {"account_number": MISTYPED}, "account_number"),
    (ChangePaymentType, {"payment_type": "barter"}, "payment_type"),
    (ChangePaymentType, {"requested_by": ""}, "requested_by"),
    (ResolveSuspense, {"target_account": MISTYPED}, "target_account"),
    (ResolveSuspense, {"parked_transaction_id": "T-1"}, "parked_transaction_id"),
    (Reverse, {"transaction_id": "T-1"}, "transaction_id"),
    (OpenCardPayment, {"amount": Money(minor=0)}, "amount"),
    (OpenCardPayment, {"amount": Money(minor=-100)}, "amount"),
    (OpenCardPayment, {"account_number": MISTYPED}, "account_number"),
])
def test_a_command_refuses_a_field_of_the_wrong_shape(command: type[Command], wrong: dict[str, Any],
                                                     field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        command(**{**TAKEN[command], **wrong})
    assert {e["loc"][0] for e in refused.value.errors()} == {field}


def test_an_operator_command_needs_the_operator_note() -> None:
    for command in (ResolveSuspense, Reverse):
        without = {name: value for name, value in TAKEN[command].items() if name != "operator"}
        with pytest.raises(ValidationError) as refused:
            command(**without)
        assert [e["loc"] for e in refused.value.errors()] == [("operator",)]


def test_a_redemption_keeps_its_description_as_written() -> None:
    """The request the command topic carries says what the caller sent, spaces included."""
    assert RedeemBonus(**TAKEN[RedeemBonus], description=" a gift ").description == " a gift "
