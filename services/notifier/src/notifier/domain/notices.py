"""Which events become which messages, for whom, by which channel, and with what in them.

Decided without I/O: the service layer loads the profile and the account's alarm, calls
:func:`decide`, stores the intents it returns, and renders each at send time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from billing_contracts.catalog.identity import ContactChanged, ContactCodeIssued, LoginLocked, PasswordIssued
from billing_contracts.catalog.ledger import BalanceChanged
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    SubscriptionClosed,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_contracts.envelope import Event
from billing_contracts.money import Money

from notifier.domain.alarm import LowBalanceAlarm, spendable
from notifier.domain.errors import ErrorCode, NotifierError
from notifier.domain.ports import Unsealer
from notifier.domain.profile import Destination, IssuedSecret, SubscriberProfile
from notifier.domain.templates import PASSWORD_TEMPLATES, TemplateKey


@dataclass(frozen=True)
class MessageIntent:
    """One message to write: rendered and sent by the service layer."""

    template: TemplateKey
    language: str
    channel: DeliveryChannel
    destination: Destination
    variables: Mapping[str, Any] = field(repr=False)  # may hold a secret

    @property
    def contains_secret(self) -> bool:
        return self.template.carries_secret


@dataclass(frozen=True)
class NoticeContext:
    """What deciding needs besides the event and the profile."""

    occurred_at: datetime
    low_balance_threshold: Money | None = None
    """In the account's currency; needed for a balance change only."""
    low_balance_alarm: LowBalanceAlarm | None = None
    """The account's alarm as last kept; None for an account whose balance was never seen."""


@dataclass(frozen=True)
class Decision:
    intents: tuple[MessageIntent, ...]
    low_balance_alarm: LowBalanceAlarm | None
    """The alarm to keep for the account (unchanged unless the event moved the balance)."""
    not_newer: bool = False
    """The event is a BalanceChanged no newer than the balance the alarm observed (a redelivery,
    a refill): nothing is told, nothing kept."""


def decide(
    payload: Event, profile: SubscriberProfile, context: NoticeContext, opener: Unsealer
) -> Decision:
    """The messages one event must produce for its subscriber; other events produce none.
    Notices the subscriber turned off are not written (the alarm still follows the balance)."""
    if isinstance(payload, BalanceChanged):
        decision = _balance_changed(payload, profile, context)
    else:
        decision = Decision(_stateless_intents(payload, profile, context, opener), context.low_balance_alarm)
    wanted = tuple(intent for intent in decision.intents if intent.template.notice_kind not in profile.notices_off)
    return replace(decision, intents=wanted)


def _stateless_intents(
    payload: Event, profile: SubscriberProfile, context: NoticeContext, opener: Unsealer
) -> tuple[MessageIntent, ...]:
    match payload:
        case PasswordIssued():
            secret = opener.secret(payload.sealed_secret)
            return (password_notice(payload, secret, profile, context.occurred_at),)
        # A voluntary block also publishes AccountBlocked/AccountUnblocked(voluntary); its own
        # events say more (price, last day, ended early), so only they are told.
        case AccountBlocked(reason=BlockReason.DEBT):
            return (notice(profile, TemplateKey.ACCOUNT_BLOCKED_FOR_DEBT),)
        case AccountUnblocked(reason=BlockReason.DEBT):
            return (notice(profile, TemplateKey.ACCOUNT_UNBLOCKED),)
        case VoluntaryBlockStarted():
            return (
                notice(
                    profile,
                    TemplateKey.VOLUNTARY_BLOCK_STARTED,
                    last_day=payload.last_day,
                    days=payload.days,
                    price=payload.price,
                ),
            )
        case VoluntaryBlockEnded():
            return (notice(profile, TemplateKey.VOLUNTARY_BLOCK_ENDED, early=payload.early),)
        case TariffChanged():
            return (
                notice(
                    profile,
                    TemplateKey.TARIFF_CHANGED,
                    plan=payload.plan,
                    monthly_price=payload.monthly_price,
                    effective_from=payload.effective_from,
                ),
            )
        case LoginLocked():
            return (notice(profile, TemplateKey.LOGIN_LOCKED, until=payload.locked_until),)
        case ContactCodeIssued():
            secret = opener.secret(payload.sealed_secret)
            return (_secret_notice(TemplateKey.CONTACT_CODE, payload.account_number, payload.channel,
                                   Destination(secret.destination, payload.masked_destination), secret,
                                   profile, payload.expires_at - context.occurred_at),)
        case ContactChanged():
            return (contact_changed_notice(payload, profile),)
        case _:
            return ()


