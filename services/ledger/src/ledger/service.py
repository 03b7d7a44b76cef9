"""The ledger's service layer: every command and every posting goes through here.

Events and commands take the same road: :func:`post` decides each one with the domain against
the accounts' current states (locked for the transaction), appends the resulting transactions
to the journal, moves the projections and returns the events to publish, all inside the
caller's database transaction. The consumer calls it for a batch of events; the command
functions below call it for one request, so the CLI, HTTP and the command topic give the same
answers and the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.ids import uuid7
from billing_events import metrics
from billing_contracts.catalog.identity import SubscriberRegistered
from billing_contracts.catalog.ledger import (
    BonusRedemptionRequested,
    PaymentTypeChangeRequested,
    TransactionKind,
    TransferRequested,
)
from billing_contracts.catalog.payments import PaymentChannel, PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, SubscriptionClosed
from billing_events.consumer import Verdicts
from billing_contracts.envelope import Envelope, Event, decode
from billing_events.logging import get_logger
from billing_events.service import CommandDecision
from billing_events.unit_of_work import UnitOfWork

from ledger import domain, integrity, store
from ledger.commands import ChangePaymentType, OpenCardPayment, RedeemBonus, ResolveSuspense, Reverse, Transfer
from ledger.context import LedgerContext
from ledger.domain import (
    AccountFact,
    AccountState,
    BonusCampaign,
    BusinessKey,
    CommandRefused,
    ErrorCode,
    IdempotencyRecord,
    KeyFamily,
    LedgerError,
    Outcome,
    OutgoingEvent,
    Transaction,
    is_account_number,
    transaction_id_for,
)
from ledger.domain import card
from ledger.domain.card import CardIntent

log = get_logger(__name__)
OPERATOR_COMMAND = "OperatorCommand"
"""Cause type of what an operator's correction journals (its transactions name their own)."""


POSTED_EVENTS: tuple[type[Event], ...] = (
    SubscriberRegistered,
    PaymentReceived,
    ChargeApplied,
    TransferRequested,
    BonusRedemptionRequested,
    PaymentTypeChangeRequested,
    SubscriptionClosed,
)


def _accounts_named(payload: Any) -> list[str]:
    if isinstance(payload, TransferRequested):
        candidates = [payload.from_account, payload.to_account]
    elif isinstance(payload, SubscriptionClosed):
        candidates = [payload.account_number, *filter(None, [payload.transfer_to])]
    else:
        candidates = [payload.account_number]
    return [number for number in candidates if is_account_number(number)]


_ANSWERED = frozenset({KeyFamily.TRANSFER, KeyFamily.BONUS_REDEMPTION, KeyFamily.PAYMENT_TYPE_CHANGE})
"""Requests a door waits on: their record keeps the answer, so a retry gets the same one."""


@dataclass
class _Batch:
    """The states and results of one database transaction's worth of requests."""

    states: dict[str, AccountState]
    records: dict[tuple[KeyFamily, str], IdempotencyRecord]
    """Every business key of the batch seen before, and those decided in it."""
    operator: domain.OperatorBalances
    """The operator accounts' balances (locked), as the batch's decisions leave them."""
    new_records: list[IdempotencyRecord] = field(default_factory=list)
    repeats: dict[UUID, IdempotencyRecord] = field(default_factory=dict)
    """Events whose request was decided before, by event id: the record is the answer."""
    opened: list[AccountState] = field(default_factory=list)
    journal: list[Transaction | AccountFact] = field(default_factory=list)
    """What the batch appends to the journal, in order: money transactions and account facts."""
    touched: dict[str, None] = field(default_factory=dict)
    suspense: list[domain.SuspenseItem] = field(default_factory=list)
    publish: list[Envelope[Any]] = field(default_factory=list)
    also_under: list[tuple[str, Envelope[Any]]] = field(default_factory=list)
    """Published events another number's history shows too: (that number, the event)."""
    rejected: list[tuple[Envelope[Any], LedgerError]] = field(default_factory=list)
    refused: dict[UUID, domain.RequestRefused] = field(default_factory=dict)
    """Requests refused with an announcement, by event id: published and recorded, then the answer."""


