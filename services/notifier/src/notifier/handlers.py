"""Events in, deliveries out: what the notifier does with billing.identity, .ledger and .tariff.

SubscriberRegistered keeps the profile (the contact stays sealed in the database);
NoticePreferencesChanged the notices the subscriber turned off (the newest choice wins);
LanguageChanged the language messages are written in; SubscriptionClosed (tariff) and AccountClosed
(ledger) that the account is closed: nothing more is told about it. Every other
routed event is decided by the domain against the profile, and each message it calls for
becomes a ``pending`` delivery row in the same transaction as the inbox claim: a redelivered
event is absorbed by the inbox, and the unique (event, template, channel) key guards the rest.
A BalanceChanged no newer than the balance the account's low-balance alarm observed (its
``account_version``) is counted, logged and decides nothing: once the inbox has forgotten an
old one (its retention), it must not re-arm the alarm nor tell of a low balance again.

An event about an account without a profile is PARKED (kept in ``parked_events``, counted and
logged) and decided when SubscriberRegistered arrives: the three topics are consumed in
parallel, so a ledger or tariff event can overtake the registration. Nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing_contracts.catalog.identity import (
    ContactChanged,
    ContactCodeIssued,
    LanguageChanged,
    LoginLocked,
    NoticePreferencesChanged,
    PasswordIssued,
    SubscriberRegistered,
)
from billing_contracts.catalog.ledger import AccountClosed, BalanceChanged
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    SubscriptionClosed,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_events.consumer import EventRouter, Handler, route
from billing_contracts.envelope import Envelope, Event, decode
from billing_events.logging import get_logger
from billing_events.unit_of_work import UnitOfWork
from billing_events.views import ignore_not_newer
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier import store
from notifier.domain import (
    ErrorCode,
    NoticeContext,
    NotifierError,
    SubscriberProfile,
    decide,
    profile_from_registration,
)
from notifier.context import NotifierContext

log = get_logger(__name__)

PARKED = Counter("notifier_events_parked_total", "Events waiting for their subscriber's profile", ["event_type"])
INTENDED = Counter("notifier_messages_intended_total", "Messages the events called for", ["template"])

NOTICE_EVENTS = (
    PasswordIssued, ContactCodeIssued, LoginLocked, BalanceChanged, AccountBlocked, AccountUnblocked,
    VoluntaryBlockStarted, VoluntaryBlockEnded, TariffChanged,
)


async def on_registered(ctx: NotifierContext, uow: UnitOfWork,
                        envelope: Envelope[SubscriberRegistered]) -> list[Envelope[Any]]:
    registered = envelope.payload
    profile = profile_from_registration(registered, ctx.opener)  # proves the seal opens
    await store.save_subscriber(
        uow.conn,
        account_number=registered.account_number,
        language=ctx.language(registered.language),
        notify_by=profile.notify_by,
        masked_phone=registered.masked_phone,
        masked_email=registered.masked_email,
        sealed_contact=registered.sealed_contact,
        event_id=envelope.event_id,
        now=ctx.clock.now(),
    )
    log.info("notifier.subscriber_saved", account=registered.account_number,
             language=registered.language, masked_phone=registered.masked_phone)
    parked = await store.take_parked(uow.conn, registered.account_number)
    if parked:
        profile = await store.load_profile(uow.conn, registered.account_number, ctx.opener)
        assert profile is not None
        for event in parked:
            await _decide(ctx, uow.conn, decode(event.envelope), profile, told_though_closed=event.before_closure)
        log.info("notifier.parked_events_decided", account=registered.account_number, count=len(parked))
    return []


async def on_preferences(
    ctx: NotifierContext, uow: UnitOfWork, envelope: Envelope[NoticePreferencesChanged]
) -> list[Envelope[Any]]:
    """Kept apart from the profile, so a choice is kept whatever arrived before it."""
    changed = envelope.payload
    kept = await store.save_notice_preferences(uow.conn, changed.account_number, changed.turned_off,
                                               version=changed.preferences_version, now=ctx.clock.now())
    log.info("notifier.notice_preferences", account=changed.account_number, kept=kept,
             turned_off=[kind.value for kind in changed.turned_off])
    return []


async def on_language(ctx: NotifierContext, uow: UnitOfWork,
                      envelope: Envelope[LanguageChanged]) -> list[Envelope[Any]]:
    """Identity publishes it after the account's SubscriberRegistered, in the same partition."""
    changed = envelope.payload
    await store.set_language(uow.conn, changed.account_number, ctx.language(changed.language),
                             ctx.clock.now())
    return []


