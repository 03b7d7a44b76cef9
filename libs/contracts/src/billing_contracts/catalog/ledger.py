"""Events the ledger publishes, so nobody ever needs to ask the ledger, and the requests it takes.

Every money event names the journal transaction behind it (``transaction_id``), so a consumer can
explain any balance entry by entry. Requests (``...Requested``) are commands from the web cabinet,
the call centre or operations; each carries a ``request_id`` that makes a redelivered request
take effect once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from billing_contracts import topics
from billing_contracts.catalog.common import AccountNumber
from billing_contracts.catalog.payments import PaymentChannel, PaymentReceived
from billing_contracts.catalog.tariff import ClosureSettlement
from billing_contracts.envelope import Event
from billing_contracts.money import Money, PositiveMoney
from billing_contracts.versions import AccountVersion


class PaymentType(StrEnum):
    PREPAID = "prepaid"
    CREDIT = "credit"


class TransactionKindV1(StrEnum):
    PAYMENT = "payment"
    PAYMENT_PARKED = "payment_parked"
    SUSPENSE_RESOLUTION = "suspense_resolution"
    CHARGE = "charge"
    BONUS_ACCRUAL = "bonus_accrual"
    BONUS_REDEMPTION = "bonus_redemption"
    TRANSFER = "transfer"
    REVERSAL = "reversal"


class TransactionKind(StrEnum):
    """What a journal transaction did."""

    PAYMENT = "payment"
    PAYMENT_PARKED = "payment_parked"
    SUSPENSE_RESOLUTION = "suspense_resolution"
    CHARGE = "charge"
    BONUS_ACCRUAL = "bonus_accrual"
    BONUS_REDEMPTION = "bonus_redemption"
    TRANSFER = "transfer"
    REVERSAL = "reversal"
    REFUND = "refund"
    """The money left on a closed account paid back to the subscriber outside the suite."""


class TransferRefusalV1(StrEnum):
    SAME_ACCOUNT = "same_account"
    SOURCE_UNKNOWN = "source_unknown"
    SOURCE_CLOSED = "source_closed"
    TARGET_UNKNOWN = "target_unknown"
    TARGET_CLOSED = "target_closed"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"


class TransferRefusal(StrEnum):
    SAME_ACCOUNT = "same_account"
    SOURCE_UNKNOWN = "source_unknown"
    SOURCE_CLOSED = "source_closed"
    TARGET_UNKNOWN = "target_unknown"
    TARGET_CLOSED = "target_closed"
    CURRENCY_MISMATCH = "currency_mismatch"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CREDIT_NOT_TRANSFERABLE = "credit_not_transferable"
    """The account has the money only on credit: the credit limit covers charges, not transfers."""


class UnmatchedReasonV1(StrEnum):
    UNKNOWN_ACCOUNT = "unknown_account"
    CLOSED_ACCOUNT = "closed_account"
    CURRENCY_MISMATCH = "currency_mismatch"


class UnmatchedReason(StrEnum):
    """Why a payment went to suspense instead of a subscriber's account."""

    UNKNOWN_ACCOUNT = "unknown_account"
    CLOSED_ACCOUNT = "closed_account"
    CURRENCY_MISMATCH = "currency_mismatch"
    AMOUNT_OVER_LIMIT = "amount_over_limit"
    """More than one payment may carry (a setting), or more than a balance can hold: someone looks."""


class RedemptionPurpose(StrEnum):
    CHARGE = "charge"
    DISCOUNT = "discount"
    GIFT = "gift"


LEDGER_REFUSALS: dict[str, str] = {
    "conflicting_duplicate": "a payment (channel + reference), charge (charge id) or request (request id) the"
                             " ledger already decided, repeated with other content: the first stands, both are named",
    "amount_over_limit": "a transfer or bonus redemption over the per-movement maximum (BILLING_MAX_PAYMENT), or"
                         " a movement that would take a balance beyond what money may hold; a *payment* over the"
                         " maximum is not refused but parked (PaymentUnmatched, reason amount_over_limit)",
    "amount_out_of_bounds": "a movement that would take an operator account (a channel's cash, revenue, suspense)"
                            " beyond the ±10^15 minor units money may hold: not even parkable, nothing moves",
    "unknown_account": "a charge or payment-type request for an account the ledger does not know (yet): once the"
                       " account is registered, `billing dlq retry` takes it",
    "account_closed": "a charge for a closed account",
    "currency_mismatch": "money in a currency the account is not kept in",
    "invalid_account_number": "an event keyed by one account that moves money for another",
}
"""The ledger's own dead-letter codes on the money path, for consuming teams and operators (its
refusals of a *request* are answers instead: TransferRejected, BonusRedemptionRejected)."""


