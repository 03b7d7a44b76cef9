"""The identity service's commands: one async function of (context, command) each.

Every command validates its input first (an invalid command raises :class:`InvalidCommand`
with one error per field and changes nothing), then opens one transaction: it loads the
account (locked on PostgreSQL, so one command per account runs at a time), asks the domain,
writes the state change and stages the outgoing events in the outbox, and wakes the relay
after the commit. A refusal that must still be remembered (a failed login, a wrong code) is
committed first and raised after.

Secrets never travel in clear: passwords and codes go out in :class:`PasswordIssued` sealed for
the notifier; contact details go out in :class:`SubscriberRegistered` sealed the same way,
beside masked forms. Passport data never leaves this service. Slow hashes run in a worker
thread (:class:`identity.context.IdentityContext`).

Asking for a password never takes one away: a password sent on request waits beside the
current one (:mod:`identity.domain.pending`) until it is first used. The requests anyone can
make (a password by SMS, a reset code) take a client ``source`` address: they are throttled
per address and per account, do the same slow hashing whatever they find, and every one is
written to the audit (``store.audit``) and counted with what really came of it, since the
public answer does not say.
"""


from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.catalog.identity import (
    AccessRestoredBySupport,
    LoginLocked,
    PasswordIssued,
    PasswordPurpose,
    PasswordReplaced,
    ResetCodeRedeemed,
    SubscriberRegistered,
)
from billing_events.db import Database
from billing_events.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.sealing import seal
from identity import store
from identity.commands import (
    LoggedIn,
    LoginCommand,
    RedeemResetCodeCommand,
    Registered,
    ReissuePasswordCommand,
    ResetCodeRequestCommand,
    SecretSent,
    SupportRecoveryCommand,
)
from identity.context import IdentityContext, bound_to
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
    RecoveryRefused,
    Redemption,
    Registration,
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
from identity.security import PersonalDataVault, generate_code, generate_password

log = get_logger(__name__)

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


# --- shared steps -----------------------------------------------------------------------------


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


async def reencrypt_personal_data(db: Database, vault: PersonalDataVault, *, batch_size: int) -> AsyncIterator[int]:
    """Re-encrypt, under the vault's current key, every subscriber's personal data that an older
    key wrote: one transaction per batch, yielding each batch's size. What the current key wrote
    is skipped, so a run that stopped is finished by running again; the previous keys may go
    once a run finds nothing."""
    after = ""
    while True:
        async with db.transaction() as conn:
            found = await store.encrypted_not_under(conn, vault.current_key_id, after=after, limit=batch_size)
            for data in found:
                account = data.account_number
                await store.replace_encrypted(conn, store.EncryptedData(account, {
                    kind: vault.reencrypt(token, bound_to=bound_to(account, kind)) for kind, token in data.by_kind.items()
                }))
        if not found:
            return
        after = found[-1].account_number
        yield len(found)


@dataclass(frozen=True)
class _Contact:
    phone: str
    email: str | None


def _contact(ctx: IdentityContext, subscriber: store.Subscriber) -> _Contact:
    data = ctx.decrypt(subscriber.account_number, "contact", subscriber.contact_encrypted)
    return _Contact(phone=data["phone"], email=data.get("email"))


