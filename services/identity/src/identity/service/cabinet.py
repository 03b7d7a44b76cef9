"""The subscriber's cabinet: reading one's profile and accounts, and the settings only the
subscriber changes (password, language, notices). Each takes the account from the caller's
token, never from the request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal


from billing_events.unit_of_work import UnitOfWork
from billing_contracts.catalog.identity import (
    ContactChanged,
    ContactCodeIssued,
    LanguageChanged,
    NoticeKind,
    NoticePreferencesChanged,
    PasswordChanged,
)
from billing_events.logging import get_logger
from billing_events.sealing import seal
from identity import store
from identity.commands import (
    AccountView,
    ChangePasswordCommand,
    ConfirmContactCommand,
    ContactChangeCommand,
    LanguageCommand,
    NoticePreferences,
    NoticePreferencesCommand,
    ContactCodeSent,
    ProfileView,
)
from identity.context import IdentityContext
from identity.domain import (
    CODE_POLICY,
    FieldError,
    InvalidCommand,
    LookupKind,
    Redemption,
    ResetCodeRefused,
    NotYourAccount,
    ThrottlePolicy,
    TooManyRequests,
    UnknownAccount,
    WrongCurrentPassword,
    email_lookup_text,
    guarded_attempt,
    issue_reset_code,
    mask_email,
    mask_phone,
    redeem_reset_code,
    validate_command,
)
from identity.security import generate_code
from identity.service.sessions import PASSWORD_CHANGED
from identity.service.steps import (
    CONTACT_CHANGE_ACT,
    PASSWORD_CHANGED_ACT,
    SECRET_REQUEST_SCOPE,
    Contact,
    account_request_refused,
    contact_of,
    counted,
)

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

    async def work(uow: UnitOfWork) -> tuple[bool, store.Act | None]:
        subscriber = await store.subscriber_by_account(uow.conn, account_number, for_update=True)
        if subscriber is None:
            raise UnknownAccount("account")
        state = await store.throttle_state(uow.conn, PASSWORD_CHANGE_SCOPE, account_number)
        if state.is_locked(now):
            raise TooManyRequests(until=state.locked_until)
        right = await ctx.verify(subscriber.password_hash, cmd.current_password)
        state, outcome = guarded_attempt(state, now=now, verify=lambda: right, policy=PASSWORD_CHANGE_THROTTLE)
        await store.save_throttle_state(uow.conn, PASSWORD_CHANGE_SCOPE, account_number, state)
        act = store.Act(PASSWORD_CHANGED_ACT, "changed" if right else "wrong_current_password", account_number)
        await store.record_acts(uow.conn, [act], at=now)
        if not right:
            return False, act
        await store.set_password(uow.conn, account_number, new_hash, at=now)
        await store.drop_pending_password(uow.conn, account_number)
        await store.revoke_sessions(uow.conn, account_number, why=PASSWORD_CHANGED, at=now, keep=session_id)
        uow.stage([ctx.envelope(PasswordChanged(account_number=account_number), account=account_number)])
        return True, act

    changed, act = await ctx.unit_of_work(work)
    counted([act] if act else [])
    log.info("password change", account_number=account_number, changed=changed)
    if not changed:
        raise WrongCurrentPassword()


async def change_language(ctx: IdentityContext, account_number: str, command: LanguageCommand | Mapping[str, Any]) -> None:
    cmd = validate_command(LanguageCommand, command)

    async def work(uow: UnitOfWork) -> None:
        await store.set_language(uow.conn, account_number, cmd.language)
        changed = LanguageChanged(account_number=account_number, language=cmd.language)
        uow.stage([ctx.envelope(changed, account=account_number)])

    await ctx.unit_of_work(work)


async def set_notice_preferences(
    ctx: IdentityContext, account_number: str, command: NoticePreferencesCommand | Mapping[str, Any]
) -> NoticePreferences:
    """Keep the subscriber's choice of notices and tell the notifier (NoticePreferencesChanged)."""
    cmd = validate_command(NoticePreferencesCommand, command)
    turned_off = sorted(set(cmd.turned_off))

    async def work(uow: UnitOfWork) -> None:
        version = await store.set_notices_off(uow.conn, account_number, [kind.value for kind in turned_off])
        changed = NoticePreferencesChanged(account_number=account_number, turned_off=turned_off,
                                           preferences_version=version)
        uow.stage([ctx.envelope(changed, account=account_number)])

    await ctx.unit_of_work(work)
    return NoticePreferences(account_number=account_number, notices_off=turned_off)


# --- a new phone or e-mail ----------------------------------------------------------------------

NEW_CONTACT = "new_contact"  # what the waiting value's ciphertext is bound to


