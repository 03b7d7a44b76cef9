"""The ledger's pure domain: every money rule, allowed and refused, and the journal's invariants."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from uuid import UUID, uuid4, uuid5

import pytest
from billing_contracts.catalog.ledger import (
    BonusRedemptionRefusal,
    BalanceChanged,
    BonusAccrued,
    BonusRedeemed,
    BonusRedemptionRejected,
    BonusRedemptionRequested,
    FundsTransferred,
    PaymentType,
    PaymentTypeChanged,
    PaymentUnmatched,
    RedemptionPurpose,
    SuspenseResolved,
    TransactionKind,
    TransactionReversed,
    TransferRefusal,
    TransferRejected,
    TransferRequested,
    UnmatchedReason,
)
from billing_contracts.catalog.payments import PaymentChannel, PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.money import MAX_MINOR, Money, PositiveMoney
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger.domain import (
    RequestRefused,
    BONUS_EXPENSE,
    DISCOUNTS,
    GENESIS_HASH,
    GIFTS,
    SUSPENSE,
    AccountCode,
    AccountState,
    BonusCampaign,
    Book,
    CommandRefused,
    ErrorCode,
    InvalidCampaign,
    InvalidTransaction,
    OperatorNote,
    Outcome,
    Owner,
    Posting,
    Statement,
    SuspenseItem,
    SuspenseStatus,
    Transaction,
    account_code,
    apply,
    apply_charge,
    balances_of,
    bonus_account,
    build_statement,
    canonical_encoding,
    cash_account,
    change_payment_type,
    check_double_entry,
    check_requester,
    close_account,
    credit_payment,
    find_mismatches,
    is_operator_account,
    is_subscriber_account,
    is_valid_account_code,
    journal_entries,
    main_account,
    move,
    open_account,
    operator_balances_after,
    parse_campaigns,
    rebuild_balances,
    receipt_for,
    receive_payment,
    redeem_bonus,
    replay,
    resolve_suspense,
    revenue_account,
    reverse,
    spendable,
    subscriber_number,
    transaction_hash,
    transaction_id_for,
    transfer_funds,
    verify_chain,
)
from ledger.domain.audit import Audit, ChainHead, FindingKind, JournalRecord, Seal
from ledger.domain.errors import ANNOUNCED_REFUSALS
from ledger.domain.outcome import money
from ledger.domain.transactions import TRANSACTION_NAMESPACE

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ALICE, BOB, CAROL = "100000000008", "100000000016", "100000000024"
OPERATOR = OperatorNote(who="operator:ivanova", why="payer typed a wrong number")
CAMPAIGN = BonusCampaign(
    name="20 % back",
    basis_points=2000,
    valid_from=datetime(2026, 3, 1, tzinfo=UTC),
    valid_to=datetime(2026, 4, 1, tzinfo=UTC),
)

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


def payment(
    account: str = ALICE,
    minor: int = 100_000,
    *,
    reference: str = "ref-1",
    channel: PaymentChannel = PaymentChannel.CARD,
    currency: str = "RUB",
    received_at: datetime = AT,
) -> PaymentReceived:
    return PaymentReceived(
        account_number=account,
        channel=channel,
        reference=reference,
        amount=PositiveMoney(minor=minor, currency=currency),
        received_at=received_at,
    )


def charge(
    account: str = ALICE,
    minor: int = 5_000,
    *,
    charge_id: str = "c-1",
    fee_kind: FeeKind = FeeKind.SUBSCRIPTION,
    currency: str = "RUB",
) -> ChargeApplied:
    return ChargeApplied(
        charge_id=charge_id,
        account_number=account,
        amount=PositiveMoney(minor=minor, currency=currency),
        fee_kind=fee_kind,
        charged_for=PLAN,
        billing_day=AT.date(),
    )


def transfer_request(
    source: str = ALICE, target: str = BOB, minor: int = 1_000, currency: str = "RUB"
) -> TransferRequested:
    return TransferRequested(
        request_id=uuid4(),
        from_account=source,
        to_account=target,
        amount=PositiveMoney(minor=minor, currency=currency),
        requested_by=f"cabinet:{source}",
    )


def redemption(
    account: str = ALICE,
    minor: int = 1_000,
    purpose: RedemptionPurpose = RedemptionPurpose.DISCOUNT,
) -> BonusRedemptionRequested:
    return BonusRedemptionRequested(
        request_id=uuid4(),
        account_number=account,
        amount=PositiveMoney(minor=minor),
        purpose=purpose,
    )


def account(number: str = ALICE, **changes: object) -> AccountState:
    return replace(open_account(number), **changes)  # type: ignore[arg-type]


def only(outcome: Outcome) -> Transaction:
    (txn,) = outcome.transactions
    return txn


def payloads(outcome: Outcome, kind: type) -> list:
    return [event.payload for event in outcome.events if isinstance(event.payload, kind)]


def refused(code: ErrorCode) -> pytest.RaisesExc:
    return pytest.raises(CommandRefused, check=lambda exc: exc.code is code)


# --- chart of accounts ----------------------------------------------------------------------


def test_account_codes_follow_the_chart() -> None:
    assert main_account(ALICE) == f"sub:{ALICE}:main"
    assert bonus_account(ALICE) == f"sub:{ALICE}:bonus"
    assert cash_account(PaymentChannel.TERMINAL) == "op:cash:terminal"
    assert revenue_account(FeeKind.VOLUNTARY_BLOCK) == "op:revenue:voluntary_block"
    for code in (main_account(ALICE), bonus_account(ALICE), BONUS_EXPENSE, SUSPENSE, DISCOUNTS):
        assert is_valid_account_code(code)


@pytest.mark.parametrize(
    "code", ["sub:12345:main", f"sub:{ALICE}:savings", "bank:cash", "op:Cash:card", "op:", ""]
)
def test_malformed_account_codes_are_not_in_the_chart(code: str) -> None:
    assert not is_valid_account_code(code)


def test_subscriber_and_operator_accounts_are_told_apart() -> None:
    assert is_subscriber_account(bonus_account(BOB)) and not is_operator_account(bonus_account(BOB))
    assert is_operator_account(SUSPENSE) and not is_subscriber_account(SUSPENSE)
    assert subscriber_number(main_account(BOB)) == BOB
    assert subscriber_number(cash_account(PaymentChannel.BANK)) is None


def test_an_account_code_has_named_parts_and_is_stored_as_written() -> None:
    assert account_code(bonus_account(BOB)) == AccountCode(Owner.SUBSCRIBER, number=BOB, book=Book.BONUS)
    assert account_code(cash_account(PaymentChannel.BANK)) == AccountCode.operator("cash:bank")
    for code in (main_account(ALICE), bonus_account(ALICE), cash_account(PaymentChannel.TERMINAL), SUSPENSE,
                 revenue_account(FeeKind.SUBSCRIPTION)):
        assert str(account_code(code)) == code
    assert str(AccountCode.subscriber(ALICE, Book.MAIN)) == main_account(ALICE)


@pytest.mark.parametrize("code", ["sub:12345:main", f"sub:{ALICE}:savings", "op:Cash:card", ""])
def test_a_code_outside_the_chart_has_no_parts(code: str) -> None:
    with pytest.raises(ValueError, match="not an account code"):
        account_code(code)


# --- transactions and their invariants ------------------------------------------------------


def build(postings: tuple[Posting, ...], **overrides: object) -> Transaction:
    fields: dict[str, object] = {
        "id": uuid4(),
        "kind": TransactionKind.CHARGE,
        "postings": postings,
        "cause_event_id": uuid4(),
        "cause_type": "ChargeApplied",
        "occurred_at": AT,
        "business_key": "k",
    }
    fields.update(overrides)
    return Transaction(**fields)  # type: ignore[arg-type]


def test_a_balanced_transaction_is_accepted() -> None:
    txn = build(
        (Posting(main_account(ALICE), -500, "RUB"), Posting("op:revenue:option", 500, "RUB"))
    )
    assert txn.currency == "RUB"
    assert txn.amount_on(main_account(ALICE)) == -500
    assert txn.amount_on(main_account(BOB)) == 0


@pytest.mark.parametrize(
    ("postings", "overrides", "code"),
    [
        ((Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -4, "RUB")), {}, ErrorCode.UNBALANCED),
        (
            (Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "EUR")),
            {},
            ErrorCode.MIXED_CURRENCIES,
        ),
        ((Posting(SUSPENSE, 0, "RUB"),), {}, ErrorCode.TOO_FEW_POSTINGS),
        (
            (Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "RUB"), Posting(GIFTS, 0, "RUB")),
            {},
            ErrorCode.ZERO_POSTING,
        ),
        (
            (Posting("cash", 5, "RUB"), Posting(DISCOUNTS, -5, "RUB")),
            {},
            ErrorCode.MALFORMED_ACCOUNT_CODE,
        ),
        (
            (Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "RUB")),
            {"occurred_at": datetime(2026, 3, 10)},
            ErrorCode.NAIVE_TIME,
        ),
        (
            (Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "RUB")),
            {"reverses": uuid4()},
            ErrorCode.REVERSAL_LINK,
        ),
        (
            (Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "RUB")),
            {"kind": TransactionKind.REVERSAL},
            ErrorCode.REVERSAL_LINK,
        ),
    ],
)
def test_transactions_breaking_an_invariant_are_refused(
    postings: tuple[Posting, ...], overrides: dict[str, object], code: ErrorCode
) -> None:
    with pytest.raises(InvalidTransaction) as caught:
        build(postings, **overrides)
    assert caught.value.code is code


def test_a_currency_mix_is_refused_with_both_currencies_named() -> None:
    with pytest.raises(InvalidTransaction, match="EUR, RUB"):
        build((Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -5, "EUR")))


def test_refusals_print_money_as_money() -> None:
    """People read these messages: an amount shows with its currency, never as bare kopecks."""
    with pytest.raises(InvalidTransaction, match=r"postings sum to 0\.01 RUB, not zero"):
        build((Posting(SUSPENSE, 5, "RUB"), Posting(DISCOUNTS, -4, "RUB")))
    with pytest.raises(CommandRefused, match=r"has a main balance of -0\.01 RUB; settle it"):
        close_account(account(main=-1))
    with pytest.raises(CommandRefused, match=r"owes 12\.34 RUB; pay the debt"):
        change_payment_type(account(main=-1_234, payment_type=PaymentType.CREDIT, credit_limit=2_000),
                            PaymentType.PREPAID, Money(minor=0), changed_by="cabinet")
    with pytest.raises(CommandRefused, match=r"limit 10\.00 RUB does not cover the current debt of 10\.01 RUB"):
        change_payment_type(account(main=-1_001), PaymentType.CREDIT, Money(minor=1_000), changed_by="cabinet")


def test_transaction_ids_derive_from_kind_and_business_key() -> None:
    assert transaction_id_for(TransactionKind.PAYMENT, "card:r1") == transaction_id_for(
        TransactionKind.PAYMENT, "card:r1"
    )
    assert transaction_id_for(TransactionKind.PAYMENT, "card:r1") != transaction_id_for(
        TransactionKind.BONUS_ACCRUAL, "card:r1"
    )


@pytest.mark.parametrize("kind", list(TransactionKind))
@pytest.mark.parametrize("key", ["card:r1", "", "terminal:ЧЕК-№5 ✓", "charge:" + "x" * 300])
def test_transaction_ids_are_the_uuid5_they_always_were(kind: TransactionKind, key: str) -> None:
    """Stored journals hold these ids: the hand-written derivation must never drift from it."""
    assert transaction_id_for(kind, key) == uuid5(TRANSACTION_NAMESPACE, f"{kind.value}:{key}")


@pytest.mark.parametrize(("who", "why", "blank"), [(" ", "fix", "who"), ("ivanova", "", "why")])
def test_an_operator_note_needs_who_and_why(who: str, why: str, blank: str) -> None:
    with refused(ErrorCode.MISSING_OPERATOR_NOTE) as caught:
        OperatorNote(who=who, why=why)
    assert caught.value.field == blank


# --- account state --------------------------------------------------------------------------


def test_apply_folds_main_and_bonus_postings_and_ignores_other_accounts() -> None:
    state = account(main=1_000, bonus=50)
    txn = build(
        (
            Posting(main_account(ALICE), -300, "RUB"),
            Posting(bonus_account(ALICE), -50, "RUB"),
            Posting("op:revenue:subscription", 350, "RUB"),
        )
    )
    after = apply(state, txn)
    assert (after.main, after.bonus) == (700, 0)
    untouched = account(BOB, main=10)
    assert apply(untouched, txn) is untouched


def test_apply_refuses_a_transaction_in_another_currency_than_the_account() -> None:
    txn = build((Posting(main_account(ALICE), 5, "EUR"), Posting(SUSPENSE, -5, "EUR")))
    with pytest.raises(InvalidTransaction) as caught:
        apply(account(), txn)
    assert caught.value.code is ErrorCode.CURRENCY_MISMATCH


def test_spendable_adds_the_credit_limit_only_on_credit() -> None:
    assert spendable(account(main=-200, credit_limit=1_000)) == -200
    assert spendable(account(main=-200, payment_type=PaymentType.CREDIT, credit_limit=1_000)) == 800


def test_open_account_starts_prepaid_and_empty() -> None:
    state = open_account(ALICE, "EUR")
    assert (state.main, state.bonus, state.payment_type, state.is_open) == (
        0,
        0,
        PaymentType.PREPAID,
        True,
    )
    assert state.currency == "EUR"


@pytest.mark.parametrize(
    ("number", "currency", "code"),
    [
        ("12345", "RUB", ErrorCode.INVALID_ACCOUNT_NUMBER),
        (ALICE, "XXX", ErrorCode.CURRENCY_MISMATCH),
    ],
)
def test_open_account_refuses_a_bad_number_or_currency(
    number: str, currency: str, code: ErrorCode
) -> None:
    with refused(code):
        open_account(number, currency)


def test_only_a_settled_open_account_closes() -> None:
    assert not close_account(account(bonus=30)).is_open
    with refused(ErrorCode.ACCOUNT_NOT_SETTLED):
        close_account(account(main=-1))
    with refused(ErrorCode.ACCOUNT_CLOSED):
        close_account(account(is_open=False))


# --- payments -------------------------------------------------------------------------------


def test_a_payment_credits_main_and_debits_the_channels_cash_account() -> None:
    cause = uuid4()
    outcome = receive_payment(
        payment(minor=25_050), cause_id=cause, account=account(main=-50), campaigns=(), at=AT
    )
    txn = only(outcome)
    assert txn.kind is TransactionKind.PAYMENT
    assert set(txn.postings) == {
        Posting(main_account(ALICE), 25_050, "RUB"),
        Posting(cash_account(PaymentChannel.CARD), -25_050, "RUB"),
    }
    assert (txn.cause_event_id, txn.cause_type, txn.occurred_at) == (cause, "PaymentReceived", AT)
    assert outcome.accounts == (account(main=25_000),)
    (changed,) = payloads(outcome, BalanceChanged)
    assert changed.main == Money(minor=25_000) and changed.delta_main == Money(minor=25_050)
    assert changed.delta_bonus == Money(minor=0) and changed.cause_event_id == cause
    assert outcome.events[0].key == ALICE


def test_a_redelivered_payment_builds_the_same_transaction_id() -> None:
    first = only(
        receive_payment(payment(), cause_id=uuid4(), account=account(), campaigns=(), at=AT)
    )
    again = only(
        receive_payment(
            payment(), cause_id=uuid4(), account=account(main=100_000), campaigns=(), at=AT
        )
    )
    other = only(
        receive_payment(
            payment(reference="ref-2"), cause_id=None, account=account(), campaigns=(), at=AT
        )
    )
    assert first.id == again.id != other.id


def test_a_campaign_accrues_a_separate_bonus_funded_by_bonus_expense() -> None:
    outcome = receive_payment(
        payment(minor=100_000), cause_id=None, account=account(), campaigns=(CAMPAIGN,), at=AT
    )
    paid, bonus = outcome.transactions
    assert bonus.kind is TransactionKind.BONUS_ACCRUAL
    assert set(bonus.postings) == {
        Posting(bonus_account(ALICE), 20_000, "RUB"),
        Posting(BONUS_EXPENSE, -20_000, "RUB"),
    }
    assert all(not p.account.endswith(":bonus") for p in paid.postings)
    assert outcome.accounts == (account(main=100_000, bonus=20_000),)
    (accrued,) = payloads(outcome, BonusAccrued)
    assert accrued.amount.minor == 20_000 and accrued.payment_transaction_id == paid.id
    assert accrued.campaign == "20 % back" and accrued.bonus_balance == Money(minor=20_000)
    assert [c.delta_bonus.minor for c in payloads(outcome, BalanceChanged)] == [0, 20_000]


@pytest.mark.parametrize(("paid", "bonus"), [(10_004, 2_000), (999, 199), (4, 0)])
def test_the_bonus_is_floored_to_the_kopeck(paid: int, bonus: int) -> None:
    outcome = receive_payment(
        payment(minor=paid), cause_id=None, account=account(), campaigns=(CAMPAIGN,), at=AT
    )
    assert outcome.accounts[0].bonus == bonus
    assert len(outcome.transactions) == (2 if bonus else 1)


@given(st.integers(1, 10**9), st.integers(1, 10_000))
def test_the_bonus_never_exceeds_the_exact_share_by_any_fraction(
    paid: int, basis_points: int
) -> None:
    bonus = replace(CAMPAIGN, basis_points=basis_points).bonus_for(paid)
    assert bonus * 10_000 <= paid * basis_points < (bonus + 1) * 10_000


@pytest.mark.parametrize(
    ("campaign", "received_at"),
    [
        (CAMPAIGN, datetime(2026, 2, 28, 23, 59, tzinfo=UTC)),
        (CAMPAIGN, CAMPAIGN.valid_to),
        (replace(CAMPAIGN, channels=frozenset({PaymentChannel.TERMINAL})), AT),
        (replace(CAMPAIGN, min_amount=100_001), AT),
        (replace(CAMPAIGN, currency="EUR"), AT),
    ],
)
def test_a_campaign_applies_only_within_its_rule(
    campaign: BonusCampaign, received_at: datetime
) -> None:
    outcome = receive_payment(
        payment(minor=100_000, received_at=received_at),
        cause_id=None,
        account=account(),
        campaigns=(campaign,),
        at=AT,
    )
    assert [t.kind for t in outcome.transactions] == [TransactionKind.PAYMENT]
    assert outcome.accounts[0].bonus == 0


def test_the_campaign_follows_when_the_payment_was_received_not_when_booked() -> None:
    late_booking = CAMPAIGN.valid_to + timedelta(days=2)
    outcome = receive_payment(
        payment(minor=1_000),
        cause_id=None,
        account=account(),
        campaigns=(CAMPAIGN,),
        at=late_booking,
    )
    assert outcome.accounts[0].bonus == 200


def test_the_most_generous_campaign_wins_and_caps_hold() -> None:
    small = replace(CAMPAIGN, name="5 %", basis_points=500)
    capped = replace(CAMPAIGN, name="50 % up to 300", basis_points=5_000, max_bonus=30_000)
    outcome = receive_payment(
        payment(minor=100_000),
        cause_id=None,
        account=account(),
        campaigns=(small, CAMPAIGN, capped),
        at=AT,
    )
    assert [a.campaign for a in payloads(outcome, BonusAccrued)] == ["50 % up to 300"]
    assert outcome.accounts[0].bonus == 30_000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"basis_points": 0}, "basis_points"),
        ({"basis_points": 10_001}, "basis_points"),
        ({"valid_to": datetime(2026, 3, 1, tzinfo=UTC)}, "valid_to"),
        ({"valid_from": datetime(2026, 3, 1)}, "valid_from"),
        ({"min_amount": -1}, "min_amount"),
        ({"max_bonus": 0}, "max_bonus"),
        ({"currency": "XYZ"}, "currency"),
        ({"name": " "}, "name"),
    ],
)
def test_a_malformed_campaign_is_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidCampaign) as caught:
        replace(CAMPAIGN, **changes)  # type: ignore[arg-type]
    assert caught.value.field == field and caught.value.code is ErrorCode.INVALID_CAMPAIGN


def test_campaigns_are_read_from_data() -> None:
    (campaign,) = parse_campaigns(
        '[{"name": "20 % back", "basis_points": 2000, "valid_from": "2026-03-01T00:00:00Z",'
        ' "valid_to": "2026-04-01T00:00:00Z", "channels": ["card", "bank"], "min_amount": 50000}]'
    )
    assert campaign.channels == {PaymentChannel.CARD, PaymentChannel.BANK}
    assert campaign.min_amount == 50_000 and campaign.valid_to == CAMPAIGN.valid_to
    with pytest.raises(InvalidCampaign):
        parse_campaigns(
            [{"name": "x", "basis_points": 0, "valid_from": AT, "valid_to": AT + timedelta(1)}]
        )


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (None, UnmatchedReason.UNKNOWN_ACCOUNT),
        (AccountState(ALICE, is_open=False), UnmatchedReason.CLOSED_ACCOUNT),
        (AccountState(ALICE, currency="EUR"), UnmatchedReason.CURRENCY_MISMATCH),
    ],
)
def test_a_payment_matching_no_open_account_is_parked_in_suspense(
    state: AccountState | None, reason: UnmatchedReason
) -> None:
    outcome = receive_payment(
        payment(minor=7_000), cause_id=None, account=state, campaigns=(CAMPAIGN,), at=AT
    )
    txn = only(outcome)
    assert txn.kind is TransactionKind.PAYMENT_PARKED
    assert set(txn.postings) == {
        Posting(SUSPENSE, 7_000, "RUB"),
        Posting(cash_account(PaymentChannel.CARD), -7_000, "RUB"),
    }
    assert outcome.accounts == ()
    assert outcome.suspense == SuspenseItem(
        txn.id, ALICE, PaymentChannel.CARD, "ref-1", 7_000, "RUB", AT, reason, SuspenseStatus.OPEN
    )
    (unmatched,) = payloads(outcome, PaymentUnmatched)
    assert unmatched.reason is reason and unmatched.transaction_id == txn.id
    assert outcome.events[0].key == ALICE


def test_a_payment_to_a_mistyped_number_is_parked_under_what_was_typed() -> None:
    outcome = receive_payment(payment("12-34"), cause_id=None, account=None, campaigns=(), at=AT)
    assert outcome.events[0].key == "12-34"
    assert payloads(outcome, PaymentUnmatched)[0].account_number == "12-34"


def test_credit_payment_itself_refuses_a_closed_account() -> None:
    with refused(ErrorCode.ACCOUNT_CLOSED):
        credit_payment(
            payment(), cause_id=None, account=account(is_open=False), campaigns=(), at=AT
        )


def parked(minor: int = 7_000) -> SuspenseItem:
    suspense = receive_payment(
        payment("999999999999", minor), cause_id=None, account=None, campaigns=(), at=AT
    ).suspense
    assert suspense is not None
    return suspense


def test_no_operator_account_may_leave_the_money_range() -> None:
    """Suspense and cash hold money as a balance does: parking what suspense cannot hold is refused
    whole (issue 26: two parked payments of 10^15 took op:suspense to 2 × 10^15)."""
    huge = receive_payment(payment("999999999991", MAX_MINOR), cause_id=None, account=None, campaigns=(), at=AT)
    after = operator_balances_after({}, huge.transactions)
    assert after == {(SUSPENSE, "RUB"): MAX_MINOR, (cash_account(PaymentChannel.CARD), "RUB"): -MAX_MINOR}
    with refused(ErrorCode.AMOUNT_OUT_OF_BOUNDS) as refusal:
        operator_balances_after(after, receive_payment(payment("999999999991", 1, reference="ref-2"), cause_id=None,
                                                       account=None, campaigns=(), at=AT).transactions)
    assert "op:suspense would hold" in refusal.value.message and "op:cash:card would hold" in refusal.value.message
    other_currency = receive_payment(payment("999999999991", MAX_MINOR, reference="ref-3", currency="USD"),
                                     cause_id=None, account=None, campaigns=(), at=AT)
    assert operator_balances_after(after, other_currency.transactions)[(SUSPENSE, "USD")] == MAX_MINOR
    with refused(ErrorCode.AMOUNT_OUT_OF_BOUNDS):  # the card's cash account is full for crediting too
        operator_balances_after(after, credit_payment(payment(), cause_id=None, account=account(), campaigns=(),
                                                      at=AT).transactions)
    by_terminal = credit_payment(payment(channel=PaymentChannel.TERMINAL), cause_id=None, account=account(),
                                 campaigns=(), at=AT)
    assert operator_balances_after(after, by_terminal.transactions) == {
        (cash_account(PaymentChannel.TERMINAL), "RUB"): -100_000}


def test_operations_move_a_parked_payment_to_the_right_account() -> None:
    item, command = parked(), uuid4()
    outcome = resolve_suspense(
        item,
        target=account(BOB, main=-100),
        target_number=BOB,
        operator=OPERATOR,
        command_id=command,
        at=AT,
    )
    txn = only(outcome)
    assert txn.kind is TransactionKind.SUSPENSE_RESOLUTION and txn.operator == OPERATOR
    assert set(txn.postings) == {
        Posting(SUSPENSE, -7_000, "RUB"),
        Posting(main_account(BOB), 7_000, "RUB"),
    }
    assert outcome.accounts[0].main == 6_900
    assert outcome.suspense == replace(item, status=SuspenseStatus.RESOLVED, settled_by=txn.id)
    (resolved,) = payloads(outcome, SuspenseResolved)
    assert (
        resolved.parked_transaction_id == item.transaction_id and resolved.operator == OPERATOR.who
    )
    assert (
        rebuild_balances(
            (p.account, p.amount) for t in (parked_txn(item), txn) for p in t.postings
        )[SUSPENSE]
        == 0
    )


def parked_txn(item: SuspenseItem) -> Transaction:
    return only(
        receive_payment(
            payment("999999999999", item.amount), cause_id=None, account=None, campaigns=(), at=AT
        )
    )


@pytest.mark.parametrize(
    ("item", "target", "code"),
    [
        (
            replace(parked(), status=SuspenseStatus.RESOLVED),
            account(BOB),
            ErrorCode.SUSPENSE_NOT_OPEN,
        ),
        (parked(), None, ErrorCode.UNKNOWN_ACCOUNT),
        (parked(), account(BOB, is_open=False), ErrorCode.ACCOUNT_CLOSED),
        (parked(), account(BOB, currency="EUR"), ErrorCode.CURRENCY_MISMATCH),
    ],
)
def test_suspense_resolution_refusals(
    item: SuspenseItem, target: AccountState | None, code: ErrorCode
) -> None:
    with refused(code):
        resolve_suspense(
            item, target=target, target_number=BOB, operator=OPERATOR, command_id=uuid4(), at=AT
        )


# --- charges and bonuses --------------------------------------------------------------------


def test_a_charge_debits_main_even_into_a_negative_balance() -> None:
    outcome = apply_charge(
        charge(minor=5_000, fee_kind=FeeKind.OPTION),
        cause_id=None,
        account=account(main=1_000),
        at=AT,
    )
    txn = only(outcome)
    assert txn.kind is TransactionKind.CHARGE and txn.business_key == "c-1"
    assert set(txn.postings) == {
        Posting(main_account(ALICE), -5_000, "RUB"),
        Posting("op:revenue:option", 5_000, "RUB"),
    }
    assert outcome.accounts[0].main == -4_000
    assert payloads(outcome, BalanceChanged)[0].delta_main == Money(minor=-5_000)


def test_a_charge_without_bonus_is_posted_even_when_the_bonus_balance_is_negative() -> None:
    outcome = apply_charge(charge(minor=100), cause_id=None, account=account(bonus=-1), at=AT)
    assert [t.kind for t in outcome.transactions] == [TransactionKind.CHARGE]
    with refused(ErrorCode.INSUFFICIENT_BONUS):
        apply_charge(
            charge(minor=100), cause_id=None, account=account(bonus=-1), at=AT, bonus_to_use=1
        )


def test_bonuses_pay_part_of_a_charge_without_touching_main_money() -> None:
    outcome = apply_charge(
        charge(minor=5_000),
        cause_id=None,
        account=account(main=100, bonus=3_000),
        at=AT,
        bonus_to_use=2_000,
    )
    redeemed, charged = outcome.transactions
    assert redeemed.kind is TransactionKind.BONUS_REDEMPTION
    assert {p.account for p in redeemed.postings} == {
        bonus_account(ALICE),
        "op:revenue:subscription",
    }
    assert {p.account for p in charged.postings} == {main_account(ALICE), "op:revenue:subscription"}
    assert charged.amount_on(main_account(ALICE)) == -3_000
    assert (outcome.accounts[0].main, outcome.accounts[0].bonus) == (-2_900, 1_000)
    (spent,) = payloads(outcome, BonusRedeemed)
    assert (spent.purpose, spent.charge_id, spent.bonus_balance) == (
        RedemptionPurpose.CHARGE,
        "c-1",
        Money(minor=1_000),
    )


def test_a_charge_paid_wholly_by_bonuses_posts_no_main_money() -> None:
    outcome = apply_charge(
        charge(minor=500), cause_id=None, account=account(bonus=500), at=AT, bonus_to_use=500
    )
    assert [t.kind for t in outcome.transactions] == [TransactionKind.BONUS_REDEMPTION]
    assert (outcome.accounts[0].main, outcome.accounts[0].bonus) == (0, 0)


@pytest.mark.parametrize(
    ("state", "bonus_to_use", "currency", "code"),
    [
        (account(bonus=100), 101, "RUB", ErrorCode.INSUFFICIENT_BONUS),
        (account(bonus=10_000), 5_001, "RUB", ErrorCode.INVALID_AMOUNT),
        (account(bonus=100), -1, "RUB", ErrorCode.INVALID_AMOUNT),
        (None, 0, "RUB", ErrorCode.UNKNOWN_ACCOUNT),
        (account(is_open=False), 0, "RUB", ErrorCode.ACCOUNT_CLOSED),
        (account(), 0, "EUR", ErrorCode.CURRENCY_MISMATCH),
    ],
)
def test_charge_refusals(
    state: AccountState | None, bonus_to_use: int, currency: str, code: ErrorCode
) -> None:
    with refused(code):
        apply_charge(
            charge(minor=5_000, currency=currency),
            cause_id=None,
            account=state,
            at=AT,
            bonus_to_use=bonus_to_use,
        )


@pytest.mark.parametrize(
    ("purpose", "destination"),
    [(RedemptionPurpose.DISCOUNT, DISCOUNTS), (RedemptionPurpose.GIFT, GIFTS)],
)
def test_bonuses_are_exchanged_for_a_discount_or_a_gift(
    purpose: RedemptionPurpose, destination: str
) -> None:
    request = redemption(minor=700, purpose=purpose)
    outcome = redeem_bonus(request, cause_id=None, account=account(main=50, bonus=1_000), at=AT)
    assert set(only(outcome).postings) == {
        Posting(bonus_account(ALICE), -700, "RUB"),
        Posting(destination, 700, "RUB"),
    }
    assert (outcome.accounts[0].main, outcome.accounts[0].bonus) == (50, 300)
    (spent,) = payloads(outcome, BonusRedeemed)
    assert spent.request_id == request.request_id and spent.purpose is purpose


def announced_refusal(decide: Callable[[], Outcome]) -> RequestRefused:
    """A refused request decides nothing: it raises the refusal, which carries its announcement."""
    with pytest.raises(RequestRefused) as refusal:
        decide()
    return refusal.value


def redemption_refused(decide: Callable[[], Outcome]) -> str:
    """A refused redemption is announced with its reason, keyed by the account."""
    refusal = announced_refusal(decide)
    rejected = refusal.announcement.payload
    assert isinstance(rejected, BonusRedemptionRejected) and refusal.announcement.key == rejected.account_number
    assert refusal.code == rejected.reason.value and refusal.request_id == rejected.request_id
    return rejected.reason.value


def test_bonus_redemption_refusals() -> None:
    assert redemption_refused(lambda: redeem_bonus(
        redemption(minor=1_001), cause_id=None, account=account(main=10**6, bonus=1_000), at=AT
    )) == ErrorCode.INSUFFICIENT_BONUS
    assert redemption_refused(lambda: redeem_bonus(
        redemption(purpose=RedemptionPurpose.CHARGE),
        cause_id=None,
        account=account(bonus=10**6),
        at=AT,
    )) == ErrorCode.INVALID_PURPOSE
    assert redemption_refused(lambda: redeem_bonus(
        redemption(), cause_id=None, account=account(bonus=10**6, is_open=False), at=AT
    )) == ErrorCode.ACCOUNT_CLOSED


def test_every_announced_reason_has_a_kind_of_refusal() -> None:
    """The kind decides the caller's answer (404, 409, 422); a reason without one could not be told."""
    assert set(ANNOUNCED_REFUSALS[TransferRejected]) == set(TransferRefusal)
    assert set(ANNOUNCED_REFUSALS[BonusRedemptionRejected]) == set(BonusRedemptionRefusal)


