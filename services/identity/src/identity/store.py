"""The identity database: subscribers, the account-number sequence, pending passwords, reset
codes, throttles, and the audit of sensitive acts.

Personal data is kept only here, and only protected: keyed hashes (HMAC) to find a passport,
a phone or an e-mail, AES-GCM ciphertexts (bound to the account and the kind of data) for the
readable copies, argon2id hashes of passwords and codes. No column holds a clear value.

Works on PostgreSQL and SQLite. Account numbers come from a SEQUENCE on PostgreSQL (never
rewound, safe under any concurrency; a rolled-back registration leaves a gap, never a reuse)
and from a one-row counter updated inside the registration's transaction on SQLite (which has
one writer at a time, so the update is serial).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_events.db import insert_ignoring_duplicates, upsert
from billing_events.schema import BigId, UtcDateTime
from billing_contracts.catalog.identity import PasswordPurpose
from identity.domain import PendingPassword, ResetCode, ThrottleState


metadata = MetaData()

account_number_sequence = Sequence("identity_account_number_seq", start=1, metadata=metadata)

# SQLite only: the last sequence value handed out (one row, id 1).
account_number_counter = Table(
    "account_number_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_value", BigInteger, nullable=False),
)

LOOKUP_HASH = String(64)  # hex of HMAC-SHA256

subscribers = Table(
    "subscribers",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("sequence", BigInteger, nullable=False, unique=True),
    Column("contract_number", String(32), nullable=False, unique=True),
    Column("region", String(64), nullable=False),
    Column("legal_status", String(16), nullable=False),
    Column("language", String(2), nullable=False),
    # Not unique: a person may sign several contracts (self-registration never says whether a
    # passport holds accounts); the service door refuses a second one itself.
    Column("passport_hash", LOOKUP_HASH, nullable=False, index=True),
    Column("phone_hash", LOOKUP_HASH, nullable=False, index=True),
    Column("email_hash", LOOKUP_HASH, index=True),
    Column("recovery_proof_hash", LOOKUP_HASH, nullable=False),
    Column("passport_encrypted", Text, nullable=False),
    Column("personal_encrypted", Text, nullable=False),
    Column("contact_encrypted", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("password_set_at", UtcDateTime, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("notices_off", Text, doc="JSON list of the notice kinds turned off; NULL: every notice on"),
    Column("preferences_version", Integer, nullable=False, server_default="0"),
    Column("contact_version", Integer, nullable=False, server_default="0"),
    Column("closed_at", UtcDateTime, comment="When the ledger closed the account; NULL: open"),
)

# A new phone or e-mail waiting for its code (one per account: a new request replaces it).
contact_changes = Table(
    "contact_changes",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("kind", String(8), nullable=False, doc="phone or email"),
    Column("contact_encrypted", Text, nullable=False, doc="The new value, bound to <account>/new_contact"),
    Column("code_hash", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("max_wrong_guesses", Integer, nullable=False),
    Column("wrong_guesses", Integer, nullable=False),
    Column("used_at", UtcDateTime),
)

# One sign-in: a family of refresh tokens, each used once to get the next. Signing out (or a
# password change, or support's recovery) revokes the session: its refresh tokens stop working
# and identity refuses the access tokens naming it.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_number", String(12), nullable=False, index=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("revoked_why", String(32)),
)

# Refresh tokens are random and long (no guessing to slow down): kept as SHA-256 hex only.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LOOKUP_HASH, primary_key=True),
    Column("session_id", String(32), nullable=False, index=True),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
)

pending_passwords = Table(
    "pending_passwords",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

reset_codes = Table(
    "reset_codes",
    metadata,
    Column("account_number", String(12), primary_key=True),
    Column("code_hash", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("max_wrong_guesses", Integer, nullable=False),
    Column("wrong_guesses", Integer, nullable=False),
    Column("used_at", UtcDateTime),
)

throttles = Table(
    "throttles",
    metadata,
    Column("scope", String(32), primary_key=True),
    Column("subject", String(100), primary_key=True),
    Column("counted", Text, nullable=False, doc="JSON list of ISO moments inside the window"),
    Column("locked_until", UtcDateTime),
)

support_recoveries = Table(
    "support_recoveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_number", String(12), nullable=False),
    Column("operator", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("support_recoveries_account", "account_number", "id"),
)

# Every sensitive act and what really came of it (the public answers do not say): no secret,
# no phone, no e-mail, no passport data; the account when one was found, the client address.
audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("act", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("account_number", String(12)),
    Column("source", String(100), doc="The client address, for requests from outside"),
    Column("detail", String(200), doc="Channel, operator or reason: never a secret"),
    Index("audit_account", "account_number", "id"),
)


# --- account numbers --------------------------------------------------------------------------


async def next_account_sequence(conn: AsyncConnection) -> int:
    """A sequence value nobody got before and nobody will get again."""
    if conn.dialect.name == "postgresql":
        value = await conn.scalar(account_number_sequence.next_value())
        return int(value)
    # SQLite: BEGIN IMMEDIATE holds the one write lock for the whole transaction.
    await conn.execute(
        insert_ignoring_duplicates(conn, account_number_counter), {"id": 1, "last_value": 0}
    )
    value = await conn.scalar(
        update(account_number_counter)
        .where(account_number_counter.c.id == 1)
        .values(last_value=account_number_counter.c.last_value + 1)
        .returning(account_number_counter.c.last_value)
    )
    return int(value)


# --- subscribers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    account_number: str
    contract_number: str
    region: str
    legal_status: str
    language: str
    phone_hash: str
    email_hash: str | None
    recovery_proof_hash: str
    contact_encrypted: str
    password_hash: str
    closed_at: datetime | None = None
    """When the ledger closed the account: it logs in no more."""

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        account_number=row.account_number,
        contract_number=row.contract_number,
        region=row.region,
        legal_status=row.legal_status,
        language=row.language,
        phone_hash=row.phone_hash,
        email_hash=row.email_hash,
        recovery_proof_hash=row.recovery_proof_hash,
        contact_encrypted=row.contact_encrypted,
        password_hash=row.password_hash,
        closed_at=row.closed_at,
    )


ENCRYPTED_KINDS = ("passport", "personal", "contact")
"""The personal data kept encrypted, each in ``<kind>_encrypted`` and bound to ``<account>/<kind>``."""


def _encrypted_column(kind: str) -> Column[Any]:
    return subscribers.c[f"{kind}_encrypted"]


@dataclass(frozen=True)
class NewSubscriber:
    """A registration as stored: lookup hashes, ciphertexts (``encrypted``: one per
    :data:`ENCRYPTED_KINDS`) and the initial password's hash; never a clear value."""

    account_number: str
    sequence: int
    contract_number: str
    region: str
    legal_status: str
    language: str
    passport_hash: str
    phone_hash: str
    email_hash: str | None
    recovery_proof_hash: str
    encrypted: dict[str, str]
    password_hash: str
    registered_at: datetime