async def request_contact_change(
    ctx: IdentityContext, account_number: str, command: ContactChangeCommand | Mapping[str, Any]
) -> ContactCodeSent:
    """A code goes to the new phone or e-mail (ContactCodeIssued); the change waits for it (the
    reset code's lifetime and guesses). Counted with every password and code request of the
    account (TooManyRequests past five an hour)."""
    cmd = validate_command(ContactChangeCommand, command)
    if (cmd.phone is None) == (cmd.email is None):
        field = "phone" if cmd.phone is None else "email"
        raise InvalidCommand([FieldError(field, "give either a new mobile number or a new e-mail", "one_contact")])
    kind, destination = ("phone", cmd.phone) if cmd.phone else ("email", cmd.email)
    channel: Literal["sms", "email"] = "sms" if kind == "phone" else "email"
    assert destination is not None
    code = generate_code(CODE_POLICY)
    code_hash = await ctx.hash(code)
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> ContactCodeSent | TooManyRequests:
        refused = await account_request_refused(uow.conn, SECRET_REQUEST_SCOPE, account_number, now)
        act = store.Act(CONTACT_CHANGE_ACT, "account_throttled" if refused else "code_sent", account_number, detail=kind)
        await store.record_acts(uow.conn, [act], at=now)
        if refused is not None:
            return TooManyRequests(until=refused.locked_until)
        state = issue_reset_code(code_hash, now=now, policy=ctx.settings.reset_code_policy)
        encrypted = ctx.encrypt(account_number, NEW_CONTACT, {"value": destination})
        await store.save_contact_change(uow.conn, account_number, store.ContactChange(kind, encrypted, state))
        masked = mask_phone(destination) if kind == "phone" else mask_email(destination)
        issued = ContactCodeIssued(
            account_number=account_number, channel=channel, masked_destination=masked, expires_at=state.expires_at,
            sealed_secret=seal(ctx.settings.notifier_public_key, {"secret": code, "destination": destination}),
        )
        uow.stage([ctx.envelope(issued, account=account_number)])
        return ContactCodeSent(account_number=account_number, channel=channel, masked_destination=masked,
                               expires_at=state.expires_at)

    sent = await ctx.unit_of_work(work)
    if isinstance(sent, TooManyRequests):
        raise sent
    log.info("contact change code sent", account_number=account_number, kind=kind)
    return sent


async def confirm_contact_change(
    ctx: IdentityContext, account_number: str, command: ConfirmContactCommand | Mapping[str, Any]
) -> ProfileView:
    """The code from the new contact: the contact changes (ContactChanged; the notifier tells the
    previous one). Wrong guesses are counted; raises ResetCodeRefused with the reason (the caller
    is the signed-in owner)."""
    cmd = validate_command(ConfirmContactCommand, command)
    if not CODE_POLICY.admits(cmd.code):
        raise InvalidCommand([FieldError("code", f"must be {CODE_POLICY.digits} digits", "code_shape")])
    now = ctx.clock.now()

    async def work(uow: UnitOfWork) -> Redemption:
        subscriber = await store.subscriber_by_account(uow.conn, account_number, for_update=True)
        change = await store.contact_change(uow.conn, account_number)
        if subscriber is None or change is None:
            await ctx.verify_decoy(cmd.code)
            return Redemption.NO_CODE
        _, probe = redeem_reset_code(change.code, now=now, matches=lambda _: False)
        right = probe is Redemption.WRONG_CODE and await ctx.verify(change.code.code_hash, cmd.code)
        after, result = redeem_reset_code(change.code, now=now, matches=lambda _: right)
        if after is not None and after != change.code:
            await store.save_contact_change(uow.conn, account_number, store.ContactChange(
                change.kind, change.contact_encrypted, after))
        await store.record_acts(uow.conn, [store.Act(CONTACT_CHANGE_ACT, result.value, account_number,
                                                 detail=change.kind)], at=now)
        if result is Redemption.ACCEPTED:
            new_value = ctx.decrypt(account_number, NEW_CONTACT, change.contact_encrypted)["value"]
            await _change_contact(uow, ctx, subscriber, change.kind, new_value)
        return result

    result = await ctx.unit_of_work(work)
    if result is not Redemption.ACCEPTED:
        raise ResetCodeRefused(result.value)
    log.info("contact changed", account_number=account_number)
    return await profile(ctx, account_number)


async def _change_contact(
    uow: UnitOfWork, ctx: IdentityContext, subscriber: store.Subscriber, kind: str, new_value: str
) -> None:
    old = contact_of(ctx, subscriber)
    new = Contact(phone=new_value, email=old.email) if kind == "phone" else Contact(phone=old.phone, email=new_value)
    account = subscriber.account_number
    version = await store.set_contact(
        uow.conn, account, phone_hash=ctx.vault.lookup_hash(LookupKind.PHONE, new.phone),
        email_hash=ctx.vault.lookup_hash(LookupKind.EMAIL, email_lookup_text(new.email)) if new.email else None,
        contact_encrypted=ctx.encrypt(account, "contact", {"phone": new.phone, "email": new.email}),
    )
    changed = ContactChanged(
        account_number=account, changed="phone" if kind == "phone" else "email", contact_version=version,
        masked_phone=mask_phone(new.phone), masked_email=mask_email(new.email) if new.email else None,
        sealed_contact=seal(ctx.settings.notifier_public_key, {"phone": new.phone, "email": new.email}),
    )
    uow.stage([ctx.envelope(changed, account=account)])