# --- transfers ------------------------------------------------------------------------------


def test_a_transfer_moves_money_between_two_main_balances() -> None:
    request = transfer_request(minor=1_500)
    outcome = transfer_funds(
        request, cause_id=None, source=account(main=1_500), target=account(BOB, main=-10), at=AT
    )
    txn = only(outcome)
    assert set(txn.postings) == {
        Posting(main_account(ALICE), -1_500, "RUB"),
        Posting(main_account(BOB), 1_500, "RUB"),
    }
    assert [(s.number, s.main) for s in outcome.accounts] == [(ALICE, 0), (BOB, 1_490)]
    (moved,) = payloads(outcome, FundsTransferred)
    assert (moved.request_id, moved.transaction_id) == (request.request_id, txn.id)
    assert sorted(e.key for e in outcome.events if isinstance(e.payload, BalanceChanged)) == [
        ALICE,
        BOB,
    ]


def test_a_credit_account_transfers_only_the_money_it_has() -> None:
    """Credit is not cash: it lets charges take the balance below zero, never a transfer."""
    in_debt = account(main=-500, payment_type=PaymentType.CREDIT, credit_limit=1_000)
    refused = announced_refusal(lambda: transfer_funds(
        transfer_request(minor=500), cause_id=None, source=in_debt, target=account(BOB), at=AT
    ))
    assert refused.announcement.payload.reason is TransferRefusal.CREDIT_NOT_TRANSFERABLE
    with_money = account(main=300, payment_type=PaymentType.CREDIT, credit_limit=1_000)
    allowed = transfer_funds(
        transfer_request(minor=300), cause_id=None, source=with_money, target=account(BOB), at=AT
    )
    assert allowed.accounts[0].main == 0
    for minor, reason in ((301, TransferRefusal.CREDIT_NOT_TRANSFERABLE), (1_301, TransferRefusal.INSUFFICIENT_FUNDS)):
        beyond = announced_refusal(lambda minor=minor: transfer_funds(
            transfer_request(minor=minor), cause_id=None, source=with_money, target=account(BOB), at=AT
        ))
        assert beyond.announcement.payload.reason is reason