async def add_subscriber(conn: AsyncConnection, new: NewSubscriber) -> None:
    row = {name: value for name, value in asdict(new).items() if name != "encrypted"}
    row.update({_encrypted_column(kind).name: new.encrypted[kind] for kind in ENCRYPTED_KINDS})
    await conn.execute(insert(subscribers), {**row, "password_set_at": new.registered_at})


@dataclass(frozen=True)
class EncryptedData:
    """One subscriber's ciphertexts, by kind (:data:`ENCRYPTED_KINDS`)."""

    account_number: str
    by_kind: dict[str, str]


async def encrypted_not_under(
    conn: AsyncConnection, key_id: str, *, after: str, limit: int
) -> list[EncryptedData]:
    """Subscribers (after ``after``, by account number) holding data not written with ``key_id``,
    locked until the transaction ends."""
    columns = [_encrypted_column(kind) for kind in ENCRYPTED_KINDS]
    query = (
        select(subscribers.c.account_number, *columns)
        .where(subscribers.c.account_number > after, or_(*(~column.startswith(f"{key_id}:", autoescape=True) for column in columns)))
        .order_by(subscribers.c.account_number)
        .limit(limit)
        .with_for_update()
    )
    return [
        EncryptedData(row.account_number, {kind: row._mapping[_encrypted_column(kind).name] for kind in ENCRYPTED_KINDS})
        for row in (await conn.execute(query)).all()
    ]


async def replace_encrypted(conn: AsyncConnection, data: EncryptedData) -> None:
    values = {_encrypted_column(kind).name: token for kind, token in data.by_kind.items()}
    await conn.execute(update(subscribers).where(subscribers.c.account_number == data.account_number).values(values))


