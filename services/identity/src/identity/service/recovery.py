"""Getting access back: a new password by SMS, a one-time code by SMS or e-mail, and support
after a passport check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.identity import (
    AccessRestoredBySupport,
    PasswordPurpose,
    ResetCodeRedeemed,
)
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.unit_of_work import UnitOfWork
from identity import store
from identity.commands import (
    RedeemResetCodeCommand,
    ReissuePasswordCommand,
    ResetCodeRequestCommand,
    SecretSent,
    SupportRecoveryCommand,
)
from identity.context import IdentityContext
from identity.domain import (
    CODE_POLICY,
    PASSWORD_POLICY,
    SUPPORT_THROTTLE,
    Attempt,
    AttemptOutcome,
    ContactMismatch,
    FieldError,
    IdentityError,
    InvalidCommand,
    LoginIdentifier,
    LookupKind,
    RecoveryRefused,
    Redemption,
    ResetCodeRefused,
    ThrottleState,
    TooManyFromAddress,
    TooManyRequests,
    UnknownAccount,
    email_lookup_text,
    guarded_attempt,
    issue_reset_code,
    validate_command,
)
from identity.domain import redeem_reset_code as redeem_reset_code_rule
from identity.security import generate_code, generate_password
from identity.service.sessions import SUPPORT_RECOVERY
from identity.service.steps import (
    LOGIN_SCOPE,
    PASSWORD_BY_SMS_ACT,
    RESET_REDEEMED_ACT,
    RESET_REQUESTED_ACT,
    RESET_REDEEM_SCOPE,
    SECRET_REQUEST_SCOPE,
    SUPPORT_RECOVERY_ACT,
    SUPPORT_SCOPE,
    account_request_refused,
    accounts_checked,
    contact_of,
    count_address_request,
    counted,
    find_subscribers,
    login_subject,
    new_password_by_sms,
    parse_login,
    secret_issued,
)

log = get_logger(__name__)

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
    TooManyRequests, after the same slow work as a request that sends a password (to as many
    accounts as a phone is checked for, :func:`accounts_checked`).
    """
    cmd = validate_command(ReissuePasswordCommand, command)
    identifier = parse_login(cmd.login)
    now = ctx.clock.now()

    address_refusal = await count_address_request(ctx, now, source)

    async def work(uow: UnitOfWork) -> _Reissue:
        reissue = _Reissue(address_refusal=address_refusal)
        candidates = [] if reissue.address_refusal else await open_subscribers(uow.conn, ctx, identifier)
        reissue.named = len(candidates)
        events = [await _reissue_to(uow.conn, ctx, subscriber, reissue, now, source) for subscriber in candidates]
        if reissue.address_refusal is not None:
            reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "address_throttled", source=source))
        else:
            if not candidates:
                reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "unknown_account", source=source))
            # As long as sending one to each account a phone may name, whatever was sent.
            for _ in range(accounts_checked(ctx, identifier) - len(reissue.sent)):
                await ctx.hash(generate_password(PASSWORD_POLICY))
        await store.record_acts(uow.conn, reissue.acts, at=now)
        uow.stage([issued for issued in events if issued is not None])
        return reissue

    reissue = await ctx.unit_of_work(work)
    counted(reissue.acts)
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
    refused = await account_request_refused(conn, SECRET_REQUEST_SCOPE, account, now)
    if refused is not None:
        reissue.refused_until.append(refused.locked_until or now)
        reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "account_throttled", account, source))
        return None
    issued, result = await new_password_by_sms(conn, ctx, subscriber, PasswordPurpose.SMS_REISSUE)
    reissue.sent.append(result)
    reissue.acts.append(store.Act(PASSWORD_BY_SMS_ACT, "sent", account, source))
    return issued