def _keyed_account(payload: Any) -> str:
    """The account whose partition the event must travel in: the one it moves money for."""
    return payload.from_account if isinstance(payload, TransferRequested) else payload.account_number


def _check_keyed(envelope: Envelope[Any]) -> None:
    if _keyed_account(envelope.payload) != envelope.account:
        # Keyed by one account but moving money for another: per-account order would not hold.
        raise CommandRefused(ErrorCode.INVALID_ACCOUNT_NUMBER,
                             f"the event is keyed by {envelope.account} but names {_keyed_account(envelope.payload)}",
                             field="account_number")


def _decide(ctx: LedgerContext, batch: _Batch, envelope: Envelope[Any], at: datetime) -> Outcome | None:
    payload, states, cause = envelope.payload, batch.states, envelope.event_id
    match payload:
        case SubscriberRegistered():
            if payload.account_number in states:
                return None
            state = domain.open_account(payload.account_number)
            batch.opened.append(state)
            return Outcome(accounts=(state,))
        case PaymentReceived():
            return domain.receive_payment(payload, cause_id=cause, account=states.get(payload.account_number),
                                          campaigns=ctx.campaigns, at=at, max_payment=ctx.max_payment)
        case ChargeApplied():
            account = states.get(payload.account_number)
            bonus = min(account.bonus, payload.amount.minor) if ctx.bonus_pays_charges and account else 0
            return domain.apply_charge(payload, cause_id=cause, account=account, at=at, bonus_to_use=max(bonus, 0))
        case TransferRequested():
            domain.check_requester(payload.requested_by, payload.from_account)
            domain.check_movement_limit(payload.amount, ctx.max_payment)
            return domain.transfer_funds(payload, cause_id=cause, source=states.get(payload.from_account),
                                         target=states.get(payload.to_account), at=at)
        case BonusRedemptionRequested():
            domain.check_movement_limit(payload.amount, ctx.max_payment)
            domain.check_reward(ctx.rewards, payload)
            return domain.redeem_bonus(payload, cause_id=cause, account=states.get(payload.account_number), at=at)
        case PaymentTypeChangeRequested():
            if domain.check_requester(payload.requested_by, payload.account_number):
                domain.check_self_service_limit(payload.credit_limit, ctx.self_service_credit_limit)
            account = states.get(payload.account_number)
            if account is None:
                raise CommandRefused(ErrorCode.UNKNOWN_ACCOUNT, f"no account {payload.account_number}",
                                     field="account_number")
            return domain.change_payment_type(account, payload.payment_type, payload.credit_limit,
                                              changed_by=payload.requested_by)
        case SubscriptionClosed():
            return domain.settle_and_close(
                payload, cause_id=cause, account=states.get(payload.account_number),
                target=states.get(payload.transfer_to) if payload.transfer_to else None, at=at)
    raise CommandRefused(ErrorCode.INVALID_PURPOSE, f"the ledger does not take {envelope.event_type}")


def _take(ctx: LedgerContext, batch: _Batch, outcome: Outcome, cause: Envelope[Any] | None,
          key: BusinessKey | None = None) -> None:
    operator = domain.operator_balances_after(batch.operator, outcome.transactions)  # refuses before any change
    batch.operator.update(operator)
    request = key.key if key else str(cause.event_id if cause else uuid7())
    at = outcome.transactions[0].occurred_at if outcome.transactions else ctx.clock.now()
    batch.journal.extend(domain.facts_of_change(
        batch.states, outcome.accounts, cause_event_id=cause.event_id if cause else None,
        cause_type=cause.event_type if cause else OPERATOR_COMMAND, at=at, request=request))
    batch.journal.extend(outcome.transactions)
    for state in outcome.accounts:
        batch.states[state.number] = state
        batch.touched[state.number] = None
    if outcome.suspense is not None:
        batch.suspense.append(outcome.suspense)
    published = [ctx.envelope(event.payload, account=event.key, cause=cause) for event in outcome.events]
    batch.publish.extend(published)
    batch.also_under.extend((event.also_under, envelope) for event, envelope in zip(outcome.events, published, strict=True)
                            if event.also_under is not None)
    if key is not None:
        answer = "\n".join(e.model_dump_json() for e in published) if key.family in _ANSWERED else None
        record = domain.record_of(key, outcome, cause.event_id if cause else None, answer=answer)
        batch.records[(key.family, key.key)] = record
        batch.new_records.append(record)


