"""What the notifier tells subscribers, decided without I/O.

Which events become which messages, the "balance running low" alarm (told once per fall), the
subscriber's profile (language and where to write), opening the sealed contact details and
secrets, and how long to wait before asking a failing gateway again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from billing_events.catalog.identity import (
    LoginLocked,
    PasswordIssued,
    PasswordPurpose,
    SubscriberRegistered,
)
from billing_events.catalog.ledger import BalanceChanged, PaymentType
from billing_events.catalog.notifier import DeliveryChannel
from billing_events.catalog.tariff import (
    AccountBlocked,
    AccountUnblocked,
    BlockReason,
    TariffChanged,
    VoluntaryBlockEnded,
    VoluntaryBlockStarted,
)
from billing_events import sealing
from billing_events.envelope import Event
from billing_events.money import CurrencyMismatch, Money
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey

PAYMENT_CAUSE = "PaymentReceived"


class NotifierError(Exception):
    """A notifier rule refused something; ``code`` is for machines, the message for people."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class TemplateKey(StrEnum):
    PAYMENT_CREDITED = "payment_credited"
    BALANCE_LOW = "balance_low"
    ACCOUNT_BLOCKED_FOR_DEBT = "account_blocked_debt"
    ACCOUNT_UNBLOCKED = "account_unblocked"
    VOLUNTARY_BLOCK_STARTED = "voluntary_block_started"
    VOLUNTARY_BLOCK_ENDED = "voluntary_block_ended"
    TARIFF_CHANGED = "tariff_changed"
    LOGIN_LOCKED = "login_locked"
    PASSWORD_INITIAL = "password_initial"
    PASSWORD_SMS_REISSUE = "password_sms_reissue"
    PASSWORD_RESET_CODE = "password_reset_code"
    PASSWORD_SUPPORT_RECOVERY = "password_support_recovery"

    @property
    def carries_secret(self) -> bool:
        return self in PASSWORD_TEMPLATES.values()


PASSWORD_TEMPLATES: Mapping[PasswordPurpose, TemplateKey] = {
    PasswordPurpose.INITIAL: TemplateKey.PASSWORD_INITIAL,
    PasswordPurpose.SMS_REISSUE: TemplateKey.PASSWORD_SMS_REISSUE,
    PasswordPurpose.RESET_CODE: TemplateKey.PASSWORD_RESET_CODE,
    PasswordPurpose.SUPPORT_RECOVERY: TemplateKey.PASSWORD_SUPPORT_RECOVERY,
}


# --- where messages go ------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A phone number or e-mail address with its masked form.

    Printing it (in a log line, an exception, a repr) shows only the masked form.
    """

    address: str = field(repr=False)
    masked: str

    def __str__(self) -> str:
        return self.masked


@dataclass(frozen=True)
class Contact:
    """Clear contact details, as unsealed from SubscriberRegistered."""

    phone: str = field(repr=False)
    email: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IssuedSecret:
    """A password or one-time code and where it must go, as unsealed from PasswordIssued."""

    secret: str = field(repr=False)
    destination: str = field(repr=False)


@dataclass(frozen=True)
class SubscriberProfile:
    """The notifier's own copy of what it needs to write to a subscriber."""

    account_number: str
    language: str
    phone: Destination
    email: Destination | None = None
    notify_by: DeliveryChannel = DeliveryChannel.SMS

    def __post_init__(self) -> None:
        if self.notify_by is DeliveryChannel.EMAIL and self.email is None:
            raise NotifierError(
                "no_email", "notices by e-mail need an e-mail address", field="notify_by"
            )

    @property
    def notice_destination(self) -> Destination:
        if self.notify_by is DeliveryChannel.EMAIL:
            assert self.email is not None  # guaranteed by __post_init__
            return self.email
        return self.phone


class SealOpener:
    """Opens what identity sealed for the notifier's public key (libsodium sealed boxes), with the
    private key the sealed text names: the current one or, during a rotation, a previous one."""

    def __init__(self, private_keys: dict[str, PrivateKey]) -> None:
        self._keys = private_keys

    @classmethod
    def from_base64(cls, private_keys_b64: str) -> SealOpener:
        """Comma-separated base64 private keys."""
        return cls(sealing.private_keys(private_keys_b64))

    def contact(self, sealed: str) -> Contact:
        data = self._open(sealed, "sealed_contact")
        return Contact(phone=_text(data, "phone", "sealed_contact"), email=data.get("email"))

    def secret(self, sealed: str) -> IssuedSecret:
        data = self._open(sealed, "sealed_secret")
        return IssuedSecret(
            secret=_text(data, "secret", "sealed_secret"),
            destination=_text(data, "destination", "sealed_secret"),
        )

    def _open(self, sealed: str, field_name: str) -> dict[str, Any]:
        try:
            data = json.loads(sealing.open_box(self._keys, sealed))
        except (CryptoError, ValueError) as exc:
            # ValueError covers bad base64 and bad JSON; neither message holds the clear text.
            raise NotifierError(
                "unseal_failed", f"cannot open {field_name}: {type(exc).__name__}", field=field_name
            ) from None
        if not isinstance(data, dict):
            raise NotifierError(
                "unseal_failed", f"{field_name} is not a JSON object", field=field_name
            )
        return data