class BalanceChanged(Event):
    """An account's balances after one ledger transaction, and what moved them."""

    event_type: ClassVar[str] = "BalanceChanged"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    transaction_id: UUID
    main: Money = Field(description="Main (real money) balance after the transaction")
    bonus: Money = Field(description="Bonus balance after the transaction")
    delta_main: Money
    delta_bonus: Money
    cause_event_id: UUID | None = Field(description="The event that caused the transaction")
    cause_type: str = Field(description="PaymentReceived, ChargeApplied, TransferRequested, ...")
    payment_type: PaymentType
    credit_limit: Money
    credited_payment: bool = Field(
        default=False,
        description="The transaction credited a subscriber's payment to the main balance (a payment"
                    " notice is due). Messages from before this field: read from cause_type"
                    " PaymentReceived with a positive delta_main",
    )
    account_version: AccountVersion = None
    """Shared with PaymentTypeChanged: the ledger counts every change of the account it journals."""

    @model_validator(mode="before")
    @classmethod
    def _credited_payment_of_older_messages(cls, data: Any) -> Any:
        """Before ``credited_payment`` existed, a payment credit was told by the cause's name and
        the sign of the movement (a campaign bonus has the same cause and moves only the bonus)."""
        if not isinstance(data, dict) or "credited_payment" in data:
            return data
        if data.get("cause_type") != PaymentReceived.event_type:
            return data
        try:
            credited = Money.model_validate(data.get("delta_main")).minor > 0
        except ValueError:
            return data  # delta_main's own validation says what is wrong with it
        return {**data, "credited_payment": credited}


class TransferRequested(Event):
    """A subscriber (or support on their behalf) asks to move money between two main balances."""

    event_type: ClassVar[str] = "TransferRequested"
    topic: ClassVar[str] = topics.LEDGER_COMMANDS

    request_id: UUID = Field(
        description="Unique per request: a redelivered request moves money once"
    )
    from_account: AccountNumber
    to_account: AccountNumber
    amount: PositiveMoney
    requested_by: str = Field(
        min_length=1, max_length=64,
        description="Who asked, as their credentials say: cabinet:<account> for a subscriber (who may move"
                    " money only out of that account), else the service or operator, e.g. cli:<login>",
    )


class FundsTransferred(Event):
    """Money moved from one subscriber's main balance to another's."""

    event_type: ClassVar[str] = "FundsTransferred"
    topic: ClassVar[str] = topics.LEDGER

    request_id: UUID
    transaction_id: UUID
    from_account: AccountNumber
    to_account: AccountNumber
    amount: PositiveMoney


class _TransferRefused(Event):
    """What every version of TransferRejected says (a base: not an event type of its own)."""

    topic: ClassVar[str] = topics.LEDGER

    request_id: UUID
    from_account: AccountNumber
    to_account: AccountNumber
    amount: PositiveMoney
    detail: str = Field(max_length=200, description="The reason in words, for the cabinet to show")


class TransferRejected(_TransferRefused):
    """A transfer request was refused; nothing moved.

    v2: ``reason`` may also be ``credit_not_transferable``. v1 is published beside it, where it
    can say the same (``credit_not_transferable`` is ``insufficient_funds`` there)."""

    event_type: ClassVar[str] = "TransferRejected"
    version: ClassVar[int] = 2

    reason: TransferRefusal

    def previous_versions(self) -> tuple[Event, ...]:
        old = (TransferRefusalV1.INSUFFICIENT_FUNDS if self.reason is TransferRefusal.CREDIT_NOT_TRANSFERABLE
               else TransferRefusalV1(self.reason.value))
        return (TransferRejectedV1(**{**self.model_dump(), "reason": old}),)


class TransferRejectedV1(_TransferRefused):
    """v1 of TransferRejected (superseded by v2, still published beside it)."""

    event_type: ClassVar[str] = "TransferRejected"

    reason: TransferRefusalV1


class BonusAccrued(Event):
    """A campaign credited bonuses for a payment."""

    event_type: ClassVar[str] = "BonusAccrued"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    transaction_id: UUID
    payment_transaction_id: UUID = Field(description="The payment that earned the bonus")
    campaign: str = Field(description="Name of the campaign that applied")
    amount: PositiveMoney
    bonus_balance: Money = Field(description="Bonus balance after the accrual")