async def on_contact_changed(ctx: NotifierContext, uow: UnitOfWork,
                             envelope: Envelope[ContactChanged]) -> list[Envelope[Any]]:
    """The previous contact is told (decided against the profile before the change), then the
    new one is kept; a change no newer than the one kept (a redelivery) does neither."""
    changed = envelope.payload
    previous = await store.subscriber_row(uow.conn, changed.account_number)
    profile = await store.load_profile(uow.conn, changed.account_number, ctx.opener)
    if previous is None or profile is None or not await store.replace_contact(
            uow.conn, changed.account_number, masked_phone=changed.masked_phone, masked_email=changed.masked_email,
            sealed_contact=changed.sealed_contact, version=changed.contact_version, now=ctx.clock.now()):
        log.info("notifier.contact_change_ignored", account=changed.account_number, known=profile is not None)
        return []
    ctx.opener.contact(changed.sealed_contact)  # proves the seal opens before anything is sent
    await _decide(ctx, uow.conn, envelope, profile, sealed_contact=previous.sealed_contact)
    return []


async def on_closed(ctx: NotifierContext, uow: UnitOfWork,
                    envelope: Envelope[SubscriptionClosed | AccountClosed]) -> list[Envelope[Any]]:
    """The tariff's word comes before its own later events, the ledger's before its own (each
    topic keeps an account's order): whichever arrives first, nothing after it is told."""
    account = envelope.payload.account_number
    await store.mark_closed(uow.conn, account, closed_by=envelope.event_type, at=ctx.clock.now())
    log.info("notifier.account_closed", account=account, told_by=envelope.event_type)
    return []


async def on_event(ctx: NotifierContext, uow: UnitOfWork,
                   envelope: Envelope[Any]) -> list[Envelope[Any]]:
    account = envelope.payload.account_number
    profile = await store.load_profile(uow.conn, account, ctx.opener)
    if profile is None:
        await store.park(uow.conn, event_id=envelope.event_id, account_number=account,
                         event_type=envelope.event_type, envelope=envelope.to_bytes(), now=ctx.clock.now())
        PARKED.labels(envelope.event_type).inc()
        log.info("notifier.event_parked", account=account, reason="no subscriber profile yet")
        return []
    await _decide(ctx, uow.conn, envelope, profile)
    return []


async def _decide(ctx: NotifierContext, conn: AsyncConnection, envelope: Envelope[Any], profile: SubscriberProfile,
                  *, sealed_contact: str | None = None, told_though_closed: bool = False) -> None:
    """``sealed_contact``: where the notices go instead of the contact the profile has when
    they are sent (the contact a change replaced). ``told_though_closed``: the event arrived
    before the closure (it waited for the profile), so the account was open when it happened."""
    payload = envelope.payload
    if not told_though_closed and await store.is_closed(conn, profile.account_number):
        log.info("notifier.closed_account_not_told", account=profile.account_number,
                 event_type=envelope.event_type)
        return
    is_balance = isinstance(payload, BalanceChanged)
    notice_context = NoticeContext(occurred_at=envelope.occurred_at)
    if is_balance:
        notice_context = NoticeContext(
            occurred_at=envelope.occurred_at,
            low_balance_threshold=ctx.low_balance_threshold(payload.main.currency),
            low_balance_alarm=await store.load_alarm(conn, profile.account_number),
        )
    decision = decide(payload, profile, notice_context, ctx.opener)
    if decision.not_newer:
        held = notice_context.low_balance_alarm.balance_version if notice_context.low_balance_alarm else None
        ignore_not_newer("notifier", envelope, held=held)
        return
    if is_balance and decision.low_balance_alarm is not None:
        await store.save_alarm(conn, profile.account_number, decision.low_balance_alarm,
                               ctx.clock.now())
    sealed_secret = payload.sealed_secret if isinstance(payload, PasswordIssued | ContactCodeIssued) else None
    new = []
    for intent in decision.intents:
        variables = dict(intent.variables)
        if intent.contains_secret:
            # The clear secret is dropped here; the sealed text is opened again at send time.
            variables.pop("secret", None)
            if sealed_secret is None:
                raise NotifierError(ErrorCode.SECRET_WITHOUT_SEAL, f"{intent.template} needs a sealed secret")
        new.append(store.NewDelivery(
            account_number=profile.account_number,
            about_event_id=envelope.event_id,
            about_event_type=envelope.event_type,
            correlation_id=envelope.correlation_id,
            template=intent.template.value,
            language=intent.language,
            channel=DeliveryChannel(intent.channel),
            masked_destination=intent.destination.masked,
            variables=variables,
            sealed_secret=sealed_secret if intent.contains_secret else None,
            sealed_contact=None if intent.contains_secret else sealed_contact,
        ))
        INTENDED.labels(intent.template.value).inc()
    added = await store.add_deliveries(conn, new, ctx.clock.now())
    if new:
        log.info("notifier.deliveries_added", account=profile.account_number,
                 templates=[item.template for item in new], added=added)


HANDLERS: Mapping[type[Event], Handler] = {
    SubscriberRegistered: on_registered,
    NoticePreferencesChanged: on_preferences,
    LanguageChanged: on_language,
    ContactChanged: on_contact_changed,
    SubscriptionClosed: on_closed,
    AccountClosed: on_closed,
    **dict.fromkeys(NOTICE_EVENTS, on_event),
}


def router(ctx: NotifierContext) -> EventRouter:
    return route(ctx, HANDLERS)