def _repeat(ctx: LedgerContext, batch: _Batch, envelope: Envelope[Any], key: BusinessKey | None) -> bool:
    """Was this request decided before? Raises on a repeat with other content."""
    if key is None:
        return False
    record = domain.record_for(batch.records, key)
    try:
        if not domain.is_repeat(record, key):
            return False
    except LedgerError:
        metrics.CONFLICTING_DUPLICATES.labels(ctx.producer, key.family.value).inc()
        raise
    assert record is not None
    batch.repeats[envelope.event_id] = record
    return True


async def _load(conn: AsyncConnection, payloads: Sequence[Any], extra_numbers: Sequence[str] = (),
                extra_keys: Sequence[BusinessKey] = ()) -> _Batch:
    numbers = {n for p in payloads for n in _accounts_named(p)} | set(extra_numbers)
    states = await store.lock_accounts(conn, numbers)
    operator = await store.lock_operator_balances(conn)
    keys = [*filter(None, map(domain.business_key, payloads)), *extra_keys]
    looked_up = {(k.family, name) for k in keys for name in (k.key, k.unscoped) if name is not None}
    return _Batch(states, await store.idempotency_records(conn, looked_up), operator)


async def _save(ctx: LedgerContext, uow: UnitOfWork, batch: _Batch) -> None:
    """Write what the batch decided; its events are the caller's to stage (a command's after the command)."""
    conn, now = uow.conn, ctx.clock.now()
    await store.open_accounts(conn, batch.opened, now)
    await store.append(conn, batch.journal, now)
    await store.save_accounts(conn, [batch.states[n] for n in batch.touched])
    await store.save_suspense(conn, batch.suspense)
    await store.save_records(conn, batch.new_records, now)
    uow.copy_to_history(batch.also_under)


async def _post(ctx: LedgerContext, uow: UnitOfWork, envelopes: Sequence[Envelope[Any]]) -> _Batch:
    batch = await _load(uow.conn, [e.payload for e in envelopes])
    at = ctx.clock.now()
    for envelope in envelopes:
        key = domain.business_key(envelope.payload)
        try:
            _check_keyed(envelope)
            if _repeat(ctx, batch, envelope, key):
                continue
            try:
                outcome = _decide(ctx, batch, envelope, at)
            except domain.RequestRefused as refused:
                batch.refused[envelope.event_id] = refused
                outcome = Outcome(events=(refused.announcement,))
            if outcome is not None:
                _take(ctx, batch, outcome, envelope, key)
        except LedgerError as exc:
            batch.rejected.append((envelope, exc))
    await _save(ctx, uow, batch)
    if batch.repeats:
        log.info("requests decided before: nothing happens again", count=len(batch.repeats))
    return batch


async def post(ctx: LedgerContext, uow: UnitOfWork, envelopes: Sequence[Envelope[Any]]) -> Verdicts:
    """Post a batch of events in the caller's unit of work, staging what they publish; refused
    ones come back as rejected."""
    batch = await _post(ctx, uow, envelopes)
    uow.stage(batch.publish)
    return Verdicts(rejected=[(envelope, exc.refusal()) for envelope, exc in batch.rejected],
                        taken_before=set(batch.repeats))


# --- commands -------------------------------------------------------------------------------