@pytest.mark.parametrize(
    ("request_", "source", "target", "reason"),
    [
        (
            transfer_request(ALICE, ALICE),
            account(main=10**6),
            account(main=10**6),
            TransferRefusal.SAME_ACCOUNT,
        ),
        (transfer_request(), None, account(BOB), TransferRefusal.SOURCE_UNKNOWN),
        (
            transfer_request(),
            account(main=10**6, is_open=False),
            account(BOB),
            TransferRefusal.SOURCE_CLOSED,
        ),
        (transfer_request(), account(main=10**6), None, TransferRefusal.TARGET_UNKNOWN),
        (
            transfer_request(),
            account(main=10**6),
            account(BOB, is_open=False),
            TransferRefusal.TARGET_CLOSED,
        ),
        (
            transfer_request(),
            account(main=10**6),
            account(BOB, currency="EUR"),
            TransferRefusal.CURRENCY_MISMATCH,
        ),
        (
            transfer_request(minor=1_001),
            account(main=1_000, bonus=10**6),
            account(BOB),
            TransferRefusal.INSUFFICIENT_FUNDS,
        ),
        (
            transfer_request(minor=1),
            account(main=-5, credit_limit=100),
            account(BOB),
            TransferRefusal.INSUFFICIENT_FUNDS,
        ),
        # Too little money is said before anything about the target: no probing of numbers.
        (transfer_request(minor=1_001), account(main=1_000), None, TransferRefusal.INSUFFICIENT_FUNDS),
        (
            transfer_request(minor=1_001),
            account(main=1_000),
            account(BOB, is_open=False),
            TransferRefusal.INSUFFICIENT_FUNDS,
        ),
        (
            transfer_request(minor=1_001),
            account(main=1_000),
            account(BOB, currency="EUR"),
            TransferRefusal.INSUFFICIENT_FUNDS,
        ),
    ],
)
def test_transfer_refusals_are_announced_and_move_nothing(
    request_: TransferRequested,
    source: AccountState | None,
    target: AccountState | None,
    reason: TransferRefusal,
) -> None:
    refusal = announced_refusal(
        lambda: transfer_funds(request_, cause_id=None, source=source, target=target, at=AT))
    rejected = refusal.announcement.payload
    assert isinstance(rejected, TransferRejected)
    assert (
        rejected.reason is reason and rejected.request_id == request_.request_id and rejected.detail
    )
    assert refusal.announcement.key == request_.from_account
    assert (refusal.code, refusal.message, refusal.kind) == (reason.value, rejected.detail, ANNOUNCED_REFUSALS[TransferRejected][reason][0])