async def open_subscribers(conn: AsyncConnection, ctx: IdentityContext,
                           identifier: LoginIdentifier) -> list[store.Subscriber]:
    """The accounts a login names that may still get a password or a code: a closed one is
    answered as a number never issued (anonymous callers learn nothing of the closure)."""
    return [subscriber for subscriber in await find_subscribers(conn, ctx, identifier) if not subscriber.is_closed]


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
    identifier = parse_login(cmd.login, phone_allowed=False)
    if (cmd.phone is None) == (cmd.email is None):
        field_name = "phone" if cmd.phone is None else "email"
        raise InvalidCommand([FieldError(
            field_name, "give either the registered mobile number or the registered e-mail", "one_contact"
        )])
    channel: Literal["sms", "email"] = "sms" if cmd.phone is not None else "email"
    now = ctx.clock.now()

    address_refusal = await count_address_request(ctx, now, source)

    async def work(uow: UnitOfWork) -> tuple[IdentityError | SecretSent, store.Act]:
        account: str | None = None
        outcome: IdentityError | SecretSent | None = address_refusal
        if outcome is None:
            code = generate_code(CODE_POLICY)
            code_hash = await ctx.hash(code)  # whatever is found next: every answer costs the same
            refusal, subscriber = await _reset_code_for(uow.conn, ctx, now, identifier, cmd)
            account = subscriber.account_number if subscriber else None
            outcome = refusal
            if refusal is None:
                assert subscriber is not None
                outcome = await _send_reset_code(uow, ctx, subscriber, channel, code, code_hash, now)
        said = "sent" if isinstance(outcome, SecretSent) else _REQUEST_OUTCOMES[type(outcome)]
        act = store.Act(RESET_REQUESTED_ACT, said, account, source, detail=channel)
        await store.record_acts(uow.conn, [act], at=now)
        return outcome, act

    outcome, act = await ctx.unit_of_work(work)
    counted([act])
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
    uow: UnitOfWork, ctx: IdentityContext, subscriber: store.Subscriber, channel: Literal["sms", "email"],
    code: str, code_hash: str, now: datetime,
) -> SecretSent:
    """The code replaces the account's earlier one and goes to the registered phone or e-mail."""
    account = subscriber.account_number
    contact = contact_of(ctx, subscriber)
    reset = issue_reset_code(code_hash, now=now, policy=ctx.settings.reset_code_policy)
    await store.save_reset_code(uow.conn, account, reset)
    destination = contact.phone if channel == "sms" else cast(str, contact.email)
    issued, sent = secret_issued(
        ctx, account_number=account, purpose=PasswordPurpose.RESET_CODE,
        channel=channel, destination=destination, secret=code, expires_at=reset.expires_at,
    )
    uow.stage([issued])
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
    found = await open_subscribers(conn, ctx, identifier)
    if not found:
        return UnknownAccount(), None
    subscriber = found[0]
    refused = await account_request_refused(conn, SECRET_REQUEST_SCOPE, subscriber.account_number, now)
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

    Wrong guesses are counted; the code dies after the configured number of them. Every attempt
    counts on the client address's throttle (``source``) and on the account's (attempts from all
    addresses, under the account number named, whether or not it exists); a throttled attempt
    is refused unchecked. Raises TooManyFromAddress, TooManyRequests or ResetCodeRefused
    (reason: wrong_code, expired, already_used, too_many_guesses, no_code; no_code too for an
    account that does not exist).
    """
    cmd = validate_command(RedeemResetCodeCommand, command)
    identifier = parse_login(cmd.login, phone_allowed=False)
    if not CODE_POLICY.admits(cmd.code):
        raise InvalidCommand([FieldError("code", f"must be {CODE_POLICY.digits} digits", "code_shape")])
    now = ctx.clock.now()
    address_refusal = await count_address_request(ctx, now, source)

    async def work(uow: UnitOfWork) -> tuple[Redemption | IdentityError, SecretSent | None, store.Act]:
        outcome = await _redemption(uow, ctx, identifier, cmd.code, now, source, address_refusal)
        await store.record_acts(uow.conn, [outcome[2]], at=now)
        return outcome

    result, sent, act = await ctx.unit_of_work(work)
    counted([act])
    if sent is None:
        log.info("reset code refused", account_number=act.account_number, outcome=act.outcome)
        raise result if isinstance(result, IdentityError) else ResetCodeRefused(result.value)
    log.info("reset code redeemed; new password sent", account_number=act.account_number)
    return sent


async def _redemption(
    uow: UnitOfWork, ctx: IdentityContext, identifier: LoginIdentifier, code: str, now: datetime,
    source: str | None, address_refusal: TooManyFromAddress | None,
) -> tuple[Redemption | IdentityError, SecretSent | None, store.Act]:
    """What came of one attempt (a throttle's refusal, or what the domain said of the code),
    the new password sent if the code worked, and the act to audit."""
    if address_refusal is not None:
        return address_refusal, None, store.Act(RESET_REDEEMED_ACT, "address_throttled", source=source)
    found = await open_subscribers(uow.conn, ctx, identifier)  # a code sent before the closure works no more
    subscriber = found[0] if found else None
    account = subscriber.account_number if subscriber else None
    named = account or identifier.value  # counted alike whether or not it exists
    refused = await account_request_refused(uow.conn, RESET_REDEEM_SCOPE, named, now, ctx.settings.redeem_account_throttle)
    if refused is not None:
        throttled = TooManyRequests(until=refused.locked_until)
        return throttled, None, store.Act(RESET_REDEEMED_ACT, "account_throttled", account, source)
    result = await _redeem(uow.conn, ctx, account, code, now)
    sent = None
    if subscriber is not None and result is Redemption.ACCEPTED:
        sent = await _after_redemption(uow, ctx, subscriber, source)
    return result, sent, store.Act(RESET_REDEEMED_ACT, result.value if account else "unknown_account", account, source)


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
    uow: UnitOfWork, ctx: IdentityContext, subscriber: store.Subscriber, source: str | None
) -> SecretSent:
    """A code redeemed: a new password by SMS, and the redeemer's own lockout lifted."""
    account = subscriber.account_number
    redeemed = ctx.envelope(ResetCodeRedeemed(account_number=account), account=account)
    issued, sent = await new_password_by_sms(uow.conn, ctx, subscriber, PasswordPurpose.SMS_REISSUE, cause=redeemed)
    await store.save_throttle_state(uow.conn, LOGIN_SCOPE, login_subject(account, source), ThrottleState())
    uow.stage([redeemed, issued])
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
    identifier = parse_login(cmd.login, phone_allowed=False)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> tuple[AttemptOutcome, SecretSent | None, store.Act]:
        found = await open_subscribers(uow.conn, ctx, identifier)
        if not found:
            raise UnknownAccount()
        subscriber = found[0]
        outcome = await _check_recovery_claim(uow.conn, ctx, subscriber, cmd, now)
        act = store.Act(SUPPORT_RECOVERY_ACT, outcome.result.value, subscriber.account_number, detail=cmd.operator)
        await store.record_acts(uow.conn, [act], at=now)
        sent = await _restore_access(uow, ctx, subscriber, cmd) if outcome.accepted else None
        return outcome, sent, act

    outcome, sent, act = await ctx.unit_of_work(work)
    counted([act])
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
    uow: UnitOfWork, ctx: IdentityContext, subscriber: store.Subscriber, cmd: SupportRecoveryCommand
) -> SecretSent:
    """A new password at once, by SMS, and every source's lockout from the login lifted."""
    account = subscriber.account_number
    issued, sent = await new_password_by_sms(
        uow.conn, ctx, subscriber, PasswordPurpose.SUPPORT_RECOVERY, replace_now=True
    )
    await store.drop_throttles(uow.conn, LOGIN_SCOPE, subject_prefix=f"{account} ")  # every source
    # Whoever lost access may have lost it to someone signed in: every sign-in ends.
    await store.revoke_sessions(uow.conn, account, why=SUPPORT_RECOVERY, at=ctx.clock.now())
    restored = ctx.envelope(
        AccessRestoredBySupport(account_number=account, operator=cmd.operator, reason=cmd.reason),
        account=account, cause=issued,
    )
    uow.stage([issued, restored])
    return sent


