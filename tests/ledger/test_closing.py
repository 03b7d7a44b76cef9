"""The ledger's part of closing an account (the domain, no database): the money left refunded
(a payout through op:refunds) or transferred, the account closed, a debt refused, a repeat idle."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from billing_contracts.catalog.ledger import AccountClosed, AccountRefunded, FundsTransferred, TransactionKind
from billing_contracts.catalog.tariff import ClosureSettlement, SubscriptionClosed
from ledger.domain import REFUNDS, AccountState, CommandRefused, settle_and_close

LEAVING, HEIR = "100000000016", "100000000024"
AT = datetime(2027, 4, 10, 9, tzinfo=UTC)


def _closing(settlement: ClosureSettlement, transfer_to: str | None = None) -> SubscriptionClosed:
    return SubscriptionClosed(account_number=LEAVING, last_day=AT.date(), settlement=settlement,
                              transfer_to=transfer_to, requested_by="operations", reason="moving abroad", closed_at=AT)


def test_the_money_left_is_refunded_as_a_payout_and_the_account_closed() -> None:
    outcome = settle_and_close(_closing(ClosureSettlement.REFUND), cause_id=uuid4(),
                               account=AccountState(LEAVING, main=12_345, bonus=700), target=None, at=AT)

    (refund,) = outcome.transactions
    assert refund.kind is TransactionKind.REFUND
    assert sorted((p.account, p.amount) for p in refund.postings) == [(REFUNDS, 12_345), (f"sub:{LEAVING}:main", -12_345)]
    (closed,) = outcome.accounts
    assert (closed.main, closed.is_open) == (0, False)
    payloads = [event.payload for event in outcome.events]
    assert [type(p).__name__ for p in payloads] == ["BalanceChanged", "AccountRefunded", "AccountClosed"]
    assert isinstance(payloads[1], AccountRefunded) and payloads[1].amount.minor == 12_345
    assert isinstance(payloads[2], AccountClosed) and payloads[2].forfeited_bonus.minor == 700
    # Delivered again once closed: nothing more happens.
    again = settle_and_close(_closing(ClosureSettlement.REFUND), cause_id=uuid4(), account=closed, target=None, at=AT)
    assert (again.transactions, again.events) == ((), ())


def test_the_money_left_can_go_to_another_account_instead() -> None:
    outcome = settle_and_close(_closing(ClosureSettlement.TRANSFER, HEIR), cause_id=uuid4(),
                               account=AccountState(LEAVING, main=5_000), target=AccountState(HEIR, main=100), at=AT)
    states = {state.number: state for state in outcome.accounts}
    assert (states[LEAVING].main, states[LEAVING].is_open, states[HEIR].main) == (0, False, 5_100)
    moved = next(e.payload for e in outcome.events if isinstance(e.payload, FundsTransferred))
    assert (moved.to_account, moved.amount.minor) == (HEIR, 5_000)


def test_an_account_in_debt_or_a_closed_heir_is_refused() -> None:
    with pytest.raises(CommandRefused) as debt:
        settle_and_close(_closing(ClosureSettlement.REFUND), cause_id=uuid4(),
                         account=AccountState(LEAVING, main=-1), target=None, at=AT)
    assert debt.value.code == "account_not_settled"
    with pytest.raises(CommandRefused) as closed_heir:
        settle_and_close(_closing(ClosureSettlement.TRANSFER, HEIR), cause_id=uuid4(),
                         account=AccountState(LEAVING, main=10), target=AccountState(HEIR, is_open=False), at=AT)
    assert closed_heir.value.code == "account_closed"
