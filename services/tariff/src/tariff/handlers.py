"""What the tariff service takes from other services' topics.

- ``billing.identity`` SubscriberRegistered: the account is registered here with its region (no
  plan yet). An unknown region is refused (dead letter). A second registration of an account
  already known changes nothing.
- ``billing.ledger`` BalanceChanged: the account's balance, payment type and credit limit are
  kept, and the charges it settles are no longer counted as on their way; the debt rule of the
  domain, applied to the expected balance, blocks (AccountBlocked, reason debt) or unblocks
  (AccountUnblocked, reason debt) when the verdict changes. Only a BalanceChanged newer than the
  balance held (its ``account_version``) is applied: an older one (a redelivery, a refill after
  the inbox forgot it) is counted (billing_view_events_not_newer_total), logged and changes
  nothing.
- ``billing.ledger`` PaymentTypeChanged: the payment type and credit limit (no money moved, so
  no BalanceChanged tells them), under the same rule of versions; the debt rule is applied at
  once (a debt within a new credit limit unblocks).

A BalanceChanged for an account not registered here (the ledger may hear of an account before
the tariff does; the topics are not ordered with each other) is NOT refused: its balance is kept
aside (``early_balances``, the newest wins) and applied when SubscriberRegistered arrives, which
then publishes AccountBlocked at once if that balance is a debt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.identity import SubscriberRegistered
from billing_contracts.catalog.ledger import BalanceChanged, PaymentTypeChanged
from billing_events.consumer import EventRouter, Handler, Rejected, route
from billing_contracts.envelope import Envelope, Event
from billing_events.logging import get_logger
from billing_contracts.money import CurrencyMismatch
from billing_events.unit_of_work import UnitOfWork
from billing_events.views import ignore_not_newer
from tariff import store
from tariff.context import TariffContext
from tariff.domain import AccountBalance, apply_balance, balance_changed, payment_type_changed, register

log = get_logger(__name__)


def _published(ctx: TariffContext, events: tuple[Event, ...], account: str, cause: Envelope[Any]) -> list[Envelope[Any]]:
    return [ctx.envelope(event, account=account, cause=cause) for event in events]


async def on_registered(ctx: TariffContext, uow: UnitOfWork,
                        envelope: Envelope[SubscriberRegistered]) -> list[Envelope[Any]]:
    event = envelope.payload
    account = event.account_number
    now = ctx.clock.now()
    state = register(account, event.region, ctx.catalog)  # UnknownRegion -> dead letter
    if await store.load(uow.conn, account) is not None:
        log.info("account already registered; registration ignored")
        return []
    events: tuple[Event, ...] = ()
    early = await store.take_early_balance(uow.conn, account)
    if early is not None:
        outcome = apply_balance(state, early, now)
        state, events = outcome.state, outcome.events
    await store.insert_subscription(uow.conn, state, now)
    log.info("subscriber registered", region=event.region, early_balance=early is not None)
    return _published(ctx, events, account, envelope)


async def _follow_ledger(
    ctx: TariffContext,
    conn: AsyncConnection,
    envelope: Envelope[Any],
    kept_aside: Callable[[AccountBalance | None], AccountBalance],
    decide: Callable[[Any, Any, datetime], Any],
) -> list[Envelope[Any]]:
    """A ledger fact about an account's money, applied when newer than the view held; for an
    account not registered here yet, ``kept_aside`` turns the balance kept so far into the
    one to keep (the newest wins)."""
    event = envelope.payload
    account = event.account_number
    now = ctx.clock.now()
    state = await store.load(conn, account, for_update=True)
    if state is None:
        kept = await store.early_balance(conn, account)
        if kept is not None and not kept.is_older_than(event):
            ignore_not_newer(ctx.producer, envelope, held=kept.version)
            return []
        await store.keep_early_balance(conn, account, kept_aside(kept), now)
        log.info("ledger fact of an account not registered here kept for its registration",
                 event_type=type(event).__name__)
        return []
    outcome = decide(state, event, now)
    if outcome is None:
        ignore_not_newer(ctx.producer, envelope, held=state.balance.version)
        return []
    await store.save(conn, outcome.state, now)
    if outcome.events:
        log.info("debt verdict changed", debt_blocked=outcome.state.debt_blocked)
    return _published(ctx, outcome.events, account, envelope)


async def on_balance(ctx: TariffContext, uow: UnitOfWork,
                     envelope: Envelope[BalanceChanged]) -> list[Envelope[Any]]:
    event = envelope.payload
    if event.main.currency != ctx.catalog.currency:
        raise Rejected(f"balance in {event.main.currency}, the tariff catalog charges in {ctx.catalog.currency}")
    return await _follow_ledger(
        ctx, uow.conn, envelope, lambda kept: AccountBalance.from_event(event, held=kept.version if kept else None),
        balance_changed)


async def on_payment_type(ctx: TariffContext, uow: UnitOfWork,
                          envelope: Envelope[PaymentTypeChanged]) -> list[Envelope[Any]]:
    return await _follow_ledger(
        ctx, uow.conn, envelope,
        lambda kept: (kept or AccountBalance.zero(ctx.catalog.currency)).with_payment_type(envelope.payload),
        payment_type_changed)


HANDLERS: Mapping[type[Event], Handler] = {
    SubscriberRegistered: on_registered, BalanceChanged: on_balance, PaymentTypeChanged: on_payment_type,
}


def router(ctx: TariffContext) -> EventRouter:
    return route(ctx, HANDLERS, rejects=(CurrencyMismatch,))  # a TariffError is a DomainError: dead-lettered