# --- reversals ------------------------------------------------------------------------------


def test_a_reversal_negates_the_postings_and_names_the_original() -> None:
    paid = receive_payment(
        payment(minor=9_000), cause_id=None, account=account(), campaigns=(), at=AT
    )
    original, command = only(paid), uuid4()
    outcome = reverse(
        original,
        accounts=paid.accounts,
        already_reversed=False,
        operator=OPERATOR,
        command_id=command,
        at=AT,
    )
    reversal = only(outcome)
    assert reversal.kind is TransactionKind.REVERSAL and reversal.reverses == original.id
    assert reversal.postings == tuple(Posting(a, -x, c) for a, x, c in original.postings)
    assert (reversal.operator, reversal.cause_event_id) == (OPERATOR, command)
    assert outcome.accounts[0].main == 0
    (reversed_,) = payloads(outcome, TransactionReversed)
    assert reversed_.reversed_kind is TransactionKind.PAYMENT and reversed_.accounts == (ALICE,)
    again = reverse(
        original,
        accounts=(account(),),
        already_reversed=False,
        operator=OPERATOR,
        command_id=uuid4(),
        at=AT,
    )
    assert only(again).id == reversal.id  # a second reversal collides with the first in the journal


def test_reversing_twice_or_reversing_a_reversal_is_refused() -> None:
    paid = receive_payment(payment(), cause_id=None, account=account(), campaigns=(), at=AT)
    with refused(ErrorCode.ALREADY_REVERSED):
        reverse(
            only(paid),
            accounts=paid.accounts,
            already_reversed=True,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
        )
    reversal = only(
        reverse(
            only(paid),
            accounts=paid.accounts,
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
        )
    )
    with refused(ErrorCode.REVERSAL_OF_REVERSAL):
        reverse(
            reversal,
            accounts=(account(),),
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
        )


