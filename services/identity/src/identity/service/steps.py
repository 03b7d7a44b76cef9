"""The steps the identity commands share: finding subscribers, sending a secret, counting
requests on throttles, and the names of the throttles and audited acts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.identity import PasswordIssued, PasswordPurpose
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.sealing import seal
from billing_events.unit_of_work import UnitOfWork
from identity import store
from identity.commands import SecretSent
from identity.context import IdentityContext
from identity.domain import (
    PASSWORD_POLICY,
    RESET_REQUEST_THROTTLE,
    AttemptOutcome,
    FieldError,
    InvalidCommand,
    InvalidLoginIdentifier,
    LoginIdentifier,
    LoginKind,
    LookupKind,
    ThrottlePolicy,
    TooManyFromAddress,
    issue_pending_password,
    mask_email,
    mask_phone,
    parse_login_identifier,
    rate_limited_request,
)
from identity.security import generate_password

log = get_logger(__name__)

# Throttle scopes: each keeps its own state per account, unless said otherwise.
LOGIN_SCOPE = "login"  # keyed by account and client address: wrong logins lock out their source
LOGIN_SIEGE_SCOPE = "login_siege"  # wrong logins at an account from all addresses
LOGIN_ADDRESS_SCOPE = "login_address"  # keyed by client address: wrong logins at any accounts
LOGIN_NOTICE_SCOPE = "login_notice"  # the owner was told of a lockout
# Every request that sends the account a password or a code (by SMS, a reset code, a code to
# confirm a new contact), counted together: each one is a message and a fresh secret to guess.
SECRET_REQUEST_SCOPE = "secret_request"
RESET_REDEEM_SCOPE = "reset_redeem"  # attempts to redeem a code for the account, from all addresses
SUPPORT_SCOPE = "support_recovery"
ADDRESS_SCOPE = "address_request"  # keyed by client address, whatever the accounts
# The source of commands called from inside (the CLI, an operator's tool, a test): one address.
LOCAL_SOURCE = "local"

# Audited acts (store.audit); their outcomes are the words of each command.
PASSWORD_ISSUED_ACT = "password_issued"
PASSWORD_BY_SMS_ACT = "password_by_sms"
RESET_REQUESTED_ACT = "reset_code_requested"
RESET_REDEEMED_ACT = "reset_code_redeemed"
PASSWORD_REPLACED_ACT = "password_replaced"
LOGIN_LOCKED_ACT = "login_locked"
SUPPORT_RECOVERY_ACT = "support_recovery"
PASSWORD_CHANGED_ACT = "password_changed"
SELF_REGISTRATION_ACT = "self_registration"
CONTACT_CHANGE_ACT = "contact_change"

SENSITIVE_ACTS = Counter(
    "identity_sensitive_acts_total", "Identity's sensitive acts by what really came of them", ["act", "outcome"]
)


def parse_login(raw: str, *, phone_allowed: bool = True) -> LoginIdentifier:
    try:
        identifier = parse_login_identifier(raw)
    except InvalidLoginIdentifier as exc:
        raise InvalidCommand([FieldError("login", exc.message, "invalid_login")]) from None
    if identifier.kind is LoginKind.PHONE and not phone_allowed:
        raise InvalidCommand(
            [FieldError("login", "enter an account number or a contract number", "invalid_login")]
        )
    return identifier


async def find_subscribers(
    conn: AsyncConnection, ctx: IdentityContext, identifier: LoginIdentifier
) -> list[store.Subscriber]:
    """The subscribers an identifier names, locked for this transaction (PostgreSQL)."""
    match identifier.kind:
        case LoginKind.ACCOUNT_NUMBER:
            found = await store.subscriber_by_account(conn, identifier.value, for_update=True)
            return [found] if found else []
        case LoginKind.CONTRACT_NUMBER:
            found = await store.subscriber_by_contract(conn, identifier.value, for_update=True)
            return [found] if found else []
        case LoginKind.PHONE:
            phone_hash = ctx.vault.lookup_hash(LookupKind.PHONE, identifier.value)
            return await store.subscribers_by_phone(conn, phone_hash, for_update=True)


@dataclass(frozen=True)
class Contact:
    phone: str
    email: str | None


def contact_of(ctx: IdentityContext, subscriber: store.Subscriber) -> Contact:
    data = ctx.decrypt(subscriber.account_number, "contact", subscriber.contact_encrypted)
    return Contact(phone=data["phone"], email=data.get("email"))


def secret_issued(
    ctx: IdentityContext,
    *,
    account_number: str,
    purpose: PasswordPurpose,
    channel: Literal["sms", "email"],
    destination: str,
    secret: str,
    expires_at: datetime | None = None,
    cause: Envelope[Any] | None = None,
) -> tuple[Envelope[Any], SecretSent]:
    masked = mask_phone(destination) if channel == "sms" else mask_email(destination)
    sealed = seal(ctx.settings.notifier_public_key, {"secret": secret, "destination": destination})
    payload = PasswordIssued(
        account_number=account_number, purpose=purpose, channel=channel,
        masked_destination=masked, sealed_secret=sealed, expires_at=expires_at,
    )
    sent = SecretSent(account_number=account_number, purpose=purpose, channel=channel,
                      masked_destination=masked, expires_at=expires_at)
    return ctx.envelope(payload, account=account_number, cause=cause), sent


async def new_password_by_sms(
    conn: AsyncConnection,
    ctx: IdentityContext,
    subscriber: store.Subscriber,
    purpose: PasswordPurpose,
    *,
    replace_now: bool = False,
    cause: Envelope[Any] | None = None,
) -> tuple[Envelope[Any], SecretSent]:
    """Send a new password by SMS. Asked for, it waits as the pending password and the current
    one keeps working until the new one is first used; ``replace_now`` (support, after a
    passport check) makes it the password at once."""
    password = generate_password(PASSWORD_POLICY)
    password_hash = await ctx.hash(password)
    account, now = subscriber.account_number, ctx.clock.now()
    if replace_now:
        await store.set_password(conn, account, password_hash, at=now)
        await store.drop_pending_password(conn, account)
    else:
        pending = issue_pending_password(
            password_hash, purpose=purpose, now=now, lifetime=ctx.settings.pending_password_lifetime
        )
        await store.save_pending_password(conn, account, pending)
    return secret_issued(
        ctx, account_number=account, purpose=purpose, channel="sms",
        destination=contact_of(ctx, subscriber).phone, secret=password, cause=cause,
    )


async def count_address_request(
    ctx: IdentityContext, now: datetime, source: str | None
) -> TooManyFromAddress | None:
    """Count one anonymous request from ``source``; the refusal once the address had its share.

    Checked before anything is looked up, so the answer is the same whoever the request names,
    and in a transaction of its own: the address's state is held for the count only, so its
    admitted requests do their slow work side by side, not one after the other.
    """
    if source is None:  # not from outside (the CLI, an operator's tool, a test)
        return None

    async def count(uow: UnitOfWork) -> TooManyFromAddress | None:
        state = await store.throttle_state(uow.conn, ADDRESS_SCOPE, source)
        state, outcome = rate_limited_request(state, now=now, policy=ctx.settings.address_throttle)
        if not outcome.accepted:
            return TooManyFromAddress(until=outcome.locked_until)
        await store.save_throttle_state(uow.conn, ADDRESS_SCOPE, source, state)
        return None

    return await ctx.unit_of_work(count)


async def account_request_refused(
    conn: AsyncConnection, scope: str, account: str, now: datetime,
    policy: ThrottlePolicy = RESET_REQUEST_THROTTLE,
) -> AttemptOutcome | None:
    """Count one request for a password or a code on the account's throttle of ``scope``; the
    refused outcome once the account had its share (then nothing is counted)."""
    state = await store.throttle_state(conn, scope, account)
    state, outcome = rate_limited_request(state, now=now, policy=policy)
    if not outcome.accepted:
        return outcome
    await store.save_throttle_state(conn, scope, account, state)
    return None


def accounts_checked(ctx: IdentityContext, identifier: LoginIdentifier) -> int:
    """How many accounts' worth of slow work an anonymous request naming ``identifier`` does,
    whatever it finds: one for an account or contract number, the configured number for a
    phone (it may name several accounts; a phone that names more costs more)."""
    return ctx.settings.login_phone_accounts if identifier.kind is LoginKind.PHONE else 1


# Outcomes that would tell whether an account exists, a contact matches or a code was asked
# for: the audit keeps them; the metrics say "refused", like the public answer.
_REVEALING_OUTCOMES = frozenset({
    "unknown_account", "contact_mismatch", "account_throttled",
    "wrong_code", "expired", "already_used", "too_many_guesses", "no_code",
})
# A lock of a source out of nobody's account is a lock like any other (the audit says whose).
_LOCK_OUTCOMES = {"unknown_account": "lock_started"}


def metric_outcome(act: store.Act) -> str:
    """What the metrics say came of ``act``: nothing a reader could use to learn about an account."""
    if act.act == LOGIN_LOCKED_ACT:
        return _LOCK_OUTCOMES.get(act.outcome, act.outcome)
    return "refused" if act.outcome in _REVEALING_OUTCOMES else act.outcome


def counted(acts: list[store.Act]) -> None:
    """After the commit: the metrics count what the audit rows say, by :func:`metric_outcome`."""
    for act in acts:
        SENSITIVE_ACTS.labels(act.act, metric_outcome(act)).inc()


def login_subject(key: str, source: str | None) -> str:
    """The subject of a source's login guard at an account (the LOGIN_SCOPE throttle)."""
    return f"{key} {source or LOCAL_SOURCE}"