async def submit(ctx: LedgerContext, request: Event, *, account: str) -> list[Envelope[Any]]:
    """Run one request (transfer, bonus redemption, payment type) now, as if it came from the
    command topic: the answer is the events it produced; a refusal raises after its announcement
    (TransferRejected, BonusRedemptionRejected) is committed. The request itself is published to the
    command topic for the record, already marked as processed in the ledger's inbox."""
    return list(await ctx.submit(request, account=account, decide=partial(_decide_request, ctx)))


async def _decide_request(ctx: LedgerContext, uow: UnitOfWork, envelope: Envelope[Any]) -> CommandDecision:
    batch = await _post(ctx, uow, [envelope])
    if batch.rejected:
        raise batch.rejected[0][1]
    if (repeat := batch.repeats.get(envelope.event_id)) is not None:
        answer = _answer(repeat)
        return CommandDecision(answer, repeat=True,
                        refusal=domain.refusal_among(OutgoingEvent(e.account, e.payload) for e in answer))
    return CommandDecision(batch.publish, refusal=batch.refused.get(envelope.event_id))


def _answer(record: IdempotencyRecord) -> list[Envelope[Any]]:
    """The events a request produced when it was first decided: a retry's answer."""
    return [decode(line) for line in (record.answer or "").splitlines()]


async def transfer(ctx: LedgerContext, command: Transfer) -> list[Envelope[Any]]:
    request = TransferRequested(request_id=command.request_id or uuid7(), from_account=command.from_account,
                                to_account=command.to_account, amount=command.amount,
                                requested_by=command.requested_by)
    return await submit(ctx, request, account=command.from_account)


async def redeem_bonus(ctx: LedgerContext, command: RedeemBonus) -> list[Envelope[Any]]:
    """BonusRedeemed (an item held to its price); a refusal raises :class:`domain.RequestRefused`
    once its BonusRedemptionRejected is committed."""
    request = BonusRedemptionRequested(request_id=command.request_id or uuid7(),
                                       account_number=command.account_number, amount=command.amount,
                                       purpose=command.purpose, description=command.description,
                                       item=command.item)
    return await submit(ctx, request, account=command.account_number)


async def change_payment_type(ctx: LedgerContext, command: ChangePaymentType) -> list[Envelope[Any]]:
    """A subscriber's own request (``requested_by`` ``cabinet:<number>``) has a ceiling on the limit."""
    request = PaymentTypeChangeRequested(request_id=uuid7(), account_number=command.account_number,
                                         payment_type=command.payment_type, credit_limit=command.credit_limit,
                                         requested_by=command.requested_by)
    return await submit(ctx, request, account=command.account_number)


async def _operator_command(ctx: LedgerContext, decide: Callable[[AsyncConnection], Any]) -> list[Envelope[Any]]:
    """An operator's correction: decided and posted in one unit of work, events staged."""

    async def work(uow: UnitOfWork) -> list[Envelope[Any]]:
        batch, outcome, key = await decide(uow.conn)
        _take(ctx, batch, outcome, None, key)
        await _save(ctx, uow, batch)
        uow.stage(batch.publish)
        return batch.publish

    return await ctx.unit_of_work(work)


async def resolve_suspense(ctx: LedgerContext, command: ResolveSuspense) -> list[Envelope[Any]]:
    """Operations move a parked payment to the account it was meant for."""
    target = command.target_account

    async def decide(conn: AsyncConnection) -> tuple[_Batch, Outcome, BusinessKey]:
        item = await store.suspense_item(conn, command.parked_transaction_id, lock=True)
        if item is None:
            raise CommandRefused(ErrorCode.SUSPENSE_NOT_OPEN, f"no parked payment {command.parked_transaction_id}")
        placed_before = await store.count_records(conn, KeyFamily.SUSPENSE_PLACEMENT, f"{item.transaction_id}#")
        key = domain.placement_key(item.transaction_id, placed_before, target)
        batch = await _load(conn, [], [target], [key])
        outcome = domain.resolve_suspense(item, target=batch.states.get(target), target_number=target,
                                          operator=command.operator, command_id=uuid7(), at=ctx.clock.now())
        return batch, outcome, key

    return await _operator_command(ctx, decide)


