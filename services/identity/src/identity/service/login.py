"""Login: the password or a pending one, and the lockouts of whoever guesses wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.identity import LoginLocked, PasswordReplaced
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.unit_of_work import UnitOfWork
from identity import store
from identity.commands import LoggedIn, LoginCommand
from identity.context import IdentityContext
from identity.domain import (
    AccountIsClosed,
    AttemptOutcome,
    LoginGuard,
    LoginIdentifier,
    LoginIsLocked,
    LoginPolicy,
    LoginRefused,
    LookupKind,
    PendingPassword,
    ThrottleState,
    rate_limited_request,
    record_login,
    validate_command,
)
from identity.service.steps import (
    LOGIN_ADDRESS_SCOPE,
    LOGIN_LOCKED_ACT,
    LOGIN_NOTICE_SCOPE,
    LOGIN_SCOPE,
    LOGIN_SIEGE_SCOPE,
    PASSWORD_REPLACED_ACT,
    accounts_checked,
    counted,
    find_subscribers,
    login_subject,
    parse_login,
)

log = get_logger(__name__)


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
    its first use makes it the account's password (PasswordReplaced). The right password of an
    account the ledger closed is refused in words (AccountIsClosed).

    Wrong passwords lock out their source (the client address ``source``; commands called from
    inside are one source), never the owner: per account and source, per source over all
    accounts, and a siege ceiling per account (:class:`identity.domain.LoginPolicy`). A lock
    of a source out of an account publishes LoginLocked, once per lock period of the account.
    Locked attempts are refused unchecked. Failures naming nobody are counted the same way
    (under the account number they name), so the answers are the same whether or not the
    account exists. Raises LoginRefused, LoginIsLocked or AccountIsClosed.
    """
    cmd = validate_command(LoginCommand, command)
    identifier = parse_login(cmd.login)
    now = ctx.clock.now()
    policy = ctx.settings.login_policy

    async def work(uow: UnitOfWork) -> _LoginCheck:
        check = await _login_check(uow.conn, ctx, identifier, source, now, policy)
        await _try_passwords(uow.conn, ctx, check, cmd.password, now, accounts_checked(ctx, identifier))
        await _count_login(uow.conn, ctx, check, source, now, policy)
        if check.matched is not None:
            await _settle_password(uow.conn, ctx, check, check.matched, cmd.password, now)
        uow.stage(check.events)
        await store.record_acts(uow.conn, check.acts, at=now)
        return check

    check = await ctx.unit_of_work(work)
    counted(check.acts)
    if check.matched is not None and check.matched.is_closed:
        log.info("login refused", login_kind=identifier.kind.value, accounts=len(check.subscribers), closed=True)
        raise AccountIsClosed()
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
    subscribers = {found.account_number: found for found in await find_subscribers(conn, ctx, identifier)}
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
    conn: AsyncConnection, ctx: IdentityContext, check: _LoginCheck, password: str, now: datetime,
    accounts: int,
) -> None:
    """Check the password against each subscriber named and not locked: the current password,
    then a usable pending one; stop at the first that matches.

    A failure costs the same slow work whoever the login names: two checks (a password and a
    pending one) for each of ``accounts`` accounts (more if it names more), an account without
    a pending password, or nobody, checked against the decoy instead. Otherwise a wrong login's
    time would tell whether a password was asked for, and how many accounts a phone has."""
    if not check.checked:
        return  # refused unchecked: the caller's own lock, said as such
    candidates: list[tuple[store.Subscriber, str, PendingPassword | None]] = []
    # Open accounts first: a phone's password that opens one of them opens it, not a closed one.
    for account, subscriber in sorted(check.subscribers.items(), key=lambda held: held[1].is_closed):
        if account not in check.checked:
            continue
        candidates.append((subscriber, subscriber.password_hash, None))
        pending = await store.pending_password(conn, account)
        if pending is not None and pending.usable(now):
            candidates.append((subscriber, pending.password_hash, pending))
    for subscriber, password_hash, pending in candidates:
        if await ctx.verify(password_hash, password):
            check.matched, check.used_pending = subscriber, pending
            return
    for _ in range(2 * max(accounts, len(check.subscribers)) - len(candidates)):
        await ctx.verify_decoy(password)


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


async def _login_guard(conn: AsyncConnection, key: str, source: str | None) -> LoginGuard:
    return LoginGuard(
        source=await store.throttle_state(conn, LOGIN_SCOPE, login_subject(key, source)),
        account=await store.throttle_state(conn, LOGIN_SIEGE_SCOPE, key),
    )


async def _save_login_guard(conn: AsyncConnection, key: str, source: str | None, guard: LoginGuard) -> None:
    await store.save_throttle_state(conn, LOGIN_SCOPE, login_subject(key, source), guard.source)
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


