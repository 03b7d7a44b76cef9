"""The identity service's commands: one async function each, over the runtime.

Every command validates its input first (an invalid command raises :class:`InvalidCommand`
with one error per field and changes nothing), then opens one transaction: it loads the
account (locked on PostgreSQL, so one command per account runs at a time), asks the domain,
writes the state change and stages the outgoing events in the outbox, and wakes the relay
after the commit. A refusal that must still be remembered (a failed login, a wrong code) is
committed first and raised after.

Secrets never travel in clear: passwords and codes go out in :class:`PasswordIssued` sealed for
the notifier; contact details go out in :class:`SubscriberRegistered` sealed the same way,
beside masked forms. Passport data never leaves this service. Slow hashes run in a worker
thread so the event loop keeps serving other accounts.

Asking for a password never takes one away: a password sent on request waits beside the
current one (:mod:`identity.domain.pending`) until it is first used. The requests anyone can
make (a password by SMS, a reset code) take a client ``source`` address: they are throttled
per address and per account, do the same slow hashing whatever they find, and every one is
written to the audit (``store.audit``) and counted with what really came of it, since the
public answer does not say.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, TypeVar, cast

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events import outbox
from billing_events.catalog.identity import (
    AccessRestoredBySupport,
    LoginLocked,
    PasswordIssued,
    PasswordPurpose,
    PasswordReplaced,
    ResetCodeRedeemed,
    SubscriberRegistered,
)
from billing_events.clock import Clock
from billing_events.db import Database
from billing_events.envelope import Envelope, Event
from billing_events.logging import get_logger
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import seal
from identity import store
from identity.domain import (
    CODE_POLICY,
    PASSWORD_POLICY,
    RESET_REQUEST_THROTTLE,
    SUPPORT_THROTTLE,
    Attempt,
    AttemptOutcome,
    ContactMismatch,
    FieldError,
    IdentityError,
    InvalidCommand,
    InvalidLoginIdentifier,
    LoginGuard,
    LoginIdentifier,
    LoginIsLocked,
    LoginKind,
    LoginPolicy,
    LoginRefused,
    LookupKind,
    PassportAlreadyRegistered,
    PendingPassword,
    RecoveryClaim,
    RecoveryRefused,
    Redemption,
    RegistrationCommand,
    ResetCodeRefused,
    ThrottleState,
    TooManyFromAddress,
    TooManyRequests,
    UnknownAccount,
    account_number_from_sequence,
    contract_number,
    email_lookup_text,
    guarded_attempt,
    issue_pending_password,
    issue_reset_code,
    mask_email,
    mask_phone,
    parse_login_identifier,
    rate_limited_request,
    record_login,
    validate_command,
    validate_registration,
)
from identity.domain import redeem_reset_code as redeem_reset_code_rule
from identity.domain.registration import Email, MobilePhone
from identity.security import (
    HashingProfile,
    PersonalDataVault,
    SecretHasher,
    generate_code,
    generate_password,
)
from identity.settings import IdentitySettings

log = get_logger(__name__)

PRODUCER = "identity"

# Throttle scopes: each keeps its own state per account, unless said otherwise.
LOGIN_SCOPE = "login"  # keyed by account and client address: wrong logins lock out their source
LOGIN_SIEGE_SCOPE = "login_siege"  # wrong logins at an account from all addresses
LOGIN_ADDRESS_SCOPE = "login_address"  # keyed by client address: wrong logins at any accounts
LOGIN_NOTICE_SCOPE = "login_notice"  # the owner was told of a lockout
RESET_REQUEST_SCOPE = "reset_request"
SMS_REISSUE_SCOPE = "sms_reissue"
SUPPORT_SCOPE = "support_recovery"
ADDRESS_SCOPE = "address_request"  # keyed by client address, whatever the accounts
# The source of commands called from inside (the CLI, an operator's tool, a test): one address.
LOCAL_SOURCE = "local"

# Audited acts (store.audit); their outcomes are the words of each command below.
PASSWORD_ISSUED_ACT = "password_issued"
PASSWORD_BY_SMS_ACT = "password_by_sms"
RESET_REQUESTED_ACT = "reset_code_requested"
RESET_REDEEMED_ACT = "reset_code_redeemed"
PASSWORD_REPLACED_ACT = "password_replaced"
LOGIN_LOCKED_ACT = "login_locked"
SUPPORT_RECOVERY_ACT = "support_recovery"

SENSITIVE_ACTS = Counter(
    "identity_sensitive_acts_total", "Identity's sensitive acts by what really came of them", ["act", "outcome"]
)

M = TypeVar("M", bound=BaseModel)


# --- command and result models ----------------------------------------------------------------


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class LoginCommand(_Command):
    """Account number, contract number or mobile number, and the password (sent by SMS)."""

    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128, repr=False)


class ReissuePasswordCommand(_Command):
    """"Get a new password by SMS": the new one goes to the registered mobile number."""

    login: str = Field(min_length=1, max_length=64)


class ResetCodeRequestCommand(_Command):
    """Forgot password: the account or contract number and the registered phone OR e-mail."""

    login: str = Field(min_length=1, max_length=64)
    phone: MobilePhone | None = None
    email: Email | None = None


class RedeemResetCodeCommand(_Command):
    login: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32, repr=False)


class SupportRecoveryCommand(RecoveryClaim):
    """An operator restores access after the caller proved who they are with passport data."""

    login: str = Field(min_length=1, max_length=64)
    operator: str = Field(min_length=1, max_length=100, description="Who performed the recovery")
    reason: str = Field(min_length=1, max_length=1000, description="Why, as the operator wrote it")


class Registered(BaseModel):
    account_number: str
    contract_number: str


class LoggedIn(BaseModel):
    account_number: str
    contract_number: str


class SecretSent(BaseModel):
    """A password or code is on its way (through the notifier) to a masked destination."""

    account_number: str
    purpose: PasswordPurpose
    channel: Literal["sms", "email"]
    masked_destination: str
    expires_at: datetime | None = None


# --- shared tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tools:
    settings: IdentitySettings
    vault: PersonalDataVault
    hasher: SecretHasher

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, secret)

    async def verify(self, stored_hash: str, candidate: str) -> bool:
        return await asyncio.to_thread(self.hasher.verify, stored_hash, candidate)

    async def verify_decoy(self, candidate: str) -> None:
        """The work of checking a secret when there is none to check, so both answers take as long."""
        await asyncio.to_thread(lambda: self.hasher.verify(_decoy_hash(self.settings.hashing), candidate))


@cache
def _vault(lookup_key: str, encryption_key: str) -> PersonalDataVault:
    return PersonalDataVault.from_base64(lookup_key=lookup_key, encryption_key=encryption_key)


def personal_data_vault(settings: IdentitySettings) -> PersonalDataVault:
    return _vault(settings.pii_lookup_key.get_secret_value(), settings.pii_encryption_key.get_secret_value())


@cache
def _hasher(profile: HashingProfile) -> SecretHasher:
    return SecretHasher(profile)


@cache
def _decoy_hash(profile: HashingProfile) -> str:
    """Verified against when there is no secret to check (:meth:`_Tools.verify_decoy`)."""
    return _hasher(profile).hash(generate_password(PASSWORD_POLICY))


def _tools(runtime: ServiceRuntime) -> _Tools:
    settings = runtime.settings
    if not isinstance(settings, IdentitySettings):
        raise TypeError("the identity commands need a runtime built with IdentitySettings")
    return _Tools(
        settings=settings,
        vault=personal_data_vault(settings),
        hasher=_hasher(settings.hashing),
    )


def _validate(model: type[M], data: M | Mapping[str, Any]) -> M:
    return validate_command(model, data)


def _identifier(raw: str, *, phone_allowed: bool = True) -> LoginIdentifier:
    try:
        identifier = parse_login_identifier(raw)
    except InvalidLoginIdentifier as exc:
        raise InvalidCommand([FieldError("login", exc.message, "invalid_login")]) from None
    if identifier.kind is LoginKind.PHONE and not phone_allowed:
        raise InvalidCommand(
            [FieldError("login", "enter an account number or a contract number", "invalid_login")]
        )
    return identifier


async def _find(
    conn: AsyncConnection, tools: _Tools, identifier: LoginIdentifier
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
            phone_hash = tools.vault.lookup_hash(LookupKind.PHONE, identifier.value)
            return await store.subscribers_by_phone(conn, phone_hash, for_update=True)


async def _find_one(conn: AsyncConnection, tools: _Tools, identifier: LoginIdentifier) -> store.Subscriber:
    """The one subscriber an account or contract number names, locked; UnknownAccount if none."""
    found = await _find(conn, tools, identifier)
    if not found:
        raise UnknownAccount()
    return found[0]


async def reencrypt_personal_data(db: Database, vault: PersonalDataVault, *, batch_size: int) -> AsyncIterator[int]:
    """Re-encrypt, under the vault's current key, every subscriber's personal data that an older
    key wrote: one transaction per batch, yielding each batch's size. What the current key wrote
    is skipped, so a run that stopped is finished by running again; the previous keys may go
    once a run finds nothing."""
    after = ""
    while True:
        async with db.transaction() as conn:
            rows = await store.encrypted_not_under(conn, vault.current_key_id, after=after, limit=batch_size)
            for row in rows:
                account = row.account_number
                await store.replace_encrypted(conn, account, {
                    f"{kind}_encrypted": vault.reencrypt(getattr(row, f"{kind}_encrypted"), bound_to=_bound(account, kind))
                    for kind in store.ENCRYPTED_KINDS
                })
        if not rows:
            return
        after = rows[-1].account_number
        yield len(rows)


@dataclass(frozen=True)
class _Contact:
    phone: str
    email: str | None


def _contact(tools: _Tools, subscriber: store.Subscriber) -> _Contact:
    data = json.loads(
        tools.vault.decrypt(subscriber.contact_encrypted, bound_to=_bound(subscriber.account_number, "contact"))
    )
    return _Contact(phone=data["phone"], email=data.get("email"))


def _bound(account_number: str, kind: str) -> str:
    return f"{account_number}/{kind}"


def _envelope(
    payload: Event, account: str, clock: Clock, *, cause: Envelope[Any] | None = None
) -> Envelope[Any]:
    return Envelope.new(payload, account=account, producer=PRODUCER, clock=clock, cause=cause)


def _secret_issued(
    tools: _Tools,
    clock: Clock,
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
    sealed = seal(tools.settings.notifier_public_key, {"secret": secret, "destination": destination})
    payload = PasswordIssued(
        account_number=account_number, purpose=purpose, channel=channel,
        masked_destination=masked, sealed_secret=sealed, expires_at=expires_at,
    )
    sent = SecretSent(account_number=account_number, purpose=purpose, channel=channel,
                      masked_destination=masked, expires_at=expires_at)
    return _envelope(payload, account_number, clock, cause=cause), sent


async def _new_password_by_sms(
    conn: AsyncConnection,
    tools: _Tools,
    clock: Clock,
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
    password_hash = await tools.hash(password)
    account, now = subscriber.account_number, clock.now()
    if replace_now:
        await store.set_password(conn, account, password_hash, at=now)
        await store.drop_pending_password(conn, account)
    else:
        pending = issue_pending_password(
            password_hash, purpose=purpose, now=now, lifetime=tools.settings.pending_password_lifetime
        )
        await store.save_pending_password(conn, account, pending)
    return _secret_issued(
        tools, clock, account_number=account, purpose=purpose, channel="sms",
        destination=_contact(tools, subscriber).phone, secret=password, cause=cause,
    )


async def _address_refusal(
    conn: AsyncConnection, tools: _Tools, now: datetime, source: str | None
) -> TooManyFromAddress | None:
    """Count one anonymous request from ``source``; the refusal once the address had its share.

    Checked before anything is looked up, so the answer is the same whoever the request names.
    """
    if source is None:  # not from outside (the CLI, an operator's tool, a test)
        return None
    state = await store.throttle_state(conn, ADDRESS_SCOPE, source)
    state, outcome = rate_limited_request(state, now=now, policy=tools.settings.address_throttle)
    if not outcome.accepted:
        return TooManyFromAddress(until=outcome.locked_until)
    await store.save_throttle_state(conn, ADDRESS_SCOPE, source, state)
    return None


def _counted(acts: list[store.Act]) -> None:
    """After the commit: the metrics say what the audit rows say."""
    for act in acts:
        SENSITIVE_ACTS.labels(act.act, act.outcome).inc()


async def _stage(runtime: ServiceRuntime, conn: AsyncConnection, envelopes: list[Envelope[Any]]) -> None:
    await outbox.stage(conn, envelopes, topics=runtime.topics, clock=runtime.clock)


# --- registration -----------------------------------------------------------------------------


async def register(
    runtime: ServiceRuntime, command: RegistrationCommand | Mapping[str, Any]
) -> Registered:
    """Open a personal account: allocate the account and contract numbers, store the
    subscriber's data protected, issue the initial password.

    Publishes SubscriberRegistered (contacts sealed + masked, no passport data) and
    PasswordIssued(initial). Raises InvalidCommand (field errors) or PassportAlreadyRegistered.
    """
    tools = _tools(runtime)
    clock = runtime.clock
    now = clock.now()
    registration = validate_registration(command, now=now, regions=tools.settings.regions)
    vault = tools.vault
    passport_hash = vault.lookup_hash(LookupKind.PASSPORT, registration.passport_text())
    password = generate_password(PASSWORD_POLICY)
    password_hash = await tools.hash(password)
    phone, email = registration.mobile_phone, registration.email
    try:
        async with runtime.db.transaction() as conn:
            if await store.passport_registered(conn, passport_hash):
                raise PassportAlreadyRegistered()
            sequence = await store.next_account_sequence(conn)
            account = account_number_from_sequence(sequence)
            contract = contract_number(sequence, now.date())
            passport = {
                "series": registration.passport_series,
                "number": registration.passport_number,
                "date_of_birth": registration.date_of_birth.isoformat(),
                "issuing_authority": registration.issuing_authority,
                "date_of_issue": registration.date_of_issue.isoformat(),
            }
            personal = {
                "surname": registration.surname,
                "first_name": registration.first_name,
                "patronymic": registration.patronymic,
            }
            contact = {"phone": phone, "email": email}
            await store.add_subscriber(conn, {
                "account_number": account,
                "sequence": sequence,
                "contract_number": contract,
                "region": registration.region,
                "legal_status": registration.legal_status.value,
                "language": registration.language,
                "passport_hash": passport_hash,
                "phone_hash": vault.lookup_hash(LookupKind.PHONE, phone),
                "email_hash": vault.lookup_hash(LookupKind.EMAIL, email_lookup_text(email)) if email else None,
                "recovery_proof_hash": vault.lookup_hash(
                    LookupKind.RECOVERY_PROOF, registration.recovery_proof_text()
                ),
                "passport_encrypted": vault.encrypt(json.dumps(passport), bound_to=_bound(account, "passport")),
                "personal_encrypted": vault.encrypt(json.dumps(personal), bound_to=_bound(account, "personal")),
                "contact_encrypted": vault.encrypt(json.dumps(contact), bound_to=_bound(account, "contact")),
                "password_hash": password_hash,
                "password_set_at": now,
                "registered_at": now,
            })
            registered = _envelope(
                SubscriberRegistered(
                    account_number=account,
                    contract_number=contract,
                    region=registration.region,
                    legal_status=registration.legal_status,
                    language=registration.language,
                    masked_phone=mask_phone(phone),
                    masked_email=mask_email(email) if email else None,
                    sealed_contact=seal(tools.settings.notifier_public_key, contact),
                ),
                account,
                clock,
            )
            issued, _ = _secret_issued(
                tools, clock, account_number=account, purpose=PasswordPurpose.INITIAL,
                channel="sms", destination=phone, secret=password, cause=registered,
            )
            await _stage(runtime, conn, [registered, issued])
            acts = [store.Act(PASSWORD_ISSUED_ACT, PasswordPurpose.INITIAL.value, account)]
            await store.record_acts(conn, acts, at=now)
    except IntegrityError:
        # Two registrations of one passport raced; the unique index let one through.
        async with runtime.db.connect() as conn:
            if await store.passport_registered(conn, passport_hash):
                raise PassportAlreadyRegistered() from None
        raise
    runtime.relay.wake()
    _counted(acts)
    log.info("subscriber registered", account_number=account, region=registration.region,
             legal_status=registration.legal_status.value)
    return Registered(account_number=account, contract_number=contract)


# --- login ------------------------------------------------------------------------------------


async def login(
    runtime: ServiceRuntime, command: LoginCommand | Mapping[str, Any], *, source: str | None = None
) -> LoggedIn:
    """Check an account number / contract number + password, or a mobile number + SMS password.

    The current password works, and so does a pending one (sent on request) until it expires:
    its first use makes it the account's password (PasswordReplaced).

    Wrong passwords lock out their source (the client address ``source``; commands called from
    inside are one source), never the owner: per account and source, per source over all
    accounts, and a siege ceiling per account (:class:`identity.domain.LoginPolicy`). A lock
    of a source out of an account publishes LoginLocked, once per lock period of the account.
    Locked attempts are refused unchecked. Failures naming nobody are counted the same way
    (under the account number they name), so the answers are the same whether or not the
    account exists. Raises LoginRefused or LoginIsLocked.
    """
    tools = _tools(runtime)
    cmd = _validate(LoginCommand, command)
    identifier = _identifier(cmd.login)
    clock = runtime.clock
    now = clock.now()
    policy = tools.settings.login_policy
    events: list[Envelope[Any]] = []
    matched: store.Subscriber | None = None
    used_pending: PendingPassword | None = None
    acts: list[store.Act] = []
    async with runtime.db.transaction() as conn:
        candidates = await _find(conn, tools, identifier)
        subscribers = {c.account_number: c for c in candidates}
        keys = list(subscribers) or [_nobody_key(tools, identifier)]
        address = ThrottleState()
        if source is not None:
            address = await store.throttle_state(conn, LOGIN_ADDRESS_SCOPE, source)
        guards = {key: await _login_guard(conn, key, source) for key in keys}
        refused = {key: guards[key].refused_until(now, address, policy) for key in keys}
        checked = [key for key in keys if refused[key] is None]
        if checked and not candidates:
            await tools.verify_decoy(cmd.password)
        for candidate in candidates:
            if refused[candidate.account_number] is not None:
                continue
            if await tools.verify(candidate.password_hash, cmd.password):
                matched = candidate
                break
            pending = await store.pending_password(conn, candidate.account_number)
            if pending is not None and pending.usable(now) and await tools.verify(pending.password_hash, cmd.password):
                matched, used_pending = candidate, pending
                break
        locked_until = {key: until for key, until in refused.items() if until is not None}
        for key in checked:
            if matched is not None and key != matched.account_number:
                continue  # another account on the same phone: this attempt was not about it
            guard, outcome = record_login(guards[key], now=now, right=matched is not None, policy=policy)
            await _save_login_guard(conn, key, source, guard)
            if outcome.locked_until is not None:
                locked_until[key] = outcome.locked_until
            if outcome.lock_started:
                events += await _login_locked(conn, clock, subscribers.get(key), outcome, policy, source, acts)
        if matched is None and checked and source is not None:
            address = address.count(now, policy.per_address)
            await store.save_throttle_state(conn, LOGIN_ADDRESS_SCOPE, source, address)
            if address.is_locked(now):
                acts.append(store.Act(LOGIN_LOCKED_ACT, "address_locked", source=source))
        password_hash = matched.password_hash if matched is not None else None
        if matched is not None and used_pending is not None:
            password_hash = used_pending.password_hash
            await store.set_password(conn, matched.account_number, password_hash, at=now)
            await store.drop_pending_password(conn, matched.account_number)
            events.append(_envelope(
                PasswordReplaced(account_number=matched.account_number, purpose=used_pending.purpose),
                matched.account_number, clock,
            ))
            acts.append(store.Act(PASSWORD_REPLACED_ACT, used_pending.purpose.value, matched.account_number))
        if matched is not None and password_hash is not None and tools.hasher.needs_rehash(password_hash):
            await store.set_password(conn, matched.account_number, await tools.hash(cmd.password), at=now)
        await _stage(runtime, conn, events)
        await store.record_acts(conn, acts, at=now)
    _counted(acts)
    if events:
        runtime.relay.wake()
    if matched is not None:
        return LoggedIn(account_number=matched.account_number, contract_number=matched.contract_number)
    locks = [*locked_until.values(), *([address.locked_until] if address.locked_until else [])]
    locked = address.is_locked(now) or len(locked_until) == len(keys)
    log.info("login refused", login_kind=identifier.kind.value, accounts=len(candidates), locked=locked)
    if locked:
        raise LoginIsLocked(until=max(locks))
    raise LoginRefused()


def _nobody_key(tools: _Tools, identifier: LoginIdentifier) -> str:
    """What failed logins naming nobody are counted under: the account number named (a contract
    number's too), or for a phone a short keyed hash of it (never the number itself)."""
    return identifier.account_number or "phone:" + tools.vault.lookup_hash(LookupKind.PHONE, identifier.value)[:24]


def _login_subject(key: str, source: str | None) -> str:
    return f"{key} {source or LOCAL_SOURCE}"


async def _login_guard(conn: AsyncConnection, key: str, source: str | None) -> LoginGuard:
    return LoginGuard(
        source=await store.throttle_state(conn, LOGIN_SCOPE, _login_subject(key, source)),
        account=await store.throttle_state(conn, LOGIN_SIEGE_SCOPE, key),
    )


async def _save_login_guard(conn: AsyncConnection, key: str, source: str | None, guard: LoginGuard) -> None:
    await store.save_throttle_state(conn, LOGIN_SCOPE, _login_subject(key, source), guard.source)
    await store.save_throttle_state(conn, LOGIN_SIEGE_SCOPE, key, guard.account)


async def _login_locked(
    conn: AsyncConnection,
    clock: Clock,
    subscriber: store.Subscriber | None,
    outcome: AttemptOutcome,
    policy: LoginPolicy,
    source: str | None,
    acts: list[store.Act],
) -> list[Envelope[Any]]:
    """A source was just locked out of an account: audit it; tell the owner (LoginLocked, the
    SMS) unless they were told of a lockout within the lock period."""
    assert outcome.locked_until is not None
    if subscriber is None:
        acts.append(store.Act(LOGIN_LOCKED_ACT, "unknown_account", source=source))
        return []
    account = subscriber.account_number
    acts.append(store.Act(LOGIN_LOCKED_ACT, "lock_started", account, source))
    log.warning("login locked for a source", account_number=account, locked_until=outcome.locked_until.isoformat())
    notice = await store.throttle_state(conn, LOGIN_NOTICE_SCOPE, account)
    notice, told = rate_limited_request(notice, now=clock.now(), policy=policy.notice)
    if not told.accepted:
        return []
    await store.save_throttle_state(conn, LOGIN_NOTICE_SCOPE, account, notice)
    locked = LoginLocked(account_number=account, locked_until=outcome.locked_until,
                         failed_attempts=policy.per_source.threshold)
    return [_envelope(locked, account, clock)]


# --- passwords by SMS -------------------------------------------------------------------------


async def reissue_password_by_sms(
    runtime: ServiceRuntime,
    command: ReissuePasswordCommand | Mapping[str, Any],
    *,
    source: str | None = None,
) -> list[SecretSent]:
    """"Get a new password by SMS": a new password goes by SMS to the registered mobile number
    (every account registered with it, when a phone is given). It waits beside the current
    password, which keeps working until the new one is first used.

    Throttled per client address (``source``, when the request came from outside) and per
    account (each request sends an SMS). Raises TooManyFromAddress, UnknownAccount or
    TooManyRequests, after the same slow work as a request that sends a password.
    """
    tools = _tools(runtime)
    cmd = _validate(ReissuePasswordCommand, command)
    identifier = _identifier(cmd.login)
    clock = runtime.clock
    now = clock.now()
    sent: list[SecretSent] = []
    refused_until: list[datetime] = []
    acts: list[store.Act] = []
    async with runtime.db.transaction() as conn:
        address_refusal = await _address_refusal(conn, tools, now, source)
        candidates = [] if address_refusal else await _find(conn, tools, identifier)
        events: list[Envelope[Any]] = []
        for subscriber in candidates:
            account = subscriber.account_number
            state = await store.throttle_state(conn, SMS_REISSUE_SCOPE, account)
            state, outcome = rate_limited_request(state, now=now, policy=RESET_REQUEST_THROTTLE)
            if not outcome.accepted:
                refused_until.append(outcome.locked_until or now)
                acts.append(store.Act(PASSWORD_BY_SMS_ACT, "account_throttled", account, source))
                continue
            await store.save_throttle_state(conn, SMS_REISSUE_SCOPE, account, state)
            issued, result = await _new_password_by_sms(
                conn, tools, clock, subscriber, PasswordPurpose.SMS_REISSUE
            )
            events.append(issued)
            sent.append(result)
            acts.append(store.Act(PASSWORD_BY_SMS_ACT, "sent", account, source))
        if address_refusal is not None:
            acts.append(store.Act(PASSWORD_BY_SMS_ACT, "address_throttled", source=source))
        elif not sent:
            if not candidates:
                acts.append(store.Act(PASSWORD_BY_SMS_ACT, "unknown_account", source=source))
            await tools.hash(generate_password(PASSWORD_POLICY))  # as long as sending one
        await store.record_acts(conn, acts, at=now)
        await _stage(runtime, conn, events)
    _counted(acts)
    if address_refusal is not None:
        raise address_refusal
    if not candidates:
        raise UnknownAccount()
    if not sent:
        raise TooManyRequests(until=min(refused_until))
    runtime.relay.wake()
    for result in sent:
        log.info("password sent by sms", account_number=result.account_number)
    return sent


# --- forgot password: one-time codes ----------------------------------------------------------


async def request_reset_code(
    runtime: ServiceRuntime,
    command: ResetCodeRequestCommand | Mapping[str, Any],
    *,
    source: str | None = None,
) -> SecretSent:
    """Send a one-time code to the registered phone or e-mail, if the one given matches.

    The code works for the configured lifetime (15 minutes), once; it replaces (voids) any
    earlier code of the account; the password is untouched. Throttled per client address
    (``source``) and per account, matched or not. Raises TooManyFromAddress, UnknownAccount,
    TooManyRequests or ContactMismatch, each after the same slow work as a code that is sent.
    """
    tools = _tools(runtime)
    cmd = _validate(ResetCodeRequestCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    if (cmd.phone is None) == (cmd.email is None):
        field = "phone" if cmd.phone is None else "email"
        raise InvalidCommand([FieldError(
            field, "give either the registered mobile number or the registered e-mail", "one_contact"
        )])
    channel: Literal["sms", "email"] = "sms" if cmd.phone is not None else "email"
    clock = runtime.clock
    now = clock.now()
    refusal: IdentityError | None = None
    account: str | None = None
    async with runtime.db.transaction() as conn:
        refusal = await _address_refusal(conn, tools, now, source)
        if refusal is None:
            code = generate_code(CODE_POLICY)
            code_hash = await tools.hash(code)  # whatever is found next: every answer costs the same
            refusal, subscriber = await _reset_code_for(conn, tools, now, identifier, cmd)
            account = subscriber.account_number if subscriber else None
            if refusal is None:
                assert subscriber is not None and account is not None
                contact = _contact(tools, subscriber)
                reset = issue_reset_code(code_hash, now=now, policy=tools.settings.reset_code_policy)
                await store.save_reset_code(conn, account, reset)
                destination = contact.phone if channel == "sms" else cast(str, contact.email)
                issued, sent = _secret_issued(
                    tools, clock, account_number=account, purpose=PasswordPurpose.RESET_CODE,
                    channel=channel, destination=destination, secret=code, expires_at=reset.expires_at,
                )
                await _stage(runtime, conn, [issued])
        outcome = "sent" if refusal is None else _REQUEST_OUTCOMES[type(refusal)]
        acts = [store.Act(RESET_REQUESTED_ACT, outcome, account, source, detail=channel)]
        await store.record_acts(conn, acts, at=now)
    _counted(acts)
    if refusal is not None:
        log.info("reset code not sent", account_number=account, outcome=outcome)
        raise refusal
    runtime.relay.wake()
    log.info("reset code sent", account_number=account, channel=channel)
    return sent


_REQUEST_OUTCOMES: dict[type[IdentityError], str] = {
    TooManyFromAddress: "address_throttled",
    UnknownAccount: "unknown_account",
    TooManyRequests: "account_throttled",
    ContactMismatch: "contact_mismatch",
}


async def _reset_code_for(
    conn: AsyncConnection,
    tools: _Tools,
    now: datetime,
    identifier: LoginIdentifier,
    cmd: ResetCodeRequestCommand,
) -> tuple[IdentityError | None, store.Subscriber | None]:
    """Why no code may go to the account named (None: it may), and the subscriber if found.

    Counts the request on the account's throttle, whether the contact matches or not."""
    found = await _find(conn, tools, identifier)
    if not found:
        return UnknownAccount(), None
    subscriber = found[0]
    account = subscriber.account_number
    state = await store.throttle_state(conn, RESET_REQUEST_SCOPE, account)
    state, outcome = rate_limited_request(state, now=now, policy=RESET_REQUEST_THROTTLE)
    if not outcome.accepted:
        return TooManyRequests(until=outcome.locked_until), subscriber
    await store.save_throttle_state(conn, RESET_REQUEST_SCOPE, account, state)
    if cmd.phone is not None:
        if not tools.vault.matches(subscriber.phone_hash, LookupKind.PHONE, cmd.phone):
            return ContactMismatch("phone"), subscriber
    else:
        assert cmd.email is not None
        email_matches = subscriber.email_hash is not None and tools.vault.matches(
            subscriber.email_hash, LookupKind.EMAIL, email_lookup_text(cmd.email)
        )
        if not email_matches:
            return ContactMismatch("email"), subscriber
    return None, subscriber


async def redeem_reset_code(
    runtime: ServiceRuntime,
    command: RedeemResetCodeCommand | Mapping[str, Any],
    *,
    source: str | None = None,
) -> SecretSent:
    """Use a one-time code: on success a new password goes by SMS (purpose sms_reissue) and
    waits beside the current one until first used, and the redeemer's own lockout from the
    account's login is lifted (ResetCodeRedeemed); others' stay.

    Wrong guesses are counted; the code dies after the configured number of them. Raises
    ResetCodeRefused (reason: wrong_code, expired, already_used, too_many_guesses, no_code;
    no_code too for an account that does not exist).
    """
    tools = _tools(runtime)
    cmd = _validate(RedeemResetCodeCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    if not CODE_POLICY.admits(cmd.code):
        raise InvalidCommand([FieldError("code", f"must be {CODE_POLICY.digits} digits", "code_shape")])
    clock = runtime.clock
    now = clock.now()
    sent: SecretSent | None = None
    account: str | None = None
    async with runtime.db.transaction() as conn:
        found = await _find(conn, tools, identifier)
        subscriber = found[0] if found else None
        account = subscriber.account_number if subscriber else None
        state = await store.reset_code(conn, account) if account else None
        # First ask the domain whether the code could still work at all (no hash needed);
        # only then pay for the slow hash.
        _, probe = redeem_reset_code_rule(state, now=now, matches=lambda _: False)
        right = False
        if probe is Redemption.WRONG_CODE and state is not None:
            right = await tools.verify(state.code_hash, cmd.code)
        else:
            await tools.verify_decoy(cmd.code)  # every refusal costs what a wrong code does
        after, result = redeem_reset_code_rule(state, now=now, matches=lambda _: right)
        if account and after is not None and after != state:
            await store.save_reset_code(conn, account, after)
        if subscriber is not None and result is Redemption.ACCEPTED:
            redeemed = _envelope(ResetCodeRedeemed(account_number=subscriber.account_number),
                                 subscriber.account_number, clock)
            issued, sent = await _new_password_by_sms(
                conn, tools, clock, subscriber, PasswordPurpose.SMS_REISSUE, cause=redeemed
            )
            await store.save_throttle_state(
                conn, LOGIN_SCOPE, _login_subject(subscriber.account_number, source), ThrottleState()
            )
            await _stage(runtime, conn, [redeemed, issued])
        outcome = result.value if account else "unknown_account"
        acts = [store.Act(RESET_REDEEMED_ACT, outcome, account, source)]
        await store.record_acts(conn, acts, at=now)
    _counted(acts)
    if sent is None:
        log.info("reset code refused", account_number=account, outcome=outcome)
        raise ResetCodeRefused(result.value)
    runtime.relay.wake()
    log.info("reset code redeemed; new password sent", account_number=account)
    return sent


# --- support-assisted recovery ----------------------------------------------------------------


async def recover_by_support(
    runtime: ServiceRuntime, command: SupportRecoveryCommand | Mapping[str, Any]
) -> SecretSent:
    """An operator restores access: the caller's passport series, number and date of birth
    are checked against the stored keyed hash; on a match a new password goes by SMS and
    replaces the current one at once (the caller proved who they are; the old password may be
    what they lost), and every source's lockout from the account's login is lifted. Every attempt is recorded with the operator
    and the reason.

    A few wrong claims lock support recovery of the account for a day. Raises UnknownAccount,
    RecoveryRefused or TooManyRequests.
    """
    tools = _tools(runtime)
    cmd = _validate(SupportRecoveryCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    clock = runtime.clock
    now = clock.now()
    sent: SecretSent | None = None
    async with runtime.db.transaction() as conn:
        subscriber = await _find_one(conn, tools, identifier)
        account = subscriber.account_number
        state = await store.throttle_state(conn, SUPPORT_SCOPE, account)
        state, outcome = guarded_attempt(
            state, now=now, policy=SUPPORT_THROTTLE,
            verify=lambda: tools.vault.matches(
                subscriber.recovery_proof_hash, LookupKind.RECOVERY_PROOF, cmd.proof_text()
            ),
        )
        await store.save_throttle_state(conn, SUPPORT_SCOPE, account, state)
        await store.record_support_recovery(
            conn, account_number=account, operator=cmd.operator, reason=cmd.reason,
            outcome=outcome.result.value, at=now,
        )
        acts = [store.Act(SUPPORT_RECOVERY_ACT, outcome.result.value, account, detail=cmd.operator)]
        await store.record_acts(conn, acts, at=now)
        if outcome.accepted:
            issued, sent = await _new_password_by_sms(
                conn, tools, clock, subscriber, PasswordPurpose.SUPPORT_RECOVERY, replace_now=True
            )
            await store.drop_throttles(conn, LOGIN_SCOPE, subject_prefix=f"{account} ")  # every source
            restored = _envelope(
                AccessRestoredBySupport(account_number=account, operator=cmd.operator, reason=cmd.reason),
                account, clock, cause=issued,
            )
            await _stage(runtime, conn, [issued, restored])
    _counted(acts)
    log.info("support recovery", account_number=account, outcome=outcome.result.value)
    if sent is None:
        if outcome.result in (Attempt.LOCKED, Attempt.LOCK_STARTED):
            raise TooManyRequests(until=outcome.locked_until)
        raise RecoveryRefused()
    runtime.relay.wake()
    return sent


__all__ = [
    "LoggedIn",
    "LoginCommand",
    "RedeemResetCodeCommand",
    "Registered",
    "ReissuePasswordCommand",
    "ResetCodeRequestCommand",
    "SecretSent",
    "SupportRecoveryCommand",
    "login",
    "recover_by_support",
    "redeem_reset_code",
    "register",
    "reissue_password_by_sms",
    "request_reset_code",
]