def _secret_issued(
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


async def _new_password_by_sms(
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
    return _secret_issued(
        ctx, account_number=account, purpose=purpose, channel="sms",
        destination=_contact(ctx, subscriber).phone, secret=password, cause=cause,
    )


async def _address_refusal(
    conn: AsyncConnection, ctx: IdentityContext, now: datetime, source: str | None
) -> TooManyFromAddress | None:
    """Count one anonymous request from ``source``; the refusal once the address had its share.

    Checked before anything is looked up, so the answer is the same whoever the request names.
    """
    if source is None:  # not from outside (the CLI, an operator's tool, a test)
        return None
    state = await store.throttle_state(conn, ADDRESS_SCOPE, source)
    state, outcome = rate_limited_request(state, now=now, policy=ctx.settings.address_throttle)
    if not outcome.accepted:
        return TooManyFromAddress(until=outcome.locked_until)
    await store.save_throttle_state(conn, ADDRESS_SCOPE, source, state)
    return None


async def _account_request_refused(
    conn: AsyncConnection, scope: str, account: str, now: datetime
) -> AttemptOutcome | None:
    """Count one request for a password or a code on the account's throttle of ``scope``; the
    refused outcome once the account had its share (then nothing is counted)."""
    state = await store.throttle_state(conn, scope, account)
    state, outcome = rate_limited_request(state, now=now, policy=RESET_REQUEST_THROTTLE)
    if not outcome.accepted:
        return outcome
    await store.save_throttle_state(conn, scope, account, state)
    return None


def _counted(acts: list[store.Act]) -> None:
    """After the commit: the metrics say what the audit rows say."""
    for act in acts:
        SENSITIVE_ACTS.labels(act.act, act.outcome).inc()


# --- registration -----------------------------------------------------------------------------


def _new_subscriber(
    ctx: IdentityContext, registration: Registration, *, sequence: int, password_hash: str, now: datetime
) -> store.NewSubscriber:
    """The registration as stored: what finds the subscriber hashed, what is read back encrypted."""
    vault, phone, email = ctx.vault, registration.mobile_phone, registration.email
    account = account_number_from_sequence(sequence)
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
    return store.NewSubscriber(
        account_number=account,
        sequence=sequence,
        contract_number=contract_number(sequence, now.date()),
        region=registration.region,
        legal_status=registration.legal_status.value,
        language=registration.language,
        passport_hash=vault.lookup_hash(LookupKind.PASSPORT, registration.passport_text()),
        phone_hash=vault.lookup_hash(LookupKind.PHONE, phone),
        email_hash=vault.lookup_hash(LookupKind.EMAIL, email_lookup_text(email)) if email else None,
        recovery_proof_hash=vault.lookup_hash(LookupKind.RECOVERY_PROOF, registration.recovery_proof_text()),
        encrypted={
            "passport": ctx.encrypt(account, "passport", passport),
            "personal": ctx.encrypt(account, "personal", personal),
            "contact": ctx.encrypt(account, "contact", {"phone": phone, "email": email}),
        },
        password_hash=password_hash,
        registered_at=now,
    )


def _registered(ctx: IdentityContext, registration: Registration, new: store.NewSubscriber) -> Envelope[Any]:
    phone, email = registration.mobile_phone, registration.email
    return ctx.envelope(SubscriberRegistered(
        account_number=new.account_number,
        contract_number=new.contract_number,
        region=registration.region,
        legal_status=registration.legal_status,
        language=registration.language,
        masked_phone=mask_phone(phone),
        masked_email=mask_email(email) if email else None,
        sealed_contact=seal(ctx.settings.notifier_public_key, {"phone": phone, "email": email}),
    ), account=new.account_number)


async def register(ctx: IdentityContext, command: RegistrationCommand | Mapping[str, Any]) -> Registered:
    """Open a personal account: allocate the account and contract numbers, store the
    subscriber's data protected, issue the initial password.

    Publishes SubscriberRegistered (contacts sealed + masked, no passport data) and
    PasswordIssued(initial). Raises InvalidCommand (field errors) or PassportAlreadyRegistered.
    """
    now = ctx.clock.now()
    registration = validate_registration(command, now=now, regions=ctx.settings.regions)
    passport_hash = ctx.vault.lookup_hash(LookupKind.PASSPORT, registration.passport_text())
    password = generate_password(PASSWORD_POLICY)
    password_hash = await ctx.hash(password)

    async def work(conn: AsyncConnection) -> store.NewSubscriber:
        if await store.passport_registered(conn, passport_hash):
            raise PassportAlreadyRegistered()
        sequence = await store.next_account_sequence(conn)
        new = _new_subscriber(ctx, registration, sequence=sequence, password_hash=password_hash, now=now)
        await store.add_subscriber(conn, new)
        registered = _registered(ctx, registration, new)
        issued, _ = _secret_issued(
            ctx, account_number=new.account_number, purpose=PasswordPurpose.INITIAL,
            channel="sms", destination=registration.mobile_phone, secret=password, cause=registered,
        )
        await ctx.stage(conn, [registered, issued])
        await store.record_acts(conn, [_initial_password_act(new)], at=now)
        return new

    try:
        new = await ctx.unit_of_work(work)
    except IntegrityError:
        # Two registrations of one passport raced; the unique index let one through.
        async with ctx.db.connect() as conn:
            if await store.passport_registered(conn, passport_hash):
                raise PassportAlreadyRegistered() from None
        raise
    _counted([_initial_password_act(new)])
    log.info("subscriber registered", account_number=new.account_number, region=registration.region,
             legal_status=registration.legal_status.value)
    return Registered(account_number=new.account_number, contract_number=new.contract_number)


def _initial_password_act(new: store.NewSubscriber) -> store.Act:
    return store.Act(PASSWORD_ISSUED_ACT, PasswordPurpose.INITIAL.value, new.account_number)


# --- login ------------------------------------------------------------------------------------


@dataclass
class _LoginCheck:
    """One login attempt inside its transaction: the accounts it is counted under (``keys``: the
    subscribers named, or the nobody key), what held it back, what came of it."""

    subscribers: dict[str, store.Subscriber]
    keys: list[str]
    address: ThrottleState
    guards: dict[str, LoginGuard]
    locked_until: dict[str, datetime]
    """Per key: the end of the lock that refused the attempt unchecked, or that it started."""
    checked: list[str]
    """The keys whose password was checked (not refused unchecked)."""
    matched: store.Subscriber | None = None
    used_pending: PendingPassword | None = None
    events: list[Envelope[Any]] = field(default_factory=list)
    acts: list[store.Act] = field(default_factory=list)


async def login(
    ctx: IdentityContext, command: LoginCommand | Mapping[str, Any], *, source: str | None = None
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
    cmd = validate_command(LoginCommand, command)
    identifier = _identifier(cmd.login)
    now = ctx.clock.now()
    policy = ctx.settings.login_policy

    async def work(conn: AsyncConnection) -> _LoginCheck:
        check = await _login_check(conn, ctx, identifier, source, now, policy)
        await _try_passwords(conn, ctx, check, cmd.password, now)
        await _count_login(conn, ctx, check, source, now, policy)
        if check.matched is not None:
            await _settle_password(conn, ctx, check, check.matched, cmd.password, now)
        await ctx.stage(conn, check.events)
        await store.record_acts(conn, check.acts, at=now)
        return check

    check = await ctx.unit_of_work(work)
    _counted(check.acts)
    if check.matched is not None:
        return LoggedIn(account_number=check.matched.account_number, contract_number=check.matched.contract_number)
    address = check.address
    locks = [*check.locked_until.values(), *([address.locked_until] if address.locked_until else [])]
    locked = address.is_locked(now) or len(check.locked_until) == len(check.keys)
    log.info("login refused", login_kind=identifier.kind.value, accounts=len(check.subscribers), locked=locked)
    if locked:
        raise LoginIsLocked(until=max(locks))
    raise LoginRefused()


async def _login_check(
    conn: AsyncConnection, ctx: IdentityContext, identifier: LoginIdentifier, source: str | None,
    now: datetime, policy: LoginPolicy,
) -> _LoginCheck:
    """Who the login names, and which of them it may be checked against now."""
    subscribers = {found.account_number: found for found in await _find(conn, ctx, identifier)}
    keys = list(subscribers) or [_nobody_key(ctx, identifier)]
    address = ThrottleState()
    if source is not None:
        address = await store.throttle_state(conn, LOGIN_ADDRESS_SCOPE, source)
    guards = {key: await _login_guard(conn, key, source) for key in keys}
    refused = {key: guards[key].refused_until(now, address, policy) for key in keys}
    return _LoginCheck(
        subscribers=subscribers, keys=keys, address=address, guards=guards,
        locked_until={key: until for key, until in refused.items() if until is not None},
        checked=[key for key in keys if refused[key] is None],
    )


async def _try_passwords(
    conn: AsyncConnection, ctx: IdentityContext, check: _LoginCheck, password: str, now: datetime
) -> None:
    """Check the password against each subscriber named and not locked: the current password,
    then a usable pending one. Naming nobody costs the same slow check."""
    if check.checked and not check.subscribers:
        await ctx.verify_decoy(password)
    for account, candidate in check.subscribers.items():
        if account not in check.checked:
            continue
        if await ctx.verify(candidate.password_hash, password):
            check.matched = candidate
            return
        pending = await store.pending_password(conn, account)
        if pending is not None and pending.usable(now) and await ctx.verify(pending.password_hash, password):
            check.matched, check.used_pending = candidate, pending
            return


async def _count_login(
    conn: AsyncConnection, ctx: IdentityContext, check: _LoginCheck, source: str | None,
    now: datetime, policy: LoginPolicy,
) -> None:
    """Record the attempt on the guards of the keys it was checked under, and a failure on the
    source's own count over all accounts."""
    matched = check.matched
    for key in check.checked:
        if matched is not None and key != matched.account_number:
            continue  # another account on the same phone: this attempt was not about it
        guard, outcome = record_login(check.guards[key], now=now, right=matched is not None, policy=policy)
        await _save_login_guard(conn, key, source, guard)
        if outcome.locked_until is not None:
            check.locked_until[key] = outcome.locked_until
        if outcome.lock_started:
            check.events += await _login_locked(conn, ctx, check.subscribers.get(key), outcome, policy, source,
                                                check.acts)
    if matched is None and check.checked and source is not None:
        check.address = check.address.count(now, policy.per_address)
        await store.save_throttle_state(conn, LOGIN_ADDRESS_SCOPE, source, check.address)
        if check.address.is_locked(now):
            check.acts.append(store.Act(LOGIN_LOCKED_ACT, "address_locked", source=source))


async def _settle_password(
    conn: AsyncConnection, ctx: IdentityContext, check: _LoginCheck, matched: store.Subscriber,
    password: str, now: datetime,
) -> None:
    """A pending password used for the first time becomes the account's password; a password
    hashed with other parameters than today's is hashed again."""
    account = matched.account_number
    password_hash = matched.password_hash
    used = check.used_pending
    if used is not None:
        password_hash = used.password_hash
        await store.set_password(conn, account, password_hash, at=now)
        await store.drop_pending_password(conn, account)
        check.events.append(ctx.envelope(PasswordReplaced(account_number=account, purpose=used.purpose),
                                         account=account))
        check.acts.append(store.Act(PASSWORD_REPLACED_ACT, used.purpose.value, account))
    if ctx.hasher.needs_rehash(password_hash):
        await store.set_password(conn, account, await ctx.hash(password), at=now)


def _nobody_key(ctx: IdentityContext, identifier: LoginIdentifier) -> str:
    """What failed logins naming nobody are counted under: the account number named (a contract
    number's too), or for a phone a short keyed hash of it (never the number itself)."""
    return identifier.account_number or "phone:" + ctx.vault.lookup_hash(LookupKind.PHONE, identifier.value)[:24]


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
    ctx: IdentityContext,
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
    notice, told = rate_limited_request(notice, now=ctx.clock.now(), policy=policy.notice)
    if not told.accepted:
        return []
    await store.save_throttle_state(conn, LOGIN_NOTICE_SCOPE, account, notice)
    locked = LoginLocked(account_number=account, locked_until=outcome.locked_until,
                         failed_attempts=policy.per_source.threshold)
    return [ctx.envelope(locked, account=account)]


# --- passwords by SMS -------------------------------------------------------------------------


@dataclass
class _Reissue:
    """What a request for a password by SMS came to, inside its transaction."""

    address_refusal: TooManyFromAddress | None = None
    named: int = 0
    sent: list[SecretSent] = field(default_factory=list)
    refused_until: list[datetime] = field(default_factory=list)
    acts: list[store.Act] = field(default_factory=list)


async def reissue_password_by_sms(
    ctx: IdentityContext,
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
    cmd = validate_command(ReissuePasswordCommand, command)
    identifier = _identifier(cmd.login)
    now = ctx.clock.now()

    async def work(conn: AsyncConnection) -> _Reissue:
        reissue = _Reissue(address_refusal=await _address_refusal(conn, ctx, now, source))
        candidates = [] if reissue.address_refusal else await _find(conn, ctx, identifier)
        reissue.named = len(candidates)
        events = [await _reissue_to(conn, ctx, subscriber, reissue, now, source) for subscriber in candidates]
        if reissue.address_refusal is not None:
            reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "address_throttled", source=source))
        elif not reissue.sent:
            if not candidates:
                reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "unknown_account", source=source))
            await ctx.hash(generate_password(PASSWORD_POLICY))  # as long as sending one
        await store.record_acts(conn, reissue.acts, at=now)
        await ctx.stage(conn, [issued for issued in events if issued is not None])
        return reissue

    reissue = await ctx.unit_of_work(work)
    _counted(reissue.acts)
    if reissue.address_refusal is not None:
        raise reissue.address_refusal
    if not reissue.named:
        raise UnknownAccount()
    if not reissue.sent:
        raise TooManyRequests(until=min(reissue.refused_until))
    for result in reissue.sent:
        log.info("password sent by sms", account_number=result.account_number)
    return reissue.sent