def test_a_reversal_needs_the_states_of_the_accounts_it_touches() -> None:
    moved = transfer_funds(
        transfer_request(), cause_id=None, source=account(main=10**6), target=account(BOB), at=AT
    )
    with refused(ErrorCode.UNKNOWN_ACCOUNT):
        reverse(
            only(moved),
            accounts=moved.accounts[:1],
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
        )


def test_reversing_a_transfer_restores_both_accounts() -> None:
    source, target = account(main=5_000), account(BOB, main=7)
    moved = transfer_funds(
        transfer_request(minor=2_000), cause_id=None, source=source, target=target, at=AT
    )
    back = reverse(
        only(moved),
        accounts=moved.accounts,
        already_reversed=False,
        operator=OPERATOR,
        command_id=uuid4(),
        at=AT,
    )
    assert back.accounts == (source, target)


def test_reversing_a_parked_payment_returns_it_to_the_payer() -> None:
    item = parked()
    outcome = reverse(
        parked_txn(item),
        accounts=(),
        already_reversed=False,
        operator=OPERATOR,
        command_id=uuid4(),
        at=AT,
        suspense=item,
    )
    assert outcome.suspense == replace(
        item, status=SuspenseStatus.RETURNED, settled_by=only(outcome).id
    )
    assert outcome.events[0].key == item.typed_account
    with refused(ErrorCode.SUSPENSE_ITEM_REQUIRED):
        reverse(
            parked_txn(item),
            accounts=(),
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
        )
    with refused(ErrorCode.SUSPENSE_NOT_OPEN):
        reverse(
            parked_txn(item),
            accounts=(),
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
            suspense=replace(item, status=SuspenseStatus.RESOLVED),
        )


def test_reversing_a_resolution_reopens_the_suspense_item() -> None:
    item = parked()
    resolved = resolve_suspense(
        item, target=account(BOB), target_number=BOB, operator=OPERATOR, command_id=uuid4(), at=AT
    )
    assert resolved.suspense is not None
    outcome = reverse(
        only(resolved),
        accounts=resolved.accounts,
        already_reversed=False,
        operator=OPERATOR,
        command_id=uuid4(),
        at=AT,
        suspense=resolved.suspense,
    )
    assert outcome.suspense == item
    assert outcome.accounts == (account(BOB),)
    with refused(ErrorCode.SUSPENSE_ITEM_REQUIRED):
        reverse(
            only(resolved),
            accounts=resolved.accounts,
            already_reversed=False,
            operator=OPERATOR,
            command_id=uuid4(),
            at=AT,
            suspense=item,
        )


# --- payment type ---------------------------------------------------------------------------