async def reverse(ctx: LedgerContext, command: Reverse) -> list[Envelope[Any]]:
    """A correction: a new transaction with the negated postings of the command's transaction."""

    async def decide(conn: AsyncConnection) -> tuple[_Batch, Outcome, None]:
        original = await store.transaction(conn, command.transaction_id)
        if original is None:
            raise CommandRefused(ErrorCode.UNKNOWN_ACCOUNT, f"no transaction {command.transaction_id}")
        numbers = [n for n in (domain.subscriber_number(p.account) for p in original.postings) if n]
        batch = await _load(conn, [], numbers)
        item = await store.suspense_item(conn, original.id, lock=True) or await store.suspense_settled_by(conn, original.id)
        already = bool(await store.reversed_ids(conn, [original.id]))
        outcome = domain.reverse(original, accounts=[batch.states[n] for n in dict.fromkeys(numbers)],
                                 already_reversed=already, operator=command.operator, command_id=uuid7(),
                                 at=ctx.clock.now(), suspense=item)
        return batch, outcome, None

    return await _operator_command(ctx, decide)


# --- card payments from the cabinet ----------------------------------------------------------


async def open_card_payment(ctx: LedgerContext, command: OpenCardPayment) -> CardIntent:
    """An intent to pay by card into the account (the caller's token names it)."""
    number = command.account_number

    async def work(uow: UnitOfWork) -> CardIntent:
        intent = card.open_intent(await store.account(uow.conn, number), number, command.amount, intent_id=uuid7(),
                                  now=ctx.clock.now(), max_payment=ctx.max_payment)
        await store.insert_intent(uow.conn, intent)
        return intent

    return await ctx.unit_of_work(work)


async def card_payment(ctx: LedgerContext, intent_id: UUID, *, of_account: str | None = None) -> CardIntent:
    """A card payment intent; with ``of_account``, only one of that account's (another account's
    is as unknown as none, so a cabinet cannot probe for them)."""
    async with ctx.db.connect() as conn:
        intent = await store.card_intent(conn, intent_id)
    if intent is None or of_account not in (None, intent.account):
        raise CommandRefused(ErrorCode.UNKNOWN_INTENT, "no such card payment intent", field="intent_id")
    return intent


async def settle_card_payment(ctx: LedgerContext, callback: card.Callback) -> card.Settlement:
    """The acquirer's verdict on an intent. An approval marks the intent paid and stages its
    PaymentReceived (channel card, the acquirer's reference) in the same transaction: once this
    returns, the payment is durable and the relay publishes it, and the ledger then takes it from
    the payments topic as it takes any channel's. A repeat stages nothing."""
    card.check_fresh(callback, ctx.clock.now(), ctx.card_callback_window)

    async def work(uow: UnitOfWork) -> card.Settlement:
        now = ctx.clock.now()
        settlement = card.settle(await store.card_intent(uow.conn, callback.intent_id, for_update=True), callback, now)
        if settlement.repeat:
            return settlement
        intent = settlement.intent
        await store.settle_intent(uow.conn, intent)
        if settlement.pays:
            payment = PaymentReceived(account_number=intent.account, channel=PaymentChannel.CARD,
                                      reference=callback.reference, amount=intent.amount, received_at=now)
            uow.stage([ctx.envelope(payment, account=intent.account)])
        return settlement

    return await ctx.unit_of_work(work)


# --- reads ----------------------------------------------------------------------------------


def reward(ctx: LedgerContext, code: str) -> domain.Reward:
    found = next((reward for reward in ctx.rewards if reward.code == code), None)
    if found is None:
        raise CommandRefused(ErrorCode.UNKNOWN_REWARD, f"no item {code!r} in the rewards catalogue", field="item")
    return found


def campaigns(ctx: LedgerContext) -> tuple[BonusCampaign, ...]:
    """The bonus campaigns in force now or announced for later (those that ended are left out)."""
    now = ctx.clock.now()
    return tuple(campaign for campaign in ctx.campaigns if campaign.valid_to > now)