async def lock_passport(conn: AsyncConnection, passport_hash: str) -> None:
    """Serialise registrations of one passport until the transaction ends (PostgreSQL; SQLite
    has one writer at a time), so the service door's check for an earlier one holds."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(passport_hash))))


async def passport_registered(conn: AsyncConnection, passport_hash: str) -> bool:
    found = await conn.scalar(
        select(subscribers.c.account_number).where(subscribers.c.passport_hash == passport_hash)
    )
    return found is not None


async def subscriber_by_account(
    conn: AsyncConnection, account_number: str, *, for_update: bool = False
) -> Subscriber | None:
    query = select(subscribers).where(subscribers.c.account_number == account_number)
    if for_update:
        query = query.with_for_update()  # PostgreSQL: one command per account at a time
    row = (await conn.execute(query)).first()
    return _subscriber(row) if row else None


async def subscriber_by_contract(
    conn: AsyncConnection, contract_number: str, *, for_update: bool = False
) -> Subscriber | None:
    query = select(subscribers).where(subscribers.c.contract_number == contract_number)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _subscriber(row) if row else None


async def subscribers_by_phone(
    conn: AsyncConnection, phone_hash: str, *, for_update: bool = False
) -> list[Subscriber]:
    query = (
        select(subscribers)
        .where(subscribers.c.phone_hash == phone_hash)
        .order_by(subscribers.c.account_number)
    )
    if for_update:
        query = query.with_for_update()
    return [_subscriber(row) for row in (await conn.execute(query)).all()]


async def set_password(
    conn: AsyncConnection, account_number: str, password_hash: str, *, at: datetime
) -> None:
    await conn.execute(
        update(subscribers)
        .where(subscribers.c.account_number == account_number)
        .values(password_hash=password_hash, password_set_at=at)
    )


async def accounts_of(conn: AsyncConnection, account_number: str) -> list[Subscriber]:
    """Every open account held by the same phone or the same passport as ``account_number``
    (itself included while open), by account number."""
    me = (await conn.execute(
        select(subscribers.c.phone_hash, subscribers.c.passport_hash)
        .where(subscribers.c.account_number == account_number)
    )).first()
    if me is None:
        return []
    rows = await conn.execute(
        select(subscribers)
        .where(or_(subscribers.c.phone_hash == me.phone_hash, subscribers.c.passport_hash == me.passport_hash),
               subscribers.c.closed_at.is_(None))
        .order_by(subscribers.c.account_number)
    )
    return [_subscriber(row) for row in rows.all()]


@dataclass(frozen=True)
class Profile:
    """What the subscriber reads about themselves, still encrypted where it is personal."""

    subscriber: Subscriber
    personal_encrypted: str
    notices_off: tuple[str, ...]
    preferences_version: int


async def profile(conn: AsyncConnection, account_number: str) -> Profile | None:
    row = (await conn.execute(select(subscribers).where(subscribers.c.account_number == account_number))).first()
    if row is None:
        return None
    return Profile(_subscriber(row), row.personal_encrypted, tuple(json.loads(row.notices_off or "[]")),
                   row.preferences_version)


async def set_language(conn: AsyncConnection, account_number: str, language: str) -> None:
    await conn.execute(update(subscribers).where(subscribers.c.account_number == account_number)
                       .values(language=language))


async def set_notices_off(conn: AsyncConnection, account_number: str, kinds: list[str]) -> int:
    """Keep the subscriber's new choice; the choice's number (``preferences_version``)."""
    version = await conn.scalar(
        update(subscribers).where(subscribers.c.account_number == account_number)
        .values(notices_off=json.dumps(sorted(kinds)), preferences_version=subscribers.c.preferences_version + 1)
        .returning(subscribers.c.preferences_version)
    )
    return int(version)


# --- pending passwords ----------------------------------------------------------------------


async def pending_password(conn: AsyncConnection, account_number: str) -> PendingPassword | None:
    row = (
        await conn.execute(
            select(pending_passwords).where(pending_passwords.c.account_number == account_number)
        )
    ).first()
    if row is None:
        return None
    return PendingPassword(password_hash=row.password_hash, purpose=PasswordPurpose(row.purpose),
                           issued_at=row.issued_at, expires_at=row.expires_at)


async def save_pending_password(conn: AsyncConnection, account_number: str, pending: PendingPassword) -> None:
    """One row per account: a newer pending password replaces the previous one."""
    columns = ("password_hash", "purpose", "issued_at", "expires_at")
    await conn.execute(
        upsert(conn, pending_passwords, ["account_number"], columns),
        {"account_number": account_number, "password_hash": pending.password_hash,
         "purpose": pending.purpose.value, "issued_at": pending.issued_at, "expires_at": pending.expires_at},
    )


async def drop_pending_password(conn: AsyncConnection, account_number: str) -> None:
    await conn.execute(delete(pending_passwords).where(pending_passwords.c.account_number == account_number))


# --- reset codes ------------------------------------------------------------------------------


async def reset_code(conn: AsyncConnection, account_number: str) -> ResetCode | None:
    row = (
        await conn.execute(select(reset_codes).where(reset_codes.c.account_number == account_number))
    ).first()
    if row is None:
        return None
    return ResetCode(
        code_hash=row.code_hash,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        max_wrong_guesses=row.max_wrong_guesses,
        wrong_guesses=row.wrong_guesses,
        used_at=row.used_at,
    )


async def save_reset_code(conn: AsyncConnection, account_number: str, code: ResetCode) -> None:
    """One row per account: a new code replaces (voids) the previous one."""
    columns = ("code_hash", "issued_at", "expires_at", "max_wrong_guesses", "wrong_guesses", "used_at")
    await conn.execute(
        upsert(conn, reset_codes, ["account_number"], columns),
        {
            "account_number": account_number,
            "code_hash": code.code_hash,
            "issued_at": code.issued_at,
            "expires_at": code.expires_at,
            "max_wrong_guesses": code.max_wrong_guesses,
            "wrong_guesses": code.wrong_guesses,
            "used_at": code.used_at,
        },
    )


# --- throttles --------------------------------------------------------------------------------

# Prefixes the advisory lock keys of throttle states, apart from any other advisory lock.
THROTTLE_LOCK_SPACE = "identity.throttle"


async def throttle_state(conn: AsyncConnection, scope: str, subject: str) -> ThrottleState:
    """The state of ``subject``'s throttle of ``scope``, held for the caller until its transaction
    ends: every caller reads it to write it back counted, so two parallel attempts must not
    both read the same count (each would pass a limit the pair exceeds).

    PostgreSQL: a transaction-scoped advisory lock on the (scope, subject) pair, taken before the
    read; it holds for a state that has no row yet too, where ``SELECT ... FOR UPDATE`` would
    lock nothing. SQLite: the transaction already holds the database's one write lock
    (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"{THROTTLE_LOCK_SPACE}/{scope}/{subject}"},
        )
    row = (
        await conn.execute(
            select(throttles.c.counted, throttles.c.locked_until).where(
                throttles.c.scope == scope, throttles.c.subject == subject
            )
        )
    ).first()
    if row is None:
        return ThrottleState()
    counted = tuple(datetime.fromisoformat(moment) for moment in json.loads(row.counted))
    return ThrottleState(counted=counted, locked_until=row.locked_until)


