"""BalanceChanged says explicitly when a payment was credited, so nobody reads it from a cause's name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from billing_contracts.catalog.ledger import BalanceChanged
from billing_contracts.catalog.payments import PaymentChannel, PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.money import PositiveMoney
from ledger.domain import BonusCampaign, apply_charge, open_account, receive_payment

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALICE = "100000000008"
CAMPAIGN = BonusCampaign(name="20 % back", basis_points=2000, valid_from=datetime(2026, 3, 1, tzinfo=UTC),
                         valid_to=datetime(2026, 4, 1, tzinfo=UTC))


def changes(outcome) -> list[BalanceChanged]:
    return [event.payload for event in outcome.events if isinstance(event.payload, BalanceChanged)]


def test_a_payment_is_announced_as_a_credited_payment_and_its_campaign_bonus_is_not() -> None:
    payment = PaymentReceived(account_number=ALICE, channel=PaymentChannel.CARD, reference="ref-1",
                              amount=PositiveMoney(minor=100_000), received_at=AT)
    outcome = receive_payment(payment, cause_id=None, account=open_account(ALICE), campaigns=(CAMPAIGN,), at=AT)
    assert [(c.credited_payment, c.delta_main.minor, c.delta_bonus.minor) for c in changes(outcome)] == [
        (True, 100_000, 0), (False, 0, 20_000)]


def test_a_charge_is_not_a_credited_payment() -> None:
    charge = ChargeApplied(charge_id="c-1", account_number=ALICE, amount=PositiveMoney(minor=5_000),
                           fee_kind=FeeKind.SUBSCRIPTION, billing_day=AT.date(),
                           charged_for=ChargedFor(item=ChargedItem.PLAN, code="internet-100"))
    outcome = apply_charge(charge, cause_id=None, account=replace(open_account(ALICE), main=10_000), at=AT)
    assert [c.credited_payment for c in changes(outcome)] == [False]
