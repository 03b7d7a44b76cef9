"""What a subscriber sees: a statement of one account over a period, the history of its bonuses,
and a receipt for a payment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, tzinfo
from enum import StrEnum
from typing import Any
from uuid import UUID

from billing_contracts.catalog.ledger import RedemptionPurpose, TransactionKind
from billing_contracts.catalog.payments import PaymentChannel
from billing_contracts.catalog.tariff import ChargeKey, parse_charge_id
from billing_contracts.money import Money

from ledger.domain.bonus import BonusCampaign, campaign_behind
from ledger.domain.chart import bonus_account, main_account, subscriber_number
from ledger.domain.errors import CommandRefused, ErrorCode
from ledger.domain.idempotency import request_id_in
from ledger.domain.spending import CHARGE_KEY_PREFIX, is_charge_key
from ledger.domain.outcome import SuspenseItem
from ledger.domain.replay import JournalEntry, replay
from ledger.domain.transactions import Transaction


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry: JournalEntry
    balance_after: int
    """The statement's running balance: the opening balance and the lines so far."""

    @property
    def charge(self) -> ChargeKey | None:
        """For a charge: the billing day and what it paid for (plan, option, block fee)."""
        return _charge_of(self.entry)

    def row(self, currency: str) -> dict[str, Any]:
        """The line as the CLI, the HTTP door and the CSV show it (columns :data:`STATEMENT_COLUMNS`)."""
        charge = self.charge
        return {"occurred_at": self.entry.occurred_at.isoformat(), "kind": self.entry.kind.value,
                "billing_day": charge.billing_day.isoformat() if charge else "",
                "charged_for": charge.what if charge else "",
                "transaction_id": str(self.entry.transaction_id), "amount": self.entry.amount, "currency": currency,
                "balance_after": self.balance_after}


STATEMENT_COLUMNS = ("occurred_at", "kind", "billing_day", "charged_for", "transaction_id", "amount", "currency",
                     "balance_after")


def _charge_of(entry: JournalEntry) -> ChargeKey | None:
    return parse_charge_id(entry.business_key) if entry.kind is TransactionKind.CHARGE else None


def booked_at(entry: JournalEntry, zone: tzinfo | None) -> datetime:
    """When a statement books an entry: a charge at the first moment of its billing day in
    ``zone`` (whenever the ledger posted it: a catch-up's charges belong to the days they are
    for), every other entry when the ledger posted it."""
    charge = _charge_of(entry)
    if charge is None:
        return entry.occurred_at
    return datetime.combine(charge.billing_day, time(0), tzinfo=zone)


@dataclass(frozen=True, slots=True)
class Statement:
    """The entries of one account booked (:func:`booked_at`) in ``[period_start, period_end)``,
    in journal order, with a running balance."""

    account: str
    currency: str
    period_start: datetime
    period_end: datetime
    opening_balance: int
    closing_balance: int
    total_in: int
    total_out: int
    """Money that left the account, as a positive number."""
    lines: tuple[StatementLine, ...]


def build_statement(
    entries: Iterable[JournalEntry],
    *,
    account: str,
    currency: str,
    period_start: datetime,
    period_end: datetime,
) -> Statement:
    """``entries`` are the journal in order from the beginning (entries of other accounts are
    skipped); those booked before the period make up the opening balance. A charge's billing day
    is read in the time zone of ``period_start``."""
    zone = period_start.tzinfo
    opening = 0
    within: list[JournalEntry] = []
    for step in replay(entries, account=account):
        booked = booked_at(step.entry, zone)
        if booked < period_start:
            opening += step.entry.amount
        elif booked < period_end:
            within.append(step.entry)
    balance, total_in, total_out = opening, 0, 0
    lines: list[StatementLine] = []
    for entry in within:
        balance += entry.amount
        lines.append(StatementLine(entry, balance))
        if entry.amount > 0:
            total_in += entry.amount
        else:
            total_out -= entry.amount
    return Statement(
        account=account,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        opening_balance=opening,
        closing_balance=balance,
        total_in=total_in,
        total_out=total_out,
        lines=tuple(lines),
    )


class BonusChange(StrEnum):
    """What moved a bonus balance. Bonuses do not expire (domain.md): no line says so."""

    EARNED = "earned"
    SPENT = "spent"
    CORRECTED = "corrected"
    """An operator's reversal of an earlier line."""


_BONUS_CHANGES = {TransactionKind.BONUS_ACCRUAL: BonusChange.EARNED,
                  TransactionKind.BONUS_REDEMPTION: BonusChange.SPENT}


@dataclass(frozen=True, slots=True)
class PaymentBehind:
    """The payment a bonus was earned for."""

    transaction_id: UUID
    channel: PaymentChannel
    reference: str
    amount: int


@dataclass(frozen=True, slots=True)
class BonusLine:
    transaction_id: UUID
    change: BonusChange
    amount: int
    """Signed: earned is positive, spent negative."""
    occurred_at: datetime
    balance_after: int
    campaign: str | None = None
    """For an accrual: the campaign that gave it (None: no campaign listed now gives it)."""
    payment: PaymentBehind | None = None
    purpose: RedemptionPurpose | None = None
    """For a spend: what the bonuses bought (a charge, a discount, a gift)."""
    request_id: UUID | None = None
    """For a spend the subscriber asked for: the redemption request's id."""
    charge: ChargeKey | None = None
    """For bonuses that paid a charge: the charge's billing day and item."""


@dataclass(frozen=True, slots=True)
class BonusHistory:
    account: str
    currency: str
    earned: int
    spent: int
    """As a positive number."""
    balance: int
    lines: tuple[BonusLine, ...]