async def save_throttle_state(
    conn: AsyncConnection, scope: str, subject: str, state: ThrottleState
) -> None:
    if not state.counted and state.locked_until is None:
        await conn.execute(
            delete(throttles).where(throttles.c.scope == scope, throttles.c.subject == subject)
        )
        return
    await conn.execute(
        upsert(conn, throttles, ["scope", "subject"], ["counted", "locked_until"]),
        {
            "scope": scope,
            "subject": subject,
            "counted": json.dumps([moment.astimezone(UTC).isoformat() for moment in state.counted]),
            "locked_until": state.locked_until,
        },
    )


async def drop_throttles(conn: AsyncConnection, scope: str, *, subject_prefix: str) -> None:
    """Forget every state of ``scope`` whose subject starts with ``subject_prefix``."""
    await conn.execute(
        delete(throttles).where(
            throttles.c.scope == scope, throttles.c.subject.startswith(subject_prefix, autoescape=True)
        )
    )


# --- contact changes -------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactChange:
    kind: str
    contact_encrypted: str
    code: ResetCode


async def contact_change(conn: AsyncConnection, account_number: str) -> ContactChange | None:
    row = (await conn.execute(
        select(contact_changes).where(contact_changes.c.account_number == account_number)
    )).first()
    if row is None:
        return None
    code = ResetCode(code_hash=row.code_hash, issued_at=row.issued_at, expires_at=row.expires_at,
                     max_wrong_guesses=row.max_wrong_guesses, wrong_guesses=row.wrong_guesses, used_at=row.used_at)
    return ContactChange(row.kind, row.contact_encrypted, code)


async def save_contact_change(conn: AsyncConnection, account_number: str, change: ContactChange) -> None:
    columns = ("kind", "contact_encrypted", "code_hash", "issued_at", "expires_at", "max_wrong_guesses",
               "wrong_guesses", "used_at")
    code = change.code
    await conn.execute(
        upsert(conn, contact_changes, ["account_number"], columns),
        {"account_number": account_number, "kind": change.kind, "contact_encrypted": change.contact_encrypted,
         "code_hash": code.code_hash, "issued_at": code.issued_at, "expires_at": code.expires_at,
         "max_wrong_guesses": code.max_wrong_guesses, "wrong_guesses": code.wrong_guesses, "used_at": code.used_at},
    )