def test_switching_to_credit_sets_the_limit_and_announces_it() -> None:
    outcome = change_payment_type(
        account(main=-300), PaymentType.CREDIT, Money(minor=1_000), changed_by="cabinet"
    )
    assert outcome.accounts == (
        account(main=-300, payment_type=PaymentType.CREDIT, credit_limit=1_000),
    )
    (changed,) = payloads(outcome, PaymentTypeChanged)
    assert (changed.payment_type, changed.credit_limit, changed.previous_payment_type) == (
        PaymentType.CREDIT,
        Money(minor=1_000),
        PaymentType.PREPAID,
    )


def test_switching_back_to_prepaid_without_debt_is_allowed() -> None:
    credit = account(main=0, payment_type=PaymentType.CREDIT, credit_limit=1_000)
    outcome = change_payment_type(credit, PaymentType.PREPAID, Money(minor=0), changed_by="cabinet")
    assert outcome.accounts == (account(main=0),)
    assert payloads(outcome, PaymentTypeChanged)[0].previous_credit_limit == Money(minor=1_000)


def test_asking_for_the_current_settings_changes_nothing() -> None:
    credit = account(payment_type=PaymentType.CREDIT, credit_limit=1_000)
    outcome = change_payment_type(
        credit, PaymentType.CREDIT, Money(minor=1_000), changed_by="cabinet"
    )
    assert outcome.accounts == (credit,) and outcome.events == ()


@pytest.mark.parametrize(
    ("state", "payment_type", "limit", "code"),
    [
        (account(), PaymentType.CREDIT, Money(minor=0), ErrorCode.INVALID_CREDIT_LIMIT),
        (account(), PaymentType.CREDIT, Money(minor=-5), ErrorCode.INVALID_CREDIT_LIMIT),
        (
            account(main=-1_001),
            PaymentType.CREDIT,
            Money(minor=1_000),
            ErrorCode.INVALID_CREDIT_LIMIT,
        ),
        (
            account(),
            PaymentType.CREDIT,
            Money(minor=1_000, currency="EUR"),
            ErrorCode.CURRENCY_MISMATCH,
        ),
        (
            account(main=-1, payment_type=PaymentType.CREDIT, credit_limit=10),
            PaymentType.PREPAID,
            Money(minor=0),
            ErrorCode.DEBT_OUTSTANDING,
        ),
        (account(), PaymentType.PREPAID, Money(minor=100), ErrorCode.INVALID_CREDIT_LIMIT),
        (account(is_open=False), PaymentType.CREDIT, Money(minor=100), ErrorCode.ACCOUNT_CLOSED),
    ],
)
def test_payment_type_refusals(
    state: AccountState, payment_type: PaymentType, limit: Money, code: ErrorCode
) -> None:
    with refused(code):
        change_payment_type(state, payment_type, limit, changed_by="cabinet")


# --- replay, rebuild, double entry ----------------------------------------------------------


def small_journal() -> list[Transaction]:
    first = receive_payment(
        payment(minor=10_000), cause_id=None, account=account(), campaigns=(CAMPAIGN,), at=AT
    )
    second = apply_charge(
        charge(minor=3_000), cause_id=None, account=first.accounts[0], at=AT + timedelta(days=1)
    )
    third = receive_payment(
        payment(minor=500, reference="ref-2"),
        cause_id=None,
        account=second.accounts[0],
        campaigns=(),
        at=AT + timedelta(days=2),
    )
    return [*first.transactions, *second.transactions, *third.transactions]


def test_replay_shows_how_each_entry_moved_the_balance() -> None:
    steps = list(replay(journal_entries(small_journal()), account=main_account(ALICE)))
    assert [(s.before, s.entry.amount, s.after) for s in steps] == [
        (0, 10_000, 10_000),
        (10_000, -3_000, 7_000),
        (7_000, 500, 7_500),
    ]
    assert [s.entry.kind for s in steps] == [
        TransactionKind.PAYMENT,
        TransactionKind.CHARGE,
        TransactionKind.PAYMENT,
    ]


def test_replay_as_of_a_moment_stops_the_balance_there() -> None:
    steps = list(
        replay(
            journal_entries(small_journal()),
            account=main_account(ALICE),
            as_of=AT + timedelta(days=1),
        )
    )
    assert steps[-1].after == 7_000


def test_replay_of_every_account_ends_at_the_rebuilt_balances() -> None:
    journal = small_journal()
    last: dict[str, int] = {}
    for step in replay(journal_entries(journal)):
        last[step.entry.account] = step.after
    assert last == balances_of(journal)
    assert last[bonus_account(ALICE)] == 2_000 and last[BONUS_EXPENSE] == -2_000


def test_rebuild_sums_rows_per_account() -> None:
    assert rebuild_balances([("a", 5), ("b", -2), ("a", -7)]) == {"a": -2, "b": -2}


def test_a_tampered_projection_is_found_per_account_and_currency() -> None:
    replayed = {(account, "RUB"): balance for account, balance in balances_of(small_journal()).items()}
    replayed[(SUSPENSE, "USD")] = 4_200
    stored = dict(replayed) | {
        (main_account(ALICE), "RUB"): replayed[(main_account(ALICE), "RUB")] + 100,
        (main_account(BOB), "RUB"): 0,
        (SUSPENSE, "RUB"): 4_200,  # the dollars moved to the rouble row: the total is the same
        (SUSPENSE, "USD"): 0,
    }
    del stored[(BONUS_EXPENSE, "RUB")]
    mismatches = find_mismatches(stored, replayed)
    assert [(m.account, m.currency, m.stored, m.replayed) for m in mismatches] == [
        (BONUS_EXPENSE, "RUB", 0, -2_000),
        (SUSPENSE, "RUB", 4_200, 0),
        (SUSPENSE, "USD", 0, 4_200),
        (main_account(ALICE), "RUB", 7_600, 7_500),
    ]


def test_double_entry_check_passes_a_sound_journal_and_names_broken_transactions() -> None:
    journal = small_journal()
    rows = [(t.id, p.currency, p.amount) for t in journal for p in t.postings]
    sound = check_double_entry(rows)
    assert sound.balanced and sound.totals == {"RUB": 0} and sound.unbalanced == ()
    tampered_id = journal[1].id
    rows = [(i, c, a + 1 if i == tampered_id and a > 0 else a) for i, c, a in rows] + [
        (uuid4(), "EUR", 0)
    ]
    broken = check_double_entry(rows)
    assert not broken.balanced
    assert broken.unbalanced == (tampered_id,) and broken.totals == {"RUB": 1, "EUR": 0}


# --- hash chain -----------------------------------------------------------------------------


def chained(journal: list[Transaction]) -> list[tuple[Transaction, bytes]]:
    links, prev = [], GENESIS_HASH
    for txn in journal:
        prev = transaction_hash(prev, txn)
        links.append((txn, prev))
    return links


def test_an_untouched_chain_verifies() -> None:
    links = chained(small_journal())
    assert verify_chain(links) is None
    assert all(len(h) == 32 for _, h in links)


def test_the_hash_depends_on_the_previous_hash_and_on_every_field() -> None:
    txn = small_journal()[0]
    assert transaction_hash(GENESIS_HASH, txn) != transaction_hash(b"\x01" * 32, txn)
    for changes in (
        {"cause_type": "X"},
        {"business_key": "card:other"},
        {"occurred_at": AT + timedelta(microseconds=1)},
    ):
        assert transaction_hash(GENESIS_HASH, txn) != transaction_hash(
            GENESIS_HASH, replace(txn, **changes)
        )


def test_the_encoding_is_the_same_in_any_time_zone() -> None:
    txn = small_journal()[0]
    moscow = replace(txn, occurred_at=txn.occurred_at.astimezone(timezone(timedelta(hours=3))))
    assert canonical_encoding(moscow) == canonical_encoding(txn)


def test_the_encoding_is_the_compact_json_of_the_transaction_content() -> None:
    """The hand-written encoding must stay byte-for-byte the JSON it documents: stored hashes
    were computed with it, so any drift would break every chain."""

    def reference(txn: Transaction) -> bytes:
        content = [
            str(txn.id), txn.kind.value, [list(p) for p in txn.postings],
            None if txn.cause_event_id is None else str(txn.cause_event_id), txn.cause_type,
            txn.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"), txn.business_key,
            None if txn.reverses is None else str(txn.reverses),
            None if txn.operator is None else [txn.operator.who, txn.operator.why],
        ]
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()

    odd = 'quote " backslash \\ tab \t newline \n nul \x00 bell \x07 rouble \u20bd emoji \U0001f4b8 /slash'
    first = small_journal()[0]
    samples = [
        *small_journal(),
        replace(first, business_key=odd, cause_type=odd, cause_event_id=None),
        replace(first, operator=OperatorNote(who=odd, why="fix: «оплата» \r\n"), cause_event_id=None),
        replace(first, kind=TransactionKind.REVERSAL, reverses=uuid4(),
                occurred_at=datetime(2026, 3, 1, 0, 0, 0, 0, tzinfo=timezone(timedelta(hours=-5)))),
    ]
    for txn in samples:
        assert canonical_encoding(txn) == reference(txn)