async def balance(ctx: LedgerContext, number: str) -> AccountState:
    async with ctx.db.connect() as conn:
        state = await store.account(conn, number)
    if state is None:
        raise CommandRefused(ErrorCode.UNKNOWN_ACCOUNT, f"no account {number}", field="account_number")
    return state


async def statement(ctx: LedgerContext, number: str, period_start: datetime, period_end: datetime) -> domain.Statement:
    state = await balance(ctx, number)
    async with ctx.db.connect() as conn:
        entries = await store.entries(conn, [state.main_code])
    return domain.build_statement(entries, account=state.main_code, currency=state.currency,
                                  period_start=period_start, period_end=period_end)


async def bonus_history(ctx: LedgerContext, number: str) -> domain.BonusHistory:
    """How the account's bonuses were earned and spent, from its journal."""
    state = await balance(ctx, number)
    async with ctx.db.connect() as conn:
        entries = await store.entries(conn, [state.main_code, state.bonus_code])
        asked = {entry.transaction_id for entry in entries
                 if entry.kind is TransactionKind.BONUS_REDEMPTION and not domain.is_charge_key(entry.business_key)}
        redemptions = [await store.transaction(conn, txn_id) for txn_id in asked]
    purposes = {txn.id: purpose for txn in redemptions
                if txn is not None and (purpose := domain.redemption_purpose(txn)) is not None}
    return domain.build_bonus_history(entries, number=number, currency=state.currency, campaigns=ctx.campaigns,
                                      purposes=purposes)


async def account_receipt(ctx: LedgerContext, number: str, transaction_id: UUID) -> domain.Receipt:
    """The receipt of one payment credited to ``number``: another account's payment is as
    unknown here as a payment that never was."""
    await balance(ctx, number)
    try:
        found = await receipt(ctx, transaction_id)
    except CommandRefused as exc:
        if exc.code is not ErrorCode.NOT_A_PAYMENT:
            raise
        found = None
    if found is None or found.account_number != number:
        raise CommandRefused(ErrorCode.UNKNOWN_TRANSACTION, f"no payment {transaction_id} to account {number}")
    return found


async def receipt(ctx: LedgerContext, transaction_id: UUID) -> domain.Receipt:
    async with ctx.db.connect() as conn:
        payment = await store.transaction(conn, transaction_id)
        if payment is None:
            raise CommandRefused(ErrorCode.UNKNOWN_TRANSACTION, f"no transaction {transaction_id}")
        number = next((n for n in (domain.subscriber_number(p.account) for p in payment.postings) if n), None)
        if number is None:
            raise CommandRefused(ErrorCode.NOT_A_PAYMENT, f"{transaction_id} credited no subscriber")
        entries = await store.entries(conn, [domain.main_account(number)])
        bonus = await store.transaction(conn, transaction_id_for(TransactionKind.BONUS_ACCRUAL, payment.business_key))
        placed = await store.suspense_settled_by(conn, transaction_id)  # a parked payment operations placed
    return domain.receipt_for(payment, account_entries=entries, bonus=bonus, placed=placed)


@dataclass(frozen=True)
class AccountReplay:
    number: str
    steps: list[domain.ReplayStep]
    replayed_main: int
    replayed_bonus: int
    stored: AccountState

    @property
    def matches(self) -> bool:
        return (self.replayed_main, self.replayed_bonus) == (self.stored.main, self.stored.bonus)


async def replay_account(ctx: LedgerContext, number: str, as_of: datetime | None = None) -> AccountReplay:
    """Rebuild one account from the journal, step by step, and compare with the projection."""
    state = await balance(ctx, number)
    async with ctx.db.connect() as conn:
        entries = await store.entries(conn, [state.main_code, state.bonus_code], as_of=as_of)
    steps = list(domain.replay(entries))
    last = {step.entry.account: step.after for step in steps}
    return AccountReplay(number, steps, last.get(state.main_code, 0), last.get(state.bonus_code, 0), state)


# The integrity commands (audit, rebuild and repair, seals) live in ledger.integrity.
verify = integrity.verify
rebuild = integrity.rebuild