def _text(data: Mapping[str, Any], key: str, field_name: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise NotifierError("unseal_failed", f"{field_name} has no {key}", field=field_name)
    return value


def profile_from_registration(
    registered: SubscriberRegistered, opener: SealOpener
) -> SubscriberProfile:
    contact = opener.contact(registered.sealed_contact)
    email = None
    if contact.email is not None:
        if registered.masked_email is None:
            raise NotifierError(
                "unmasked_email",
                "sealed contact has an e-mail but the event no masked form",
                field="masked_email",
            )
        email = Destination(contact.email, registered.masked_email)
    return SubscriberProfile(
        account_number=registered.account_number,
        language=registered.language,
        phone=Destination(contact.phone, registered.masked_phone),
        email=email,
    )


# --- balance running low ----------------------------------------------------------------------


def spendable(change: BalanceChanged) -> Money:
    """What the subscriber can still spend before being blocked: a credit account may go
    below zero down to its credit limit, so the alarm watches the headroom, not the balance."""
    if change.payment_type is PaymentType.CREDIT:
        return change.main + change.credit_limit
    return change.main


@dataclass(frozen=True)
class LowBalanceAlarm:
    """Tells once per fall below the threshold; re-arms when the money is back above it."""

    armed: bool

    @classmethod
    def before(cls, change: BalanceChanged, threshold: Money) -> LowBalanceAlarm:
        """The alarm of an account never seen before, judged by its funds before ``change``."""
        funds_before = spendable(change) - change.delta_main
        return cls(armed=not _below(funds_before, threshold))

    def observe(self, funds: Money, threshold: Money) -> tuple[LowBalanceAlarm, bool]:
        """The next alarm state, and whether to tell the subscriber now."""
        below = _below(funds, threshold)
        return LowBalanceAlarm(armed=not below), self.armed and below


def _below(funds: Money, threshold: Money) -> bool:
    try:
        return funds < threshold
    except CurrencyMismatch:
        raise NotifierError(
            "currency_mismatch",
            f"low-balance threshold is in {threshold.currency}, the account in {funds.currency}",
            field="low_balance_threshold",
        ) from None


# --- which events become which messages -------------------------------------------------------


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
    low_balance_threshold: Money
    low_balance_alarm: LowBalanceAlarm | None = None
    """The account's alarm as last kept; None for an account whose balance was never seen."""


@dataclass(frozen=True)
class Decision:
    intents: tuple[MessageIntent, ...]
    low_balance_alarm: LowBalanceAlarm | None
    """The alarm to keep for the account (unchanged unless the event moved the balance)."""


def decide(
    payload: Event, profile: SubscriberProfile, context: NoticeContext, opener: SealOpener
) -> Decision:
    """The messages one event must produce for its subscriber; other events produce none."""
    if isinstance(payload, BalanceChanged):
        return _balance_changed(payload, profile, context)
    return Decision(
        _stateless_intents(payload, profile, context, opener), context.low_balance_alarm
    )


def _stateless_intents(
    payload: Event, profile: SubscriberProfile, context: NoticeContext, opener: SealOpener
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
        case _:
            return ()


def _balance_changed(
    change: BalanceChanged, profile: SubscriberProfile, context: NoticeContext
) -> Decision:
    threshold = context.low_balance_threshold
    alarm = context.low_balance_alarm
    if alarm is None:
        alarm = LowBalanceAlarm.before(change, threshold)
    alarm, tell_low = alarm.observe(spendable(change), threshold)
    intents: list[MessageIntent] = []
    if change.cause_type == PAYMENT_CAUSE and change.delta_main.minor > 0:
        intents.append(
            notice(
                profile, TemplateKey.PAYMENT_CREDITED, amount=change.delta_main, balance=change.main
            )
        )
    if tell_low:
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
    variables: dict[str, Any] = {"account": issued.account_number, "secret": secret.secret}
    if issued.expires_at is not None:
        variables["valid_minutes"] = _whole_minutes(issued.expires_at - issued_at)
    return MessageIntent(
        template=PASSWORD_TEMPLATES[issued.purpose],
        language=profile.language,
        channel=DeliveryChannel(issued.channel),
        destination=Destination(secret.destination, issued.masked_destination),
        variables=variables,
    )


def _whole_minutes(period: timedelta) -> int:
    # Rounded so a code issued a few milliseconds after the expiry was computed still says 15.
    return max(0, round(period.total_seconds() / 60))


# --- retrying a failing gateway ---------------------------------------------------------------


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: a try waits a random time up to a doubling ceiling,
    so gateways recovering from an outage are not hit by every notifier at the same moment."""

    max_attempts: int = 5
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise NotifierError("invalid_retry_policy", "at least one try", field="max_attempts")
        if self.base_delay <= timedelta(0):
            raise NotifierError(
                "invalid_retry_policy", "base delay must be positive", field="base_delay"
            )
        if self.max_delay < self.base_delay:
            raise NotifierError(
                "invalid_retry_policy",
                "max delay must not be below the base delay",
                field="max_delay",
            )

    def next_delay(self, attempt: int, rng: RandomSource) -> timedelta | None:
        """How long to wait after failed try ``attempt`` (counted from 1); None: it was the last."""
        if attempt < 1:
            raise ValueError(f"tries are counted from 1, got {attempt}")
        if attempt >= self.max_attempts:
            return None
        # The exponent is capped only so huge attempt numbers cannot overflow a float.
        ceiling = min(
            self.max_delay.total_seconds(),
            self.base_delay.total_seconds() * 2.0 ** min(attempt - 1, 64),
        )
        return timedelta(seconds=ceiling * rng.random())