def build_bonus_history(
    entries: Iterable[JournalEntry],
    *,
    number: str,
    currency: str,
    campaigns: Iterable[BonusCampaign],
    purposes: Mapping[UUID, RedemptionPurpose],
) -> BonusHistory:
    """Every move of the bonus balance of account ``number`` with what is behind it.

    ``entries`` are the journal of its main and bonus accounts in order (the main account's
    payments are the payments bonuses were earned for); ``purposes`` says what each redemption
    the subscriber asked for bought (the journal keeps it as the account it credited)."""
    main, bonus_code = main_account(number), bonus_account(number)
    entries = list(entries)
    payments = {entry.business_key: entry for entry in entries
                if entry.account == main and entry.kind is TransactionKind.PAYMENT}
    lines = [_bonus_line(step.entry, step.after, payments, campaigns, purposes)
             for step in replay(entries, account=bonus_code)]
    return BonusHistory(
        account=number, currency=currency,
        earned=sum(line.amount for line in lines if line.change is BonusChange.EARNED),
        spent=-sum(line.amount for line in lines if line.change is BonusChange.SPENT),
        balance=lines[-1].balance_after if lines else 0, lines=tuple(lines),
    )


def _bonus_line(entry: JournalEntry, balance_after: int, payments: Mapping[str, JournalEntry],
                campaigns: Iterable[BonusCampaign], purposes: Mapping[UUID, RedemptionPurpose]) -> BonusLine:
    line = BonusLine(entry.transaction_id, _BONUS_CHANGES.get(entry.kind, BonusChange.CORRECTED), entry.amount,
                     entry.occurred_at, balance_after)
    if entry.kind is TransactionKind.BONUS_ACCRUAL:
        payment = payments.get(entry.business_key)  # an accrual is keyed by its payment's channel:reference
        if payment is None:
            return line
        channel, _, reference = entry.business_key.partition(":")
        behind = PaymentBehind(payment.transaction_id, PaymentChannel(channel), reference, payment.amount)
        campaign = campaign_behind(campaigns, paid=Money(minor=payment.amount, currency=payment.currency),
                                   channel=behind.channel, bonus=entry.amount, booked_at=entry.occurred_at)
        return replace(line, campaign=campaign.name if campaign else None, payment=behind)
    if entry.kind is TransactionKind.BONUS_REDEMPTION:
        if is_charge_key(entry.business_key):
            return replace(line, purpose=RedemptionPurpose.CHARGE,
                           charge=parse_charge_id(entry.business_key.removeprefix(CHARGE_KEY_PREFIX)))
        # a subscriber's request: "<account>/<request id>" (before keys were scoped: "request:<id>")
        return replace(line, purpose=purposes.get(entry.transaction_id),
                       request_id=request_id_in(entry.business_key.removeprefix("request:")))
    return line


@dataclass(frozen=True, slots=True)
class Receipt:
    """Confirmation that one payment was credited."""

    transaction_id: UUID
    account_number: str
    channel: PaymentChannel
    reference: str
    amount: int
    currency: str
    credited_at: datetime
    balance_after: int
    bonus_accrued: int
    placed_from: str | None = None
    """For a payment parked in suspense and placed by operations: the number the payer typed."""

    def as_dict(self) -> dict[str, Any]:
        """The receipt as the CLI and the HTTP door give it."""
        return {"transaction_id": str(self.transaction_id), "account": self.account_number,
                "channel": self.channel.value, "reference": self.reference, "amount": self.amount,
                "currency": self.currency, "credited_at": self.credited_at.isoformat(),
                "balance_after": self.balance_after, "bonus_accrued": self.bonus_accrued,
                "placed_from": self.placed_from}


def receipt_for(
    payment: Transaction,
    *,
    account_entries: Iterable[JournalEntry],
    bonus: Transaction | None = None,
    placed: SuspenseItem | None = None,
) -> Receipt:
    """A receipt for a credited payment, or for a parked one operations placed (``payment`` is
    then the placement and ``placed`` the parked payment it settled). ``account_entries`` is the
    journal of the subscriber's main account up to (at least) the payment, which gives the
    balance right after it."""
    is_placement = payment.kind is TransactionKind.SUSPENSE_RESOLUTION and placed is not None
    if payment.kind is not TransactionKind.PAYMENT and not is_placement:
        raise CommandRefused(
            ErrorCode.NOT_A_PAYMENT,
            f"{payment.id} is a {payment.kind.value}, not a credited payment",
        )
    credited = next(p for p in payment.postings if p.amount > 0)
    number = subscriber_number(credited.account)
    balance_after = next(
        (
            step.after
            for step in replay(account_entries, account=credited.account)
            if step.entry.transaction_id == payment.id
        ),
        None,
    )
    if number is None or balance_after is None:
        raise CommandRefused(
            ErrorCode.MISSING_ENTRIES, f"the entries given do not include payment {payment.id}"
        )
    if placed is not None and is_placement:
        channel, reference = placed.channel.value, placed.reference
    else:
        channel, _, reference = payment.business_key.partition(":")
    return Receipt(
        transaction_id=payment.id,
        account_number=number,
        channel=PaymentChannel(channel),
        reference=reference,
        amount=credited.amount,
        currency=payment.currency,
        credited_at=payment.occurred_at,
        balance_after=balance_after,
        bonus_accrued=0 if bonus is None else bonus.amount_on(bonus_account(number)),
        placed_from=placed.typed_account if is_placement and placed is not None else None,
    )