def test_tampering_with_the_journal_breaks_the_chain_at_the_first_edited_link() -> None:
    links = chained(small_journal())
    edited_txn, stored = links[2]
    edited = replace(
        edited_txn, postings=tuple(Posting(a, x * 2, c) for a, x, c in edited_txn.postings)
    )
    broken = verify_chain([*links[:2], (edited, stored), *links[3:]])
    assert broken is not None and (broken.position, broken.transaction_id) == (2, edited_txn.id)
    deleted = verify_chain([links[0], *links[2:]])
    assert deleted is not None and deleted.position == 1
    swapped = verify_chain([links[1], links[0], *links[2:]])
    assert swapped is not None and swapped.position == 0


def _records(links: list[tuple[Transaction, bytes]]) -> list[JournalRecord]:
    return [
        JournalRecord(seq, t.id, t.kind.value, t.postings, t.cause_event_id, t.cause_type, t.occurred_at,
                      t.business_key, t.reverses, t.operator.who if t.operator else None,
                      t.operator.why if t.operator else None, stored)
        for seq, (t, stored) in enumerate(links, start=1)
    ]


def test_a_raw_journal_row_hashes_as_the_transaction_it_stores() -> None:
    """The audit hashes rows no Transaction accepts; for the ones it does, the bytes must be the
    ledger's own, or every stored chain would look broken."""
    first = small_journal()[0]
    samples = [*small_journal(), replace(first, operator=OperatorNote("operator.ivanova", "typo «номер»"))]
    for txn, record in zip(samples, _records(chained(samples)), strict=True):
        assert record.content_hash(b"\x07" * 32) == transaction_hash(b"\x07" * 32, txn)


def test_the_audit_reports_an_unbalanced_row_instead_of_refusing_it() -> None:
    links = chained(small_journal())
    records = _records(links)
    damaged = records[1]._replace(postings=(*records[1].postings[:-1], records[1].postings[-1]._replace(amount=1)))
    audit = Audit()
    for record in [records[0], damaged, *records[2:]]:
        audit.feed(record)
    report = audit.finish(ChainHead(len(records), records[-1].hash), audit.replayed)
    kinds = [(f.kind, f.position) for f in report.findings]
    assert kinds[:2] == [(FindingKind.UNBALANCED, 1), (FindingKind.BROKEN_LINK, 1)]
    assert report.unbalanced == [damaged.id] and not report.ok


def _audited(records: list[JournalRecord], seals: list[Seal], cuts: tuple[int, ...]) -> str:
    """The report of ``records`` audited in spans starting at ``cuts`` (each from the hash the
    one before ends with) and joined: as :func:`repr` shows it, every finding in order."""
    whole = Audit(seals)
    previous = GENESIS_HASH
    for start, end in itertools.pairwise((0, *cuts, len(records))):
        span = Audit(seals, start=start, previous=previous)
        for record in records[start:end]:
            span.feed(record)
        assert whole.joins(span)
        whole.join(span)
        previous = span.ends_with
    return repr(whole.finish(ChainHead(len(records), records[-1].hash), {}))


def test_spans_audited_apart_and_joined_report_what_one_pass_reports() -> None:
    records = _records(chained(small_journal() * 2))
    seals = [Seal(2, records[1].hash, "auditor"), Seal(5, b"\x01" * 32, "auditor"), Seal(99, b"\x02" * 32, "auditor")]
    edited = [r._replace(business_key="edited") if r.seq in (3, 6) else r for r in records]
    damaged = {
        "untouched": records,
        "edited": edited,
        "deleted": records[:2] + records[3:],
        "swapped": [records[0], records[2], records[1], *records[3:]],
    }
    for journal in damaged.values():
        one_pass = _audited(journal, seals, ())
        for count in (1, 2, 3):
            for cuts in itertools.combinations(range(1, len(journal)), count):
                assert _audited(journal, seals, cuts) == one_pass, cuts


# --- statement and receipt ------------------------------------------------------------------


def test_a_statement_has_opening_running_and_closing_balances() -> None:
    journal = small_journal()
    late = receive_payment(
        payment(minor=999, reference="ref-late"),
        cause_id=None,
        account=account(main=7_500),
        campaigns=(),
        at=AT + timedelta(days=9),
    )
    other = receive_payment(
        payment(BOB, 111, reference="b"),
        cause_id=None,
        account=account(BOB),
        campaigns=(),
        at=AT + timedelta(days=1),
    )
    entries = journal_entries([*journal, *other.transactions, *late.transactions])
    statement = build_statement(
        entries,
        account=main_account(ALICE),
        currency="RUB",
        period_start=AT + timedelta(hours=1),
        period_end=AT + timedelta(days=5),
    )
    assert statement.opening_balance == 10_000
    assert [(line.entry.amount, line.balance_after) for line in statement.lines] == [
        (-3_000, 7_000),
        (500, 7_500),
    ]
    assert (statement.total_in, statement.total_out, statement.closing_balance) == (
        500,
        3_000,
        7_500,
    )


def test_a_statement_books_a_charge_on_its_billing_day_however_late_it_was_posted() -> None:
    paid = receive_payment(payment(minor=10_000), cause_id=None, account=account(), campaigns=(), at=AT)
    day = date(2026, 3, 31)  # posted on 10 April by a catch-up
    late = ChargeApplied.of(ALICE, day, FeeKind.SUBSCRIPTION, "internet-100", PositiveMoney(minor=1_774), "day 31")
    charged = apply_charge(late, cause_id=None, account=paid.accounts[0], at=datetime(2026, 4, 10, 9, tzinfo=UTC))
    moscow = ZoneInfo("Europe/Moscow")
    march, april, may = (datetime(2026, month, 1, tzinfo=moscow) for month in (3, 4, 5))

    def of(start: datetime, end: datetime) -> Statement:
        return build_statement(journal_entries([*paid.transactions, *charged.transactions]),
                               account=main_account(ALICE), currency="RUB", period_start=start, period_end=end)

    in_march, in_april = of(march, april), of(april, may)
    assert [(line.entry.amount, line.charge and line.charge.billing_day) for line in in_march.lines] == [
        (10_000, None), (-1_774, day)]
    assert (in_march.closing_balance, in_april.opening_balance, in_april.lines) == (8_226, 8_226, ())


def test_a_receipt_confirms_one_payment() -> None:
    paid = receive_payment(
        payment(minor=10_000, reference="T-1:42", channel=PaymentChannel.TERMINAL),
        cause_id=None,
        account=account(main=250),
        campaigns=(CAMPAIGN,),
        at=AT,
    )
    original, bonus = paid.transactions
    opening = move(
        TransactionKind.PAYMENT,
        "shop:0",
        debit=cash_account(PaymentChannel.SHOP),
        credit=main_account(ALICE),
        amount=250,
        currency="RUB",
        cause_event_id=None,
        cause_type="PaymentReceived",
        occurred_at=AT - timedelta(days=1),
    )
    receipt = receipt_for(
        original, account_entries=journal_entries([opening, original, bonus]), bonus=bonus
    )
    assert (receipt.account_number, receipt.channel, receipt.reference) == (
        ALICE,
        PaymentChannel.TERMINAL,
        "T-1:42",
    )
    assert (receipt.amount, receipt.balance_after, receipt.bonus_accrued) == (10_000, 10_250, 2_000)
    with refused(ErrorCode.NOT_A_PAYMENT):
        receipt_for(bonus, account_entries=journal_entries([bonus]))
    with refused(ErrorCode.MISSING_ENTRIES):
        receipt_for(original, account_entries=journal_entries([opening]))


# --- the whole ledger as a property ---------------------------------------------------------


@dataclass
class InMemoryLedger:
    """What the service layer does around the builders, minus the database."""

    states: dict[str, AccountState]
    journal: list[Transaction] = field(default_factory=list)
    reversed_ids: set[UUID] = field(default_factory=set)
    suspense: dict[UUID, SuspenseItem] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        self.journal.extend(outcome.transactions)
        self.reversed_ids.update(t.reverses for t in outcome.transactions if t.reverses is not None)
        for state in outcome.accounts:
            self.states[state.number] = state
        if outcome.suspense is not None:
            self.suspense[outcome.suspense.transaction_id] = outcome.suspense

    def suspense_item_of(self, txn: Transaction) -> SuspenseItem | None:
        return self.suspense.get(txn.id) or next(
            (item for item in self.suspense.values() if item.settled_by == txn.id), None
        )