def _balance_changed(
    change: BalanceChanged, profile: SubscriberProfile, context: NoticeContext
) -> Decision:
    threshold = context.low_balance_threshold
    if threshold is None:
        raise NotifierError(
            ErrorCode.NO_LOW_BALANCE_THRESHOLD, "a balance change is decided against a threshold"
        )
    alarm = context.low_balance_alarm
    if alarm is not None and not alarm.is_older_than(change):
        return Decision((), alarm, not_newer=True)
    if alarm is None:
        alarm = LowBalanceAlarm.before(change, threshold)
    alarm, tell_low = alarm.observe(spendable(change), threshold, version=change.account_version)
    intents: list[MessageIntent] = []
    if change.credited_payment:
        intents.append(
            notice(
                profile, TemplateKey.PAYMENT_CREDITED, amount=change.delta_main, balance=change.main
            )
        )
    if tell_low and change.cause_type != SubscriptionClosed.event_type:  # the closure's settlement: not low
        intents.append(
            notice(profile, TemplateKey.BALANCE_LOW, balance=change.main, threshold=threshold)
        )
    return Decision(tuple(intents), alarm)


def notice(profile: SubscriberProfile, template: TemplateKey, **variables: Any) -> MessageIntent:
    """A message without secrets, sent the way the subscriber gets notices."""
    return MessageIntent(
        template=template,
        language=profile.language,
        channel=profile.notify_by,
        destination=profile.notice_destination,
        variables={"account": profile.account_number, **variables},
    )


def password_notice(
    issued: PasswordIssued, secret: IssuedSecret, profile: SubscriberProfile, issued_at: datetime
) -> MessageIntent:
    """The secret goes where identity sealed it to, by the channel identity chose."""
    valid_for = None if issued.expires_at is None else issued.expires_at - issued_at
    return _secret_notice(PASSWORD_TEMPLATES[issued.purpose], issued.account_number, issued.channel,
                          Destination(secret.destination, issued.masked_destination), secret, profile, valid_for)


def _secret_notice(
    template: TemplateKey, account: str, channel: str, destination: Destination, secret: IssuedSecret,
    profile: SubscriberProfile, valid_for: timedelta | None,
) -> MessageIntent:
    variables: dict[str, Any] = {"account": account, "secret": secret.secret}
    if valid_for is not None:
        variables["valid_minutes"] = _whole_minutes(valid_for)
    return MessageIntent(template=template, language=profile.language, channel=DeliveryChannel(channel),
                         destination=destination, variables=variables)


def contact_changed_notice(changed: ContactChanged, previous: SubscriberProfile) -> MessageIntent:
    """A security notice to the contact that was replaced (the profile before the change): if
    it was not the subscriber, they hear of it where they still can. The delivery keeps that
    contact (the profile has the new one by the time it is sent)."""
    if changed.changed == "email" and previous.email is not None:
        channel, destination, new = DeliveryChannel.EMAIL, previous.email, changed.masked_email
    else:
        channel, destination = DeliveryChannel.SMS, previous.phone
        new = changed.masked_phone if changed.changed == "phone" else changed.masked_email
    return MessageIntent(template=TemplateKey.CONTACT_CHANGED, language=previous.language, channel=channel,
                         destination=destination,
                         variables={"account": changed.account_number, "changed": changed.changed, "new": new})


def _whole_minutes(period: timedelta) -> int:
    # Rounded so a code issued a few milliseconds after the expiry was computed still says 15.
    return max(0, round(period.total_seconds() / 60))