async def set_contact(
    conn: AsyncConnection, account_number: str, *, phone_hash: str, email_hash: str | None, contact_encrypted: str
) -> int:
    """The subscriber's contact now; the change's number (``contact_version``)."""
    version = await conn.scalar(
        update(subscribers).where(subscribers.c.account_number == account_number)
        .values(phone_hash=phone_hash, email_hash=email_hash, contact_encrypted=contact_encrypted,
                contact_version=subscribers.c.contact_version + 1)
        .returning(subscribers.c.contact_version)
    )
    return int(version)


# --- sessions and refresh tokens -------------------------------------------------------------


async def start_session(conn: AsyncConnection, session_id: str, account_number: str, *, at: datetime) -> None:
    await conn.execute(insert(sessions), {"id": session_id, "account_number": account_number, "started_at": at})


@dataclass(frozen=True)
class Session:
    id: str
    account_number: str
    revoked_at: datetime | None


async def session(conn: AsyncConnection, session_id: str, *, for_update: bool = False) -> Session | None:
    query = select(sessions).where(sessions.c.id == session_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return Session(row.id, row.account_number, row.revoked_at) if row else None


async def close_subscriber(conn: AsyncConnection, account_number: str, *, at: datetime) -> bool:
    """Mark the account closed (once): whether it was open here."""
    closed = await conn.execute(update(subscribers)
                                .where(subscribers.c.account_number == account_number, subscribers.c.closed_at.is_(None))
                                .values(closed_at=at))
    return bool(closed.rowcount)


async def revoke_sessions(
    conn: AsyncConnection, account_number: str, *, why: str, at: datetime, only: str | None = None,
    keep: str | None = None,
) -> int:
    """Revoke the account's live sessions (``only`` one of them, or all but ``keep``); how many."""
    query = update(sessions).where(sessions.c.account_number == account_number, sessions.c.revoked_at.is_(None))
    if only is not None:
        query = query.where(sessions.c.id == only)
    if keep is not None:
        query = query.where(sessions.c.id != keep)
    result = await conn.execute(query.values(revoked_at=at, revoked_why=why))
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class RefreshToken:
    session_id: str
    expires_at: datetime
    used_at: datetime | None


async def add_refresh_token(
    conn: AsyncConnection, token_hash: str, session_id: str, *, at: datetime, expires_at: datetime
) -> None:
    await conn.execute(insert(refresh_tokens), {"token_hash": token_hash, "session_id": session_id,
                                                "issued_at": at, "expires_at": expires_at})


async def refresh_token(conn: AsyncConnection, token_hash: str) -> RefreshToken | None:
    row = (await conn.execute(
        select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
    )).first()
    return RefreshToken(row.session_id, row.expires_at, row.used_at) if row else None


async def use_refresh_token(conn: AsyncConnection, token_hash: str, *, at: datetime) -> bool:
    """Mark the token used; False when another request used it first."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
        .values(used_at=at)
    )
    return bool(result.rowcount)


# --- the audit of sensitive acts --------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """One row of the audit: what was asked, what came of it, about which account, from where."""

    act: str
    outcome: str
    account_number: str | None = None
    source: str | None = None
    detail: str | None = None


async def record_acts(conn: AsyncConnection, acts: list[Act], *, at: datetime) -> None:
    if acts:
        await conn.execute(insert(audit), [{**asdict(act), "at": at} for act in acts])


async def audit_log(conn: AsyncConnection, account_number: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(audit).where(audit.c.account_number == account_number).order_by(audit.c.id)
    )
    return [dict(row._mapping) for row in rows]


# --- support-assisted recovery audit ----------------------------------------------------------


async def record_support_recovery(
    conn: AsyncConnection, *, account_number: str, operator: str, reason: str, outcome: str, at: datetime
) -> None:
    await conn.execute(
        insert(support_recoveries),
        {"account_number": account_number, "operator": operator, "reason": reason,
         "outcome": outcome, "at": at},
    )


async def support_recovery_log(conn: AsyncConnection, account_number: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(support_recoveries)
        .where(support_recoveries.c.account_number == account_number)
        .order_by(support_recoveries.c.id)
    )
    return [dict(row._mapping) for row in rows]