NUMBERS = (ALICE, BOB, CAROL, "999999999991")  # the last one has no account
amounts = st.integers(min_value=1, max_value=50_000)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("pay"), st.sampled_from(NUMBERS), amounts, st.sampled_from(list(PaymentChannel))
        ),
        st.tuples(st.just("charge"), st.sampled_from(NUMBERS[:3]), amounts, st.integers(0, 50_000)),
        st.tuples(st.just("transfer"), st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), amounts),
        st.tuples(st.just("redeem"), st.sampled_from(NUMBERS[:3]), amounts),
        st.tuples(st.just("resolve"), st.integers(0, 10**6), st.sampled_from(NUMBERS[:3])),
        st.tuples(st.just("reverse"), st.integers(0, 10**6)),
    ),
    min_size=5,
    max_size=60,
)


def run(ledger: InMemoryLedger, operation: tuple, step: int) -> None:
    at = AT + timedelta(minutes=step)
    match operation:
        case ("pay", number, minor, channel):
            ledger.record(
                receive_payment(
                    payment(number, minor, reference=f"r{step}", channel=channel),
                    cause_id=uuid4(),
                    account=ledger.states.get(number),
                    campaigns=(CAMPAIGN,),
                    at=at,
                )
            )
        case ("charge", number, minor, bonus_wish):
            state = ledger.states[number]
            ledger.record(
                apply_charge(
                    charge(number, minor, charge_id=f"c{step}"),
                    cause_id=uuid4(),
                    account=state,
                    at=at,
                    bonus_to_use=min(bonus_wish, max(state.bonus, 0), minor),
                )
            )
        case ("transfer", source, target, minor):
            request = transfer_request(source, target, minor)
            try:
                outcome = transfer_funds(
                    request,
                    cause_id=uuid4(),
                    source=ledger.states.get(source),
                    target=ledger.states.get(target),
                    at=at,
                )
            except RequestRefused:
                return
            ledger.record(outcome)
            assert spendable(ledger.states[source]) >= 0
        case ("redeem", number, minor):
            def redeem() -> Outcome:
                return redeem_bonus(redemption(number, minor), cause_id=uuid4(), account=ledger.states[number], at=at)

            if ledger.states[number].bonus < minor:
                assert redemption_refused(redeem) == ErrorCode.INSUFFICIENT_BONUS
            else:
                ledger.record(redeem())
        case ("resolve", pick, number):
            open_items = [i for i in ledger.suspense.values() if i.status is SuspenseStatus.OPEN]
            if open_items:
                item = open_items[pick % len(open_items)]
                ledger.record(
                    resolve_suspense(
                        item,
                        target=ledger.states[number],
                        target_number=number,
                        operator=OPERATOR,
                        command_id=uuid4(),
                        at=at,
                    )
                )
        case ("reverse", pick):
            candidates = [
                t
                for t in ledger.journal
                if t.kind is not TransactionKind.REVERSAL and t.id not in ledger.reversed_ids
            ]
            if candidates:
                original = candidates[pick % len(candidates)]
                try:
                    outcome = reverse(
                        original,
                        accounts=list(ledger.states.values()),
                        already_reversed=False,
                        operator=OPERATOR,
                        command_id=uuid4(),
                        at=at,
                        suspense=ledger.suspense_item_of(original),
                    )
                except CommandRefused as refusal:
                    # a parked payment already placed must have its resolution reversed first
                    assert refusal.code is ErrorCode.SUSPENSE_NOT_OPEN
                    return
                ledger.record(outcome)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_any_sequence_keeps_double_entry_and_the_projection_equal_to_the_replay(
    ops: list[tuple],
) -> None:
    ledger = InMemoryLedger(
        {
            ALICE: open_account(ALICE),
            BOB: replace(open_account(BOB), payment_type=PaymentType.CREDIT, credit_limit=20_000),
            CAROL: open_account(CAROL),
        }
    )
    for step, operation in enumerate(ops):
        run(ledger, operation, step)

    last_step: dict[str, int] = {}
    for replay_step in replay(journal_entries(ledger.journal)):
        last_step[replay_step.entry.account] = replay_step.after
    report = check_double_entry(
        (t.id, p.currency, p.amount) for t in ledger.journal for p in t.postings
    )
    assert report.balanced
    replayed = balances_of(ledger.journal)
    assert sum(replayed.values()) == 0
    assert last_step == replayed
    for number, state in ledger.states.items():
        assert state.main == replayed.get(main_account(number), 0)
        assert state.bonus == replayed.get(bonus_account(number), 0)
    open_suspense = sum(
        i.amount for i in ledger.suspense.values() if i.status is SuspenseStatus.OPEN
    )
    assert replayed.get(SUSPENSE, 0) == open_suspense
    assert len({t.id for t in ledger.journal}) == len(ledger.journal)
    assert verify_chain(chained(ledger.journal)) is None


def test_refusals_say_money_as_money() -> None:
    """People read these messages: amounts with their currency, never kopeck integers."""
    with pytest.raises(CommandRefused) as short:
        change_payment_type(account(main=-50_000), PaymentType.CREDIT, Money(minor=10_000), changed_by="cabinet")
    assert short.value.message == "limit 100.00 RUB does not cover the current debt of 500.00 RUB"
    with pytest.raises(CommandRefused) as bonus:
        apply_charge(charge(minor=5_000), cause_id=None, account=account(bonus=100), at=AT, bonus_to_use=101)
    assert bonus.value.message == f"account {ALICE} has 1.00 RUB in bonuses, not 1.01 RUB"
    with pytest.raises(CommandRefused) as part:
        apply_charge(charge(minor=5_000), cause_id=None, account=account(bonus=10_000), at=AT, bonus_to_use=5_001)
    assert part.value.message == "bonus_to_use must be within 0..50.00 RUB"


@pytest.mark.parametrize("minor", [0, 1, -1])
def test_the_ledgers_own_amounts_are_the_money_a_validated_model_would_be(minor: int) -> None:
    for currency in ("RUB", "EUR", "USD"):
        made = money(minor, currency)
        assert made == Money(minor=minor, currency=currency)
        assert made.model_dump_json() == Money(minor=minor, currency=currency).model_dump_json()
    with pytest.raises(ValueError, match="unknown currency 'XXX'"):
        money(minor, "XXX")


@pytest.mark.parametrize(("requested_by", "account", "self_service"), [
    ("cabinet:100000000008", "100000000008", True),
    ("operator:ivanova", "100000000008", False),
    ("cli:ivanova", "100000000016", False),
])
def test_a_subscriber_asks_for_their_own_account_anyone_else_as_their_credentials_say(
        requested_by: str, account: str, self_service: bool) -> None:
    assert check_requester(requested_by, account) is self_service


@pytest.mark.parametrize(("requested_by", "code"), [
    ("cabinet:100000000016", ErrorCode.NOT_OWN_ACCOUNT),
    ("cabinet:", ErrorCode.INVALID_REQUESTER),
    ("cabinet", ErrorCode.INVALID_REQUESTER),
    ("cabinet:100000000009", ErrorCode.INVALID_REQUESTER),  # a wrong check digit
    ("Cabinet:100000000008", ErrorCode.INVALID_REQUESTER),  # a variant never passes for an operator
    (" cabinet:100000000016", ErrorCode.INVALID_REQUESTER),
])
def test_a_subscriber_request_for_another_account_or_none_is_refused(requested_by: str, code: ErrorCode) -> None:
    with pytest.raises(CommandRefused) as refused:
        check_requester(requested_by, "100000000008")
    assert (refused.value.code, refused.value.field) == (code, "requested_by")


# --- account versions (issue 26: views that never go back) -------------------------------------


def test_every_announced_change_of_an_account_carries_its_next_version() -> None:
    """A payment with a campaign bonus is two transactions on the account: each BalanceChanged
    carries a version one above the last; a payment-type change counts as a change too."""
    start = account(main=-50, version=41)
    paid = receive_payment(payment(minor=25_050), cause_id=uuid4(), account=start, campaigns=(CAMPAIGN,), at=AT)
    versions = [event.payload.account_version for event in paid.events if isinstance(event.payload, BalanceChanged)]
    assert versions == [42, 43]
    (after,) = paid.accounts
    assert after.version == 43
    changed = change_payment_type(after, PaymentType.CREDIT, Money(minor=10_000), changed_by="operator:x")
    (event,) = changed.events
    assert event.payload.account_version == 44 and changed.accounts[0].version == 44
