"""The subscriber's cabinet: reading one's profile and accounts, and the settings only the
subscriber changes (password, language, notices). Each takes the account from the caller's
token, never from the request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.catalog.identity import LanguageChanged, NoticeKind, NoticePreferencesChanged, PasswordChanged
from billing_events.logging import get_logger
from identity import store
from identity.commands import (
    AccountView,
    ChangePasswordCommand,
    LanguageCommand,
    NoticePreferences,
    NoticePreferencesCommand,
    ProfileView,
)
from identity.context import IdentityContext
from identity.domain import (
    NotYourAccount,
    ThrottlePolicy,
    TooManyRequests,
    UnknownAccount,
    WrongCurrentPassword,
    guarded_attempt,
    mask_email,
    mask_phone,
    validate_command,
)
from identity.service.sessions import PASSWORD_CHANGED
from identity.service.steps import PASSWORD_CHANGED_ACT, contact_of, counted

log = get_logger(__name__)

PASSWORD_CHANGE_SCOPE = "password_change"  # wrong current passwords, per account
# A stolen access token must not become a way to guess the password: a few tries an hour.
PASSWORD_CHANGE_THROTTLE = ThrottlePolicy(threshold=5, window=timedelta(hours=1), lock_for=timedelta(hours=1))


async def profile(ctx: IdentityContext, account_number: str) -> ProfileView:
    async with ctx.db.connect() as conn:
        found = await store.profile(conn, account_number)
    if found is None:
        raise UnknownAccount("account")
    subscriber = found.subscriber
    personal = ctx.decrypt(account_number, "personal", found.personal_encrypted)
    contact = contact_of(ctx, subscriber)
    return ProfileView(
        account_number=account_number, contract_number=subscriber.contract_number, region=subscriber.region,
        legal_status=subscriber.legal_status, surname=personal["surname"], first_name=personal["first_name"],
        patronymic=personal.get("patronymic"), masked_phone=mask_phone(contact.phone),
        masked_email=mask_email(contact.email) if contact.email else None, language=subscriber.language,
        notices_off=[NoticeKind(kind) for kind in found.notices_off],
    )


async def accounts(ctx: IdentityContext, account_number: str) -> list[AccountView]:
    """The accounts the caller holds: registered with the same phone or the same passport."""
    async with ctx.db.connect() as conn:
        held = await store.accounts_of(conn, account_number)
    return [AccountView(account_number=held_one.account_number, contract_number=held_one.contract_number,
                        region=held_one.region, current=held_one.account_number == account_number)
            for held_one in held]


async def require_held(ctx: IdentityContext, account_number: str, wanted: str) -> None:
    """Raises NotYourAccount unless the caller holds ``wanted`` (same phone or passport)."""
    if wanted not in {held.account_number for held in await accounts(ctx, account_number)}:
        raise NotYourAccount()


async def change_password(
    ctx: IdentityContext, account_number: str, session_id: str, command: ChangePasswordCommand | Mapping[str, Any]
) -> None:
    """The current password proves the caller (a token alone does not); the new one replaces it
    and any password waiting to be used, and every other sign-in of the account ends. Wrong current passwords are counted on the account:
    a few an hour, then TooManyRequests."""
    cmd = validate_command(ChangePasswordCommand, command)
    new_hash = await ctx.hash(cmd.new_password)
    now = ctx.clock.now()

    async def work(conn: AsyncConnection) -> tuple[bool, store.Act | None]:
        subscriber = await store.subscriber_by_account(conn, account_number, for_update=True)
        if subscriber is None:
            raise UnknownAccount("account")
        state = await store.throttle_state(conn, PASSWORD_CHANGE_SCOPE, account_number)
        if state.is_locked(now):
            raise TooManyRequests(until=state.locked_until)
        right = await ctx.verify(subscriber.password_hash, cmd.current_password)
        state, outcome = guarded_attempt(state, now=now, verify=lambda: right, policy=PASSWORD_CHANGE_THROTTLE)
        await store.save_throttle_state(conn, PASSWORD_CHANGE_SCOPE, account_number, state)
        act = store.Act(PASSWORD_CHANGED_ACT, "changed" if right else "wrong_current_password", account_number)
        await store.record_acts(conn, [act], at=now)
        if not right:
            return False, act
        await store.set_password(conn, account_number, new_hash, at=now)
        await store.drop_pending_password(conn, account_number)
        await store.revoke_sessions(conn, account_number, why=PASSWORD_CHANGED, at=now, keep=session_id)
        await ctx.stage(conn, [ctx.envelope(PasswordChanged(account_number=account_number), account=account_number)])
        return True, act

    changed, act = await ctx.unit_of_work(work)
    counted([act] if act else [])
    log.info("password change", account_number=account_number, changed=changed)
    if not changed:
        raise WrongCurrentPassword()


async def change_language(ctx: IdentityContext, account_number: str, command: LanguageCommand | Mapping[str, Any]) -> None:
    cmd = validate_command(LanguageCommand, command)

    async def work(conn: AsyncConnection) -> None:
        await store.set_language(conn, account_number, cmd.language)
        changed = LanguageChanged(account_number=account_number, language=cmd.language)
        await ctx.stage(conn, [ctx.envelope(changed, account=account_number)])

    await ctx.unit_of_work(work)


async def set_notice_preferences(
    ctx: IdentityContext, account_number: str, command: NoticePreferencesCommand | Mapping[str, Any]
) -> NoticePreferences:
    """Keep the subscriber's choice of notices and tell the notifier (NoticePreferencesChanged)."""
    cmd = validate_command(NoticePreferencesCommand, command)
    turned_off = sorted(set(cmd.turned_off))

    async def work(conn: AsyncConnection) -> None:
        version = await store.set_notices_off(conn, account_number, [kind.value for kind in turned_off])
        changed = NoticePreferencesChanged(account_number=account_number, turned_off=turned_off,
                                           preferences_version=version)
        await ctx.stage(conn, [ctx.envelope(changed, account=account_number)])

    await ctx.unit_of_work(work)
    return NoticePreferences(account_number=account_number, notices_off=turned_off)
