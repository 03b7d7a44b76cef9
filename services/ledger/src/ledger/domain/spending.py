"""Money leaving a subscriber's balances: charges, bonus redemptions, transfers."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from billing_contracts.catalog.ledger import (
    BonusRedeemed,
    BonusRedemptionRefusal,
    BonusRedemptionRejected,
    BonusRedemptionRequested,
    FundsTransferred,
    RedemptionPurpose,
    TransactionKind,
    TransferRefusal,
    TransferRejected,
    TransferRequested,
)
from billing_contracts.catalog.tariff import ChargeApplied
from billing_contracts.money import format_amount

from ledger.domain.accounts import AccountState, spendable, transferable
from ledger.domain.chart import DISCOUNTS, GIFTS, revenue_account
from ledger.domain.errors import CommandRefused, ErrorCode, RequestRefused
from ledger.domain.idempotency import request_key
from ledger.domain.outcome import (
    Booking,
    Outcome,
    OutgoingEvent,
    money,
    positive_money,
    require_open,
)
from ledger.domain.transactions import Transaction, move


def apply_charge(
    charge: ChargeApplied,
    *,
    cause_id: UUID | None,
    account: AccountState | None,
    at: datetime,
    bonus_to_use: int = 0,
) -> Outcome:
    """Debit a fee from the main balance, even into a negative balance (the tariff service decides
    what a negative balance means).

    ``bonus_to_use`` pays that part of the fee from the bonus balance instead: a separate
    redemption transaction moving bonus -> revenue, so bonus money never touches the main balance.
    """
    amount, currency = charge.amount.minor, charge.amount.currency
    account = require_open(account, currency, number=charge.account_number)
    if not 0 <= bonus_to_use <= amount:
        raise CommandRefused(
            ErrorCode.INVALID_AMOUNT,
            f"bonus_to_use must be within 0..{format_amount(amount, currency)}",
            field="bonus_to_use",
        )
    if bonus_to_use > max(account.bonus, 0):
        raise CommandRefused(
            ErrorCode.INSUFFICIENT_BONUS,
            f"account {account.number} has {format_amount(account.bonus, currency)} in bonuses,"
            f" not {format_amount(bonus_to_use, currency)}",
            field="bonus_to_use",
            params={"amount": money(bonus_to_use, currency), "available": money(max(account.bonus, 0), currency)},
        )
    revenue = revenue_account(charge.fee_kind)
    booking = Booking((account,))
    if bonus_to_use:
        _post_redemption(
            booking, account, f"{CHARGE_KEY_PREFIX}{charge.charge_id}", credit=revenue, amount=bonus_to_use,
            currency=currency, cause_id=cause_id, cause_type=ChargeApplied.event_type, at=at,
            purpose=RedemptionPurpose.CHARGE, charge_id=charge.charge_id,
        )
    if amount > bonus_to_use:
        booking.post(
            move(
                TransactionKind.CHARGE,
                charge.charge_id,
                debit=account.main_code,
                credit=revenue,
                amount=amount - bonus_to_use,
                currency=currency,
                cause_event_id=cause_id,
                cause_type=ChargeApplied.event_type,
                occurred_at=at,
            )
        )
    return booking.outcome()


CHARGE_KEY_PREFIX = "charge:"
"""Bonuses that paid a charge are keyed by it; a redemption a subscriber asked for by its request."""


def is_charge_key(business_key: str) -> bool:
    return business_key.startswith(CHARGE_KEY_PREFIX)


def _post_redemption(
    booking: Booking,
    account: AccountState,
    business_key: str,
    *,
    credit: str,
    amount: int,
    currency: str,
    cause_id: UUID | None,
    cause_type: str,
    at: datetime,
    purpose: RedemptionPurpose,
    charge_id: str | None = None,
    request_id: UUID | None = None,
) -> None:
    """Bonuses leave the bonus balance for ``credit`` (revenue, discounts, gifts), announced."""
    txn = move(
        TransactionKind.BONUS_REDEMPTION,
        business_key,
        debit=account.bonus_code,
        credit=credit,
        amount=amount,
        currency=currency,
        cause_event_id=cause_id,
        cause_type=cause_type,
        occurred_at=at,
    )
    booking.post(txn)
    booking.announce(
        account.number,
        BonusRedeemed(
            account_number=account.number,
            transaction_id=txn.id,
            amount=positive_money(amount, currency),
            purpose=purpose,
            charge_id=charge_id,
            request_id=request_id,
            bonus_balance=money(booking.states[account.number].bonus, currency),
        ),
    )


_REDEMPTION_ACCOUNTS = {RedemptionPurpose.DISCOUNT: DISCOUNTS, RedemptionPurpose.GIFT: GIFTS}


def redemption_purpose(redemption: Transaction) -> RedemptionPurpose | None:
    """What a redemption the subscriber asked for bought: the journal keeps it as the account
    the bonuses went to (None: not such a redemption)."""
    credited = {posting.account for posting in redemption.postings if posting.amount > 0}
    return next((purpose for purpose, account in _REDEMPTION_ACCOUNTS.items() if account in credited), None)


def redemption_refusal(
    request: BonusRedemptionRequested, account: AccountState | None
) -> tuple[BonusRedemptionRefusal, str] | None:
    """Why this redemption may not happen (a reason code and words), or None if it may."""
    number, amount = request.account_number, request.amount
    if request.purpose not in _REDEMPTION_ACCOUNTS:
        return (BonusRedemptionRefusal.INVALID_PURPOSE,
                "bonuses pay a charge through the charge itself; redeem them for a discount or a gift")
    if account is None:
        return BonusRedemptionRefusal.UNKNOWN_ACCOUNT, f"no account {number}"
    if not account.is_open:
        return BonusRedemptionRefusal.ACCOUNT_CLOSED, f"account {number} is closed"
    if account.currency != amount.currency:
        return BonusRedemptionRefusal.CURRENCY_MISMATCH, f"account {number} is kept in {account.currency}"
    if amount.minor > account.bonus:
        return (BonusRedemptionRefusal.INSUFFICIENT_BONUS,
                f"{number} has {money(max(account.bonus, 0), account.currency)} in bonuses, not {amount}")
    return None


def redeem_bonus(
    request: BonusRedemptionRequested,
    *,
    cause_id: UUID | None,
    account: AccountState | None,
    at: datetime,
) -> Outcome:
    """Exchange bonuses for a discount or a gift; the bonus balance never goes below zero.
    Raises :class:`RequestRefused` with the announcement of why not."""
    refusal = redemption_refusal(request, account)
    if refusal is not None:
        reason, detail = refusal
        available = money(max(account.bonus, 0) if account else 0, request.amount.currency)
        rejected = BonusRedemptionRejected(
            request_id=request.request_id, account_number=request.account_number, purpose=request.purpose,
            reason=reason, requested=request.amount, available=available, detail=detail,
        )
        raise RequestRefused(OutgoingEvent(request.account_number, rejected))
    assert account is not None  # redemption_refusal refuses unknown accounts
    amount, currency = request.amount.minor, request.amount.currency
    booking = Booking((account,))
    _post_redemption(
        booking, account, request_key(request.account_number, request.request_id), credit=_REDEMPTION_ACCOUNTS[request.purpose],
        amount=amount, currency=currency, cause_id=cause_id, cause_type=BonusRedemptionRequested.event_type,
        at=at, purpose=request.purpose, request_id=request.request_id,
    )
    return booking.outcome()


def transfer_refusal(
    request: TransferRequested, *, source: AccountState | None, target: AccountState | None
) -> tuple[TransferRefusal, str] | None:
    """Why this transfer may not happen (a reason code and words), or None if it may.

    Everything about the source (the requester's own account) is decided before the target is
    looked at: a subscriber without the money is told so whatever number they name, so refused
    transfers cannot probe which account numbers exist or are closed."""
    currency = request.amount.currency
    if request.from_account == request.to_account:
        return TransferRefusal.SAME_ACCOUNT, "cannot transfer to the same account"
    if source is None:
        return TransferRefusal.SOURCE_UNKNOWN, f"no account {request.from_account}"
    if not source.is_open:
        return TransferRefusal.SOURCE_CLOSED, f"account {request.from_account} is closed"
    if source.currency != currency:
        return TransferRefusal.CURRENCY_MISMATCH, f"both accounts must be kept in {currency}"
    refusal = _source_cannot_pay(request, source)
    if refusal is not None:
        return refusal
    if target is None:
        return TransferRefusal.TARGET_UNKNOWN, f"no account {request.to_account}"
    if not target.is_open:
        return TransferRefusal.TARGET_CLOSED, f"account {request.to_account} is closed"
    if target.currency != currency:
        return TransferRefusal.CURRENCY_MISMATCH, f"both accounts must be kept in {currency}"
    return None


def _source_cannot_pay(request: TransferRequested, source: AccountState) -> tuple[TransferRefusal, str] | None:
    """Why the source's money does not cover the transfer (credit is not cash), or None."""
    amount, currency = request.amount.minor, request.amount.currency
    available = transferable(source)
    if available < amount:
        if spendable(source) >= amount:
            return (
                TransferRefusal.CREDIT_NOT_TRANSFERABLE,
                f"{request.from_account} may transfer {money(available, currency)}, not {request.amount}:"
                " the credit limit covers charges only",
            )
        return (
            TransferRefusal.INSUFFICIENT_FUNDS,
            f"{request.from_account} may transfer {money(available, currency)}, not {request.amount}",
        )
    return None


def transfer_funds(
    request: TransferRequested,
    *,
    cause_id: UUID | None,
    source: AccountState | None,
    target: AccountState | None,
    at: datetime,
) -> Outcome:
    """Move money between two subscribers' main balances. Raises :class:`RequestRefused` with the
    announcement of why not."""
    refusal = transfer_refusal(request, source=source, target=target)
    if refusal is not None:
        reason, detail = refusal
        rejected = TransferRejected(
            request_id=request.request_id,
            from_account=request.from_account,
            to_account=request.to_account,
            amount=request.amount,
            reason=reason,
            detail=detail,
        )
        raise RequestRefused(OutgoingEvent(request.from_account, rejected))
    assert source is not None and target is not None  # transfer_refusal refuses unknown accounts
    booking = Booking((source, target))
    txn = move(
        TransactionKind.TRANSFER,
        request_key(request.requested_by, request.request_id),
        debit=source.main_code,
        credit=target.main_code,
        amount=request.amount.minor,
        currency=request.amount.currency,
        cause_event_id=cause_id,
        cause_type=TransferRequested.event_type,
        occurred_at=at,
    )
    booking.post(txn)
    booking.announce(
        source.number,
        FundsTransferred(
            request_id=request.request_id,
            transaction_id=txn.id,
            from_account=source.number,
            to_account=target.number,
            amount=request.amount,
        ),
    )
    return booking.outcome()