class BonusRedemptionRequested(Event):
    """A subscriber exchanges bonuses for a discount or a gift."""

    event_type: ClassVar[str] = "BonusRedemptionRequested"
    topic: ClassVar[str] = topics.LEDGER_COMMANDS

    request_id: UUID
    account_number: AccountNumber
    amount: PositiveMoney
    purpose: RedemptionPurpose = Field(
        description="discount or gift; bonuses pay charges through the charge itself"
    )
    description: str = Field(default="", max_length=200)
    item: str | None = Field(
        default=None, min_length=1, max_length=40,
        description="The rewards catalogue's item bought (GET /ledger/rewards); its kind and price must match"
                    " purpose and amount. None: a discount or gift of the amount, named by description alone")


class BonusRedemptionRefusal(StrEnum):
    UNKNOWN_ACCOUNT = "unknown_account"
    ACCOUNT_CLOSED = "account_closed"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_PURPOSE = "invalid_purpose"
    INSUFFICIENT_BONUS = "insufficient_bonus"


class BonusRedemptionRejected(Event):
    """A bonus redemption was refused; no bonus moved. The cabinet shows ``detail``."""

    event_type: ClassVar[str] = "BonusRedemptionRejected"
    topic: ClassVar[str] = topics.LEDGER

    request_id: UUID
    account_number: AccountNumber
    purpose: RedemptionPurpose
    reason: BonusRedemptionRefusal
    requested: PositiveMoney
    available: Money = Field(description="The bonus balance when the request was decided")
    detail: str = Field(max_length=200, description="The reason in words, for the cabinet to show")


class BonusRedeemed(Event):
    """Bonuses were spent: on a charge (``charge_id``) or a discount/gift (``request_id``)."""

    event_type: ClassVar[str] = "BonusRedeemed"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    transaction_id: UUID
    amount: PositiveMoney
    purpose: RedemptionPurpose
    charge_id: str | None = None
    request_id: UUID | None = None
    bonus_balance: Money = Field(description="Bonus balance after the redemption")


class _PaymentParked(Event):
    """What every version of PaymentUnmatched says (a base: not an event type of its own)."""

    topic: ClassVar[str] = topics.LEDGER

    transaction_id: UUID = Field(description="The transaction that parked the money in suspense")
    account_number: str = Field(min_length=1, max_length=32, description="As the payer typed it")
    channel: PaymentChannel
    reference: str = Field(min_length=1, max_length=64)
    amount: PositiveMoney
    received_at: AwareDatetime


class PaymentUnmatched(_PaymentParked):
    """A payment could not be credited: it waits in suspense for operations to place it.

    v2: ``reason`` may also be ``amount_over_limit``. v1 is published beside it for the reasons
    it knows (an over-limit payment has no v1 form)."""

    event_type: ClassVar[str] = "PaymentUnmatched"
    version: ClassVar[int] = 2

    reason: UnmatchedReason

    def previous_versions(self) -> tuple[Event, ...]:
        if self.reason.value not in {reason.value for reason in UnmatchedReasonV1}:
            return ()
        return (PaymentUnmatchedV1(**{**self.model_dump(), "reason": UnmatchedReasonV1(self.reason.value)}),)


class PaymentUnmatchedV1(_PaymentParked):
    """v1 of PaymentUnmatched (superseded by v2, still published beside it)."""

    event_type: ClassVar[str] = "PaymentUnmatched"

    reason: UnmatchedReasonV1


class SuspenseResolved(Event):
    """Operations moved a parked payment to the account it was meant for."""

    event_type: ClassVar[str] = "SuspenseResolved"
    topic: ClassVar[str] = topics.LEDGER

    transaction_id: UUID
    parked_transaction_id: UUID
    account_number: AccountNumber
    amount: PositiveMoney
    operator: str
    reason: str
    typed_account: str | None = Field(
        default=None, min_length=1, max_length=32,
        description="The number the payer typed (PaymentUnmatched's account_number): its history shows the placement",
    )


class _Reversal(Event):
    """What every version of TransactionReversed says (a base: not an event type of its own)."""

    topic: ClassVar[str] = topics.LEDGER

    transaction_id: UUID = Field(description="The reversing transaction")
    reversed_transaction_id: UUID
    accounts: tuple[AccountNumber, ...] = Field(description="Subscriber accounts it touched")
    operator: str
    reason: str


class TransactionReversed(_Reversal):
    """A correction: a new transaction with the negated postings of an earlier one.

    v2: ``reversed_kind`` may also be ``refund``. v1 is published beside it for the kinds it
    knows (a reversed refund has no v1 form)."""

    event_type: ClassVar[str] = "TransactionReversed"
    version: ClassVar[int] = 2

    reversed_kind: TransactionKind

    def previous_versions(self) -> tuple[Event, ...]:
        if self.reversed_kind.value not in {kind.value for kind in TransactionKindV1}:
            return ()
        return (TransactionReversedV1(**{**self.model_dump(), "reversed_kind": TransactionKindV1(self.reversed_kind.value)}),)


