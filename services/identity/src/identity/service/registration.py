"""Registration: a new subscriber, stored protected, and the initial password."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


from billing_contracts.catalog.identity import PasswordPurpose, SubscriberRegistered
from billing_contracts.envelope import Envelope
from billing_events.unit_of_work import UnitOfWork
from billing_events.logging import get_logger
from billing_events.sealing import seal
from identity import store
from identity.commands import Registered, SelfRegistered
from identity.context import IdentityContext
from identity.domain import (
    PASSWORD_POLICY,
    LookupKind,
    PassportAlreadyRegistered,
    Registration,
    RegistrationCommand,
    account_number_from_sequence,
    contract_number,
    email_lookup_text,
    mask_email,
    mask_phone,
    validate_registration,
)
from identity.security import generate_password
from identity.service.steps import (
    PASSWORD_ISSUED_ACT,
    SELF_REGISTRATION_ACT,
    count_address_request,
    counted,
    secret_issued,
)

log = get_logger(__name__)


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
    """Open a personal account (the call centre, a service): allocate the account and contract
    numbers, store the subscriber's data protected, issue the initial password.

    Publishes SubscriberRegistered (contacts sealed + masked, no passport data) and
    PasswordIssued(initial). Raises InvalidCommand (field errors) or PassportAlreadyRegistered:
    the caller is told, so a form sent twice does not open two contracts.
    """
    registered, _ = await _open_account(ctx, command, source=None, refuse_known_passport=True)
    return registered


async def register_self(
    ctx: IdentityContext, command: RegistrationCommand | Mapping[str, Any], *, source: str | None
) -> SelfRegistered:
    """The subscriber signs the contract on the site: the same account as :func:`register`,
    throttled per client address (``source``) like the other anonymous requests.

    A passport or a phone that already holds accounts gets one more (a person may sign several
    contracts): the answer and the work are the same, so it tells nobody what is registered.
    Raises InvalidCommand or TooManyFromAddress.
    """
    registered, phone = await _open_account(ctx, command, source=source, refuse_known_passport=False)
    return SelfRegistered(**registered.model_dump(), password_sent_to=mask_phone(phone))


async def _open_account(
    ctx: IdentityContext, command: RegistrationCommand | Mapping[str, Any], *, source: str | None,
    refuse_known_passport: bool,
) -> tuple[Registered, str]:
    """The account opened, and the mobile number its password went to."""
    now = ctx.clock.now()
    registration = validate_registration(command, now=now, regions=ctx.settings.regions)
    refusal = await count_address_request(ctx, now, source)  # before any slow hash
    if refusal is not None:
        raise refusal
    passport_hash = ctx.vault.lookup_hash(LookupKind.PASSPORT, registration.passport_text())
    password = generate_password(PASSWORD_POLICY)
    password_hash = await ctx.hash(password)

    async def work(uow: UnitOfWork) -> store.NewSubscriber:
        await store.lock_passport(uow.conn, passport_hash)
        if refuse_known_passport and await store.passport_registered(uow.conn, passport_hash):
            raise PassportAlreadyRegistered()
        sequence = await store.next_account_sequence(uow.conn)
        new = _new_subscriber(ctx, registration, sequence=sequence, password_hash=password_hash, now=now)
        await store.add_subscriber(uow.conn, new)
        registered = _registered(ctx, registration, new)
        issued, _ = secret_issued(
            ctx, account_number=new.account_number, purpose=PasswordPurpose.INITIAL,
            channel="sms", destination=registration.mobile_phone, secret=password, cause=registered,
        )
        uow.stage([registered, issued])
        await store.record_acts(uow.conn, _acts(new, source), at=now)
        return new

    new = await ctx.unit_of_work(work)
    counted(_acts(new, source))
    log.info("subscriber registered", account_number=new.account_number, region=registration.region,
             legal_status=registration.legal_status.value, by_themselves=source is not None)
    return Registered(account_number=new.account_number, contract_number=new.contract_number), registration.mobile_phone


def _acts(new: store.NewSubscriber, source: str | None) -> list[store.Act]:
    acts = [_initial_password_act(new)]
    if source is not None:
        acts.append(store.Act(SELF_REGISTRATION_ACT, "registered", new.account_number, source))
    return acts


def _initial_password_act(new: store.NewSubscriber) -> store.Act:
    return store.Act(PASSWORD_ISSUED_ACT, PasswordPurpose.INITIAL.value, new.account_number)