async def _reissue_to(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, reissue: _Reissue,
    now: datetime, source: str | None,
) -> Envelope[Any] | None:
    """A new password by SMS for one account, unless its own throttle holds the request back."""
    account = subscriber.account_number
    refused = await _account_request_refused(conn, SMS_REISSUE_SCOPE, account, now)
    if refused is not None:
        reissue.refused_until.append(refused.locked_until or now)
        reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "account_throttled", account, source))
        return None
    issued, result = await _new_password_by_sms(conn, ctx, subscriber, PasswordPurpose.SMS_REISSUE)
    reissue.sent.append(result)
    reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "sent", account, source))
    return issued


# --- forgot password: one-time codes ----------------------------------------------------------


async def request_reset_code(
    ctx: IdentityContext,
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
    cmd = validate_command(ResetCodeRequestCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    if (cmd.phone is None) == (cmd.email is None):
        field_name = "phone" if cmd.phone is None else "email"
        raise InvalidCommand([FieldError(
            field_name, "give either the registered mobile number or the registered e-mail", "one_contact"
        )])
    channel: Literal["sms", "email"] = "sms" if cmd.phone is not None else "email"
    now = ctx.clock.now()

    async def work(conn: AsyncConnection) -> tuple[IdentityError | SecretSent, store.Act]:
        account: str | None = None
        outcome: IdentityError | SecretSent | None = await _address_refusal(conn, ctx, now, source)
        if outcome is None:
            code = generate_code(CODE_POLICY)
            code_hash = await ctx.hash(code)  # whatever is found next: every answer costs the same
            refusal, subscriber = await _reset_code_for(conn, ctx, now, identifier, cmd)
            account = subscriber.account_number if subscriber else None
            outcome = refusal
            if refusal is None:
                assert subscriber is not None
                outcome = await _send_reset_code(conn, ctx, subscriber, channel, code, code_hash, now)
        said = "sent" if isinstance(outcome, SecretSent) else _REQUEST_OUTCOMES[type(outcome)]
        act = store.Act(RESET_REQUESTED_ACT, said, account, source, detail=channel)
        await store.record_acts(conn, [act], at=now)
        return outcome, act

    outcome, act = await ctx.unit_of_work(work)
    _counted([act])
    if not isinstance(outcome, SecretSent):
        log.info("reset code not sent", account_number=act.account_number, outcome=act.outcome)
        raise outcome
    log.info("reset code sent", account_number=act.account_number, channel=channel)
    return outcome


_REQUEST_OUTCOMES: dict[type[IdentityError], str] = {
    TooManyFromAddress: "address_throttled",
    UnknownAccount: "unknown_account",
    TooManyRequests: "account_throttled",
    ContactMismatch: "contact_mismatch",
}


async def _send_reset_code(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, channel: Literal["sms", "email"],
    code: str, code_hash: str, now: datetime,
) -> SecretSent:
    """The code replaces the account's earlier one and goes to the registered phone or e-mail."""
    account = subscriber.account_number
    contact = _contact(ctx, subscriber)
    reset = issue_reset_code(code_hash, now=now, policy=ctx.settings.reset_code_policy)
    await store.save_reset_code(conn, account, reset)
    destination = contact.phone if channel == "sms" else cast(str, contact.email)
    issued, sent = _secret_issued(
        ctx, account_number=account, purpose=PasswordPurpose.RESET_CODE,
        channel=channel, destination=destination, secret=code, expires_at=reset.expires_at,
    )
    await ctx.stage(conn, [issued])
    return sent


async def _reset_code_for(
    conn: AsyncConnection,
    ctx: IdentityContext,
    now: datetime,
    identifier: LoginIdentifier,
    cmd: ResetCodeRequestCommand,
) -> tuple[IdentityError | None, store.Subscriber | None]:
    """Why no code may go to the account named (None: it may), and the subscriber if found.

    Counts the request on the account's throttle, whether the contact matches or not."""
    found = await _find(conn, ctx, identifier)
    if not found:
        return UnknownAccount(), None
    subscriber = found[0]
    refused = await _account_request_refused(conn, RESET_REQUEST_SCOPE, subscriber.account_number, now)
    if refused is not None:
        return TooManyRequests(until=refused.locked_until), subscriber
    if cmd.phone is not None:
        if not ctx.vault.matches(subscriber.phone_hash, LookupKind.PHONE, cmd.phone):
            return ContactMismatch("phone"), subscriber
    else:
        assert cmd.email is not None
        email_matches = subscriber.email_hash is not None and ctx.vault.matches(
            subscriber.email_hash, LookupKind.EMAIL, email_lookup_text(cmd.email)
        )
        if not email_matches:
            return ContactMismatch("email"), subscriber
    return None, subscriber


async def redeem_reset_code(
    ctx: IdentityContext,
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
    cmd = validate_command(RedeemResetCodeCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    if not CODE_POLICY.admits(cmd.code):
        raise InvalidCommand([FieldError("code", f"must be {CODE_POLICY.digits} digits", "code_shape")])
    now = ctx.clock.now()

    async def work(conn: AsyncConnection) -> tuple[Redemption, SecretSent | None, store.Act]:
        found = await _find(conn, ctx, identifier)
        subscriber = found[0] if found else None
        account = subscriber.account_number if subscriber else None
        result = await _redeem(conn, ctx, account, cmd.code, now)
        sent = None
        if subscriber is not None and result is Redemption.ACCEPTED:
            sent = await _after_redemption(conn, ctx, subscriber, source)
        act = store.Act(RESET_REDEEMED_ACT, result.value if account else "unknown_account", account, source)
        await store.record_acts(conn, [act], at=now)
        return result, sent, act

    result, sent, act = await ctx.unit_of_work(work)
    _counted([act])
    if sent is None:
        log.info("reset code refused", account_number=act.account_number, outcome=act.outcome)
        raise ResetCodeRefused(result.value)
    log.info("reset code redeemed; new password sent", account_number=act.account_number)
    return sent


async def _redeem(
    conn: AsyncConnection, ctx: IdentityContext, account: str | None, code: str, now: datetime
) -> Redemption:
    """What the domain says of the code given for ``account`` (None: nobody's), wrong guesses
    counted. Every answer costs one slow hash."""
    state = await store.reset_code(conn, account) if account else None
    # First ask the domain whether the code could still work at all (no hash needed);
    # only then pay for the slow hash.
    _, probe = redeem_reset_code_rule(state, now=now, matches=lambda _: False)
    right = False
    if probe is Redemption.WRONG_CODE and state is not None:
        right = await ctx.verify(state.code_hash, code)
    else:
        await ctx.verify_decoy(code)  # every refusal costs what a wrong code does
    after, result = redeem_reset_code_rule(state, now=now, matches=lambda _: right)
    if account and after is not None and after != state:
        await store.save_reset_code(conn, account, after)
    return result


async def _after_redemption(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, source: str | None
) -> SecretSent:
    """A code redeemed: a new password by SMS, and the redeemer's own lockout lifted."""
    account = subscriber.account_number
    redeemed = ctx.envelope(ResetCodeRedeemed(account_number=account), account=account)
    issued, sent = await _new_password_by_sms(conn, ctx, subscriber, PasswordPurpose.SMS_REISSUE, cause=redeemed)
    await store.save_throttle_state(conn, LOGIN_SCOPE, _login_subject(account, source), ThrottleState())
    await ctx.stage(conn, [redeemed, issued])
    return sent


# --- support-assisted recovery ----------------------------------------------------------------


async def recover_by_support(
    ctx: IdentityContext, command: SupportRecoveryCommand | Mapping[str, Any]
) -> SecretSent:
    """An operator restores access: the caller's passport series, number and date of birth
    are checked against the stored keyed hash; on a match a new password goes by SMS and
    replaces the current one at once (the caller proved who they are; the old password may be
    what they lost), and every source's lockout from the account's login is lifted. Every
    attempt is recorded with the operator and the reason.

    A few wrong claims lock support recovery of the account for a day. Raises UnknownAccount,
    RecoveryRefused or TooManyRequests.
    """
    cmd = validate_command(SupportRecoveryCommand, command)
    identifier = _identifier(cmd.login, phone_allowed=False)
    now = ctx.clock.now()

    async def work(conn: AsyncConnection) -> tuple[AttemptOutcome, SecretSent | None, store.Act]:
        found = await _find(conn, ctx, identifier)
        if not found:
            raise UnknownAccount()
        subscriber = found[0]
        outcome = await _check_recovery_claim(conn, ctx, subscriber, cmd, now)
        act = store.Act(SUPPORT_RECOVERY_ACT, outcome.result.value, subscriber.account_number, detail=cmd.operator)
        await store.record_acts(conn, [act], at=now)
        sent = await _restore_access(conn, ctx, subscriber, cmd) if outcome.accepted else None
        return outcome, sent, act

    outcome, sent, act = await ctx.unit_of_work(work)
    _counted([act])
    log.info("support recovery", account_number=act.account_number, outcome=outcome.result.value)
    if sent is None:
        if outcome.result in (Attempt.LOCKED, Attempt.LOCK_STARTED):
            raise TooManyRequests(until=outcome.locked_until)
        raise RecoveryRefused()
    return sent


async def _check_recovery_claim(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, cmd: SupportRecoveryCommand,
    now: datetime,
) -> AttemptOutcome:
    """Check the passport data against the stored keyed hash, on the account's support throttle;
    the attempt is recorded with the operator and the reason whatever came of it."""
    account = subscriber.account_number
    state = await store.throttle_state(conn, SUPPORT_SCOPE, account)
    state, outcome = guarded_attempt(
        state, now=now, policy=SUPPORT_THROTTLE,
        verify=lambda: ctx.vault.matches(subscriber.recovery_proof_hash, LookupKind.RECOVERY_PROOF, cmd.proof_text()),
    )
    await store.save_throttle_state(conn, SUPPORT_SCOPE, account, state)
    await store.record_support_recovery(
        conn, account_number=account, operator=cmd.operator, reason=cmd.reason,
        outcome=outcome.result.value, at=now,
    )
    return outcome


async def _restore_access(
    conn: AsyncConnection, ctx: IdentityContext, subscriber: store.Subscriber, cmd: SupportRecoveryCommand
) -> SecretSent:
    """A new password at once, by SMS, and every source's lockout from the login lifted."""
    account = subscriber.account_number
    issued, sent = await _new_password_by_sms(
        conn, ctx, subscriber, PasswordPurpose.SUPPORT_RECOVERY, replace_now=True
    )
    await store.drop_throttles(conn, LOGIN_SCOPE, subject_prefix=f"{account} ")  # every source
    restored = ctx.envelope(
        AccessRestoredBySupport(account_number=account, operator=cmd.operator, reason=cmd.reason),
        account=account, cause=issued,
    )
    await ctx.stage(conn, [issued, restored])
    return sent


__all__ = [
    "login",
    "recover_by_support",
    "redeem_reset_code",
    "register",
    "reissue_password_by_sms",
    "request_reset_code",
]