class TransactionReversedV1(_Reversal):
    """v1 of TransactionReversed (superseded by v2, still published beside it)."""

    event_type: ClassVar[str] = "TransactionReversed"

    reversed_kind: TransactionKindV1


class AccountRefunded(Event):
    """The money left on a closed account was paid back to the subscriber outside the suite (a
    payout: the main balance to the operator's refunds account, which pays it out)."""

    event_type: ClassVar[str] = "AccountRefunded"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    transaction_id: UUID
    amount: PositiveMoney
    requested_by: str = Field(min_length=1, max_length=64, description="Who closed the account")


class AccountClosed(Event):
    """The ledger closed the account after settling its main balance: payments for it go to
    suspense from now on, charges for it are refused, and its number is never issued again.
    Bonuses left on it are forfeited (they stay in its history)."""

    event_type: ClassVar[str] = "AccountClosed"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    settlement: ClosureSettlement
    settled: Money = Field(description="What the settlement moved off the main balance (zero: nothing was left)")
    transfer_to: AccountNumber | None = Field(default=None, description="Where a transfer settlement moved it")
    forfeited_bonus: Money = Field(description="The bonus balance left on the account")
    requested_by: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
    account_version: AccountVersion = None


class PaymentTypeChangeRequested(Event):
    """Switch an account between prepaid and credit (with a limit)."""

    event_type: ClassVar[str] = "PaymentTypeChangeRequested"
    topic: ClassVar[str] = topics.LEDGER_COMMANDS

    request_id: UUID
    account_number: AccountNumber
    payment_type: PaymentType
    credit_limit: Money = Field(description="Zero for prepaid; more than zero for credit")
    requested_by: str = Field(min_length=1, max_length=64)


class PaymentTypeChanged(Event):
    """An account's payment type or credit limit changed."""

    event_type: ClassVar[str] = "PaymentTypeChanged"
    topic: ClassVar[str] = topics.LEDGER

    account_number: AccountNumber
    payment_type: PaymentType
    credit_limit: Money
    previous_payment_type: PaymentType
    previous_credit_limit: Money
    changed_by: str
    account_version: AccountVersion = None
    """Shared with BalanceChanged: the ledger counts every change of the account it journals."""


JOURNAL_KEY = "journal"
"""The key (and envelope ``account``) of every ``JournalSealed``: it concerns the whole journal."""


class JournalSealed(Event):
    """The ledger's hash chain as it stood: its first ``length`` transactions hash to ``hash``.

    Published periodically (every ``BILLING_LEDGER_SEAL_EVERY_SECONDS`` while the journal grows,
    every ``BILLING_LEDGER_SEAL_EVERY_TRANSACTIONS`` transactions, and when the ledger stops) on
    its own topic, keyed `journal`. A seal is tamper evidence kept outside the ledger's
    database: `billing verify` checks that the journal still reproduces every seal, so history
    rewritten in the database (chain head included) is found. Auditors may keep a copy.
    """

    event_type: ClassVar[str] = "JournalSealed"
    topic: ClassVar[str] = topics.LEDGER_SEALS

    length: int = Field(ge=1, description="Number of transactions in the journal, chain order")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 chain hash after the last of them (hex)")
    last_transaction_id: UUID = Field(description="The journal's newest transaction at that length")
    sealed_at: AwareDatetime


__all__ = [
    "LEDGER_REFUSALS",
    "JOURNAL_KEY",
    "JournalSealed",
    "BalanceChanged",
    "BonusAccrued",
    "BonusRedeemed",
    "BonusRedemptionRefusal",
    "BonusRedemptionRejected",
    "BonusRedemptionRequested",
    "FundsTransferred",
    "PaymentType",
    "PaymentTypeChangeRequested",
    "PaymentTypeChanged",
    "PaymentUnmatched",
    "PaymentUnmatchedV1",
    "RedemptionPurpose",
    "SuspenseResolved",
    "TransactionKind",
    "TransactionKindV1",
    "TransactionReversed",
    "TransactionReversedV1",
    "AccountClosed",
    "AccountRefunded",
    "TransferRefusal",
    "TransferRefusalV1",
    "TransferRejected",
    "TransferRejectedV1",
    "TransferRequested",
    "UnmatchedReason",
    "UnmatchedReasonV1",
]
