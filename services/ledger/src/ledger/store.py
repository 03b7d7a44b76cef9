"""The ledger's tables: the append-only journal, its postings, and the projections.

``journal`` and ``postings`` are only ever inserted into. ``accounts`` (a subscriber's balances
and payment settings) and ``operator_balances`` are projections of the journal, updated in the
same transaction as the postings and rebuildable from them at any time. ``chain_head`` holds
the hash of the newest transaction: taking its row lock orders every writer, so the hash chain
and the journal's ``seq`` are in commit order.

Lock order, to keep concurrent writers free of deadlocks: subscriber accounts (by number), then
operator balances (by code), then the chain head. A repair of the projections takes the same
three, whole tables, in the same order (:func:`lock_out_writers`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    case,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from billing_contracts.catalog.ledger import PaymentType, TransactionKind, UnmatchedReason
from billing_contracts.catalog.payments import PaymentChannel
from billing_events.db import any_of, bulk_insert, bulk_update, insert_ignoring_duplicates, upsert
from billing_contracts.money import Money
from billing_events.schema import BigId, UtcDateTime

from ledger.domain import (
    FACT_KINDS,
    GENESIS_HASH,
    AccountFact,
    AccountSettings,
    AccountState,
    ChainHead,
    Fate,
    IdempotencyRecord,
    JournalEntry,
    JournalRecord,
    KeyFamily,
    OperatorNote,
    Posting,
    SuspenseItem,
    SuspenseStatus,
    Transaction,
    bonus_account,
    fact_hash,
    is_operator_account,
    main_account,
    transaction_hash,
)
from ledger.domain.card import CardIntent, IntentStatus

metadata = MetaData()


def _currency_is_a_code(table: str) -> tuple[CheckConstraint, CheckConstraint]:
    """Three capital letters: PostgreSQL says it with a regular expression, SQLite with GLOB."""
    name = f"{table}_currency_code"
    return (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name=name).ddl_if(dialect="postgresql"),
        CheckConstraint("length(currency) = 3 AND currency NOT GLOB '*[^A-Z]*'", name=name).ddl_if(dialect="sqlite"),
    )


accounts = Table(
    "accounts",
    metadata,
    Column("number", String(12), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("main", BigInteger, nullable=False),
    Column("bonus", BigInteger, nullable=False),
    Column("payment_type", String(16), nullable=False),
    Column("credit_limit", BigInteger, nullable=False),
    Column("is_open", Boolean, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0",
           comment="Changes of the account since it was opened (or since migration 0004): the account_version"
                   " of the events announcing them"),
    CheckConstraint("credit_limit >= 0", name="accounts_credit_limit_not_negative"),
    CheckConstraint("payment_type IN ('prepaid', 'credit')", name="accounts_payment_type_known"),
    *_currency_is_a_code("accounts"),
    # Room on each page for the balance updates every movement makes (migration 0003).
    postgresql_with={"fillfactor": 80},
)

operator_balances = Table(
    "operator_balances",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("balance", BigInteger, nullable=False),
)

journal = Table(
    "journal",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("txn_id", Uuid, nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("business_key", String(200), nullable=False),
    Column("cause_event_id", Uuid),
    Column("cause_type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("reverses", Uuid, unique=True),
    Column("operator", String(100)),
    Column("operator_reason", Text),
    Column("hash", LargeBinary(32), nullable=False),
    Column("account_settings", Text, comment="An account fact's settings (canonical JSON); null on money"),
    Column("prev_hash", LargeBinary(32), nullable=False,
           comment="The hash of the row before (the genesis hash for the first)"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("txn_id", Uuid, ForeignKey("journal.txn_id"), nullable=False),
    Column("account", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("postings_by_account", "account", "id"),
    Index("postings_by_txn", "txn_id"),
    CheckConstraint("amount <> 0", name="postings_amount_not_zero"),
    *_currency_is_a_code("postings"),
)

# A journal transaction whose postings do not sum to zero cannot be committed, whatever wrote it:
# checked at COMMIT (deferred), so the rows of one transaction may arrive in any order.
_BALANCED_AT_COMMIT = [
    DDL("""
CREATE FUNCTION journal_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.txn_id ELSE NEW.txn_id END;
    total numeric;
BEGIN
    SELECT sum(amount) INTO total FROM postings WHERE txn_id = txn;
    IF total IS NOT NULL AND total <> 0 THEN
        RAISE EXCEPTION 'journal transaction %% postings do not sum to zero (%%)', txn, total
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.txn_id <> NEW.txn_id THEN
        SELECT sum(amount) INTO total FROM postings WHERE txn_id = OLD.txn_id;
        IF total IS NOT NULL AND total <> 0 THEN
            RAISE EXCEPTION 'journal transaction %% postings do not sum to zero (%%)', OLD.txn_id, total
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NULL;
END $$"""),
    DDL("""
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT OR UPDATE OR DELETE ON postings
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_transaction_balanced()"""),
]
for _statement in _BALANCED_AT_COMMIT:
    event.listen(postings, "after_create", _statement.execute_if(dialect="postgresql"))

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hash", LargeBinary(32), nullable=False),
    Column("length", BigInteger, nullable=False),
)

suspense = Table(
    "suspense",
    metadata,
    Column("transaction_id", Uuid, primary_key=True),
    Column("typed_account", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("settled_by", Uuid),
    Index("suspense_by_status", "status"),
    CheckConstraint("amount > 0", name="suspense_amount_positive"),
    *_currency_is_a_code("suspense"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("family", String(24), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(300), nullable=False),
    Column("fate", String(16), nullable=False),
    Column("refusal", String(40)),
    Column("transaction_ids", Text, nullable=False),
    Column("cause_event_id", Uuid),
    Column("answer", Text),
    Column("recorded_at", UtcDateTime(), nullable=False),
)
"""One row per business key, written with the postings it led to: the primary key is what makes
"posted once" true even for a code path that forgot to ask."""

card_intents = Table(
    "card_intents",
    metadata,
    Column("intent_id", Uuid, primary_key=True),
    Column("account", String(12), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("acquirer_reference", String(64), comment="The acquirer's reference of the approved payment"),
    Column("settled_at", UtcDateTime()),
    Index("card_intents_by_account", "account", "created_at"),
    CheckConstraint("amount > 0", name="card_intents_amount_positive"),
    CheckConstraint("status IN ('open', 'paid', 'declined')", name="card_intents_status_known"),
    *_currency_is_a_code("card_intents"),
)
"""A card payment the cabinet opened: its status moves once, in the transaction that stages the
payment an approval makes (:func:`ledger.service.settle_card_payment`)."""


# --- subscriber accounts -------------------------------------------------------------------


def _state(row: Any) -> AccountState:
    return AccountState(
        row.number, row.currency, row.main, row.bonus, PaymentType(row.payment_type),
        row.credit_limit, row.is_open, row.version,
    )


def _state_row(state: AccountState) -> dict[str, Any]:
    return {
        "number": state.number, "currency": state.currency, "main": state.main, "bonus": state.bonus,
        "payment_type": state.payment_type.value, "credit_limit": state.credit_limit, "is_open": state.is_open,
        "version": state.version,
    }


async def lock_accounts(conn: AsyncConnection, numbers: Collection[str]) -> dict[str, AccountState]:
    """The accounts' current states, row-locked in number order until the transaction ends."""
    if not numbers:
        return {}
    rows = await conn.execute(
        select(accounts).where(any_of(conn, accounts.c.number, sorted(numbers)))
        .order_by(accounts.c.number).with_for_update()
    )
    return {row.number: _state(row) for row in rows}


async def account(conn: AsyncConnection, number: str) -> AccountState | None:
    row = (await conn.execute(select(accounts).where(accounts.c.number == number))).first()
    return _state(row) if row else None


async def open_accounts(conn: AsyncConnection, states: Sequence[AccountState], at: datetime) -> None:
    await bulk_insert(conn, accounts, [{**_state_row(s), "opened_at": at} for s in states], ignore_duplicates=True)


async def save_accounts(conn: AsyncConnection, states: Iterable[AccountState]) -> None:
    await bulk_update(conn, accounts, ["number"], [_state_row(state) for state in states])


# --- the journal ----------------------------------------------------------------------------


async def reversed_ids(conn: AsyncConnection, ids: Collection[UUID]) -> set[UUID]:
    if not ids:
        return set()
    result = await conn.execute(select(journal.c.reverses).where(journal.c.reverses.in_(list(ids))))
    return set(result.scalars())


async def append(conn: AsyncConnection, entries: Sequence[Transaction | AccountFact], recorded_at: datetime) -> None:
    """Append money transactions and account facts to the journal, in order, chaining their
    hashes, and move the projections of operator accounts. Subscriber projections are saved by
    the caller (it holds their states)."""
    if not entries:
        return
    transactions = [entry for entry in entries if isinstance(entry, Transaction)]
    await _move_operator_balances(conn, transactions)
    head = (await conn.execute(select(chain_head).where(chain_head.c.id == 1).with_for_update())).first()
    previous, length = (head.hash, head.length) if head else (GENESIS_HASH, 0)
    journal_rows: list[dict[str, Any]] = []
    posting_rows: list[dict[str, Any]] = []
    for entry in entries:
        prev_hash = previous
        if isinstance(entry, Transaction):
            previous = transaction_hash(previous, entry)
            journal_rows.append({
                "txn_id": entry.id, "kind": entry.kind.value, "business_key": entry.business_key,
                "cause_event_id": entry.cause_event_id, "cause_type": entry.cause_type,
                "occurred_at": entry.occurred_at, "recorded_at": recorded_at, "reverses": entry.reverses,
                "operator": entry.operator.who if entry.operator else None,
                "operator_reason": entry.operator.why if entry.operator else None,
                "hash": previous, "prev_hash": prev_hash, "account_settings": None,
            })
            posting_rows.extend(
                {"txn_id": entry.id, "account": account, "amount": amount, "currency": currency}
                for account, amount, currency in entry.postings
            )
        else:
            previous = fact_hash(previous, entry)
            journal_rows.append({
                "txn_id": entry.id, "kind": entry.kind.value, "business_key": entry.business_key,
                "cause_event_id": entry.cause_event_id, "cause_type": entry.cause_type,
                "occurred_at": entry.occurred_at, "recorded_at": recorded_at, "reverses": None,
                "operator": None, "operator_reason": None,
                "hash": previous, "prev_hash": prev_hash, "account_settings": entry.settings.encode(),
            })
    await bulk_insert(conn, journal, journal_rows)
    await bulk_insert(conn, postings, posting_rows)
    values = {"hash": previous, "length": length + len(entries)}
    if head:
        await conn.execute(update(chain_head).where(chain_head.c.id == 1).values(**values))
    else:
        await conn.execute(insert(chain_head).values(id=1, **values))


async def lock_operator_balances(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Every operator account's balance per currency, row-locked until the transaction ends: the
    bound on them is checked against what no other writer can move meanwhile. A few dozen rows
    (channels, fee kinds, suspense... per currency), taken after the subscriber accounts."""
    rows = await conn.execute(
        select(operator_balances).order_by(operator_balances.c.code, operator_balances.c.currency).with_for_update()
    )
    return {(row.code, row.currency): row.balance for row in rows}


async def _move_operator_balances(conn: AsyncConnection, transactions: Sequence[Transaction]) -> None:
    deltas: dict[tuple[str, str], int] = {}
    for txn in transactions:
        for account, amount, currency in txn.postings:
            if is_operator_account(account):
                deltas[(account, currency)] = deltas.get((account, currency), 0) + amount
    if not deltas:
        return
    keys = sorted(deltas)
    await conn.execute(
        insert_ignoring_duplicates(conn, operator_balances),
        [{"code": code, "currency": currency, "balance": 0} for code, currency in keys],
    )
    await conn.execute(
        update(operator_balances)
        .where(operator_balances.c.code == bindparam("code_key"), operator_balances.c.currency == bindparam("currency_key"))
        .values(balance=operator_balances.c.balance + bindparam("delta")),
        [{"code_key": code, "currency_key": currency, "delta": deltas[(code, currency)]} for code, currency in keys],
    )


def _transaction(row: Any, lines: list[Posting]) -> Transaction:
    operator = OperatorNote(row.operator, row.operator_reason) if row.operator else None
    return Transaction(
        row.txn_id, TransactionKind(row.kind), tuple(lines), row.cause_event_id, row.cause_type,
        row.occurred_at, row.business_key, row.reverses, operator,
    )


async def transaction(conn: AsyncConnection, txn_id: UUID) -> Transaction | None:
    """The money transaction ``txn_id`` (None: no such transaction, or an account fact)."""
    row = (await conn.execute(select(journal).where(journal.c.txn_id == txn_id))).first()
    if row is None or row.kind in FACT_KINDS:
        return None
    lines = await conn.execute(
        select(postings.c.account, postings.c.amount, postings.c.currency)
        .where(postings.c.txn_id == txn_id).order_by(postings.c.id)
    )
    return _transaction(row, [Posting(*line) for line in lines])


async def entries(
    conn: AsyncConnection, account_codes: Collection[str], *, as_of: datetime | None = None
) -> list[JournalEntry]:
    """The journal entries of some accounts, in journal order."""
    query = (
        select(journal.c.txn_id, journal.c.kind, postings.c.account, postings.c.amount,
               postings.c.currency, journal.c.occurred_at, journal.c.cause_type, journal.c.business_key)
        .join(journal, journal.c.txn_id == postings.c.txn_id)
        .where(postings.c.account.in_(list(account_codes)))
        .order_by(journal.c.seq, postings.c.id)
    )
    if as_of is not None:
        query = query.where(journal.c.occurred_at <= as_of)
    rows = await conn.execute(query)
    return [JournalEntry(r.txn_id, TransactionKind(r.kind), r.account, r.amount, r.currency, r.occurred_at, r.cause_type,
                         r.business_key) for r in rows]


async def posted_balances(conn: AsyncConnection) -> tuple[dict[tuple[str, str], int], int]:
    """Every (account, currency) posted to, with the sum of its postings, and how many postings
    were summed: a full rebuild's balances. A balance means nothing but the sum of its postings
    (a reversal is postings of its own), so the database sums them in one ``GROUP BY`` instead of
    sending every posting to Python."""
    rows = await conn.execute(
        select(postings.c.account, postings.c.currency, func.sum(postings.c.amount), func.count())
        .group_by(postings.c.account, postings.c.currency))
    balances: dict[tuple[str, str], int] = {}
    summed = 0
    for account, currency, total, count in rows:
        balances[(account, currency)] = int(total)  # PostgreSQL's sum of bigints is a numeric
        summed += count
    return balances, summed


async def _chunks(
    conn: AsyncConnection, query: Select[Any], batch: int
) -> AsyncGenerator[Sequence[Sequence[Any]], None]:
    """A large query's rows in chunks of tuples, in the query's column order.

    On PostgreSQL they come straight from the driver's server-side cursor (the transaction is
    the caller's): a million SQLAlchemy row objects would cost more than the work done on them.
    The driver's values are those the column types give here: timezone-aware datetimes, UUIDs
    (a subclass of :class:`uuid.UUID`), bytes."""
    if conn.dialect.name == "postgresql":
        await conn.execute(select(1))  # the adapter opens its transaction on the first statement
        driver = (await conn.get_raw_connection()).driver_connection
        cursor = await driver.cursor(str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
        while chunk := await cursor.fetch(batch):
            yield chunk
        return
    result = await conn.stream(query.execution_options(yield_per=batch))
    async for chunk in result.partitions(batch):
        yield chunk


async def count_postings(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(postings)) or 0


async def double_entry_rows(conn: AsyncConnection) -> tuple[dict[str, int], list[UUID]]:
    """Totals per currency, and the transactions whose postings do not sum to zero."""
    totals = {c: int(t) for c, t in await conn.execute(
        select(postings.c.currency, func.sum(postings.c.amount)).group_by(postings.c.currency))}
    unbalanced = (await conn.execute(
        select(postings.c.txn_id).group_by(postings.c.txn_id).having(func.sum(postings.c.amount) != 0)
    )).scalars().all()
    return totals, list(unbalanced)


async def stored_projections(conn: AsyncConnection) -> tuple[dict[tuple[str, str], int], dict[str, AccountSettings]]:
    """The projections as stored: balances by account code and currency, and every account's
    settings (what a rebuild and an audit compare against), the accounts read once for both."""
    balances: dict[tuple[str, str], int] = {}
    settings: dict[str, AccountSettings] = {}
    for number, currency, main, bonus, payment_type, credit_limit, is_open in await conn.execute(select(
            accounts.c.number, accounts.c.currency, accounts.c.main, accounts.c.bonus, accounts.c.payment_type,
            accounts.c.credit_limit, accounts.c.is_open)):
        balances[(main_account(number), currency)] = main
        balances[(bonus_account(number), currency)] = bonus
        settings[number] = AccountSettings(number, currency, PaymentType(payment_type), credit_limit, is_open)
    for code, currency, balance in await conn.execute(select(operator_balances.c.code, operator_balances.c.currency,
                                                             operator_balances.c.balance)):
        balances[(code, currency)] = balance
    return balances, settings


async def journaled_settings(conn: AsyncConnection) -> list[str]:
    """The settings every account fact stored, in journal order (a rebuild's check of the
    settings: the facts are few beside the postings)."""
    return list((await conn.execute(
        select(journal.c.account_settings)
        .where(journal.c.kind.in_(sorted(FACT_KINDS)), journal.c.account_settings.is_not(None))
        .order_by(journal.c.seq)
    )).scalars())


async def overwrite_projections(
    conn: AsyncConnection, replayed: Mapping[tuple[str, str], int], settings: Mapping[str, AccountSettings],
    opened_at: Mapping[str, datetime],
) -> None:
    """Make every projection what the journal says (a rebuild that repairs): each account the
    facts know, with its settings and its balances in its currency (created if it is missing;
    an existing row keeps its version); each operator account in each currency the journal posted
    it in. A row the journal does not know (an account no fact opened, an operator account in a
    currency never posted) is deleted: no money may sit on it."""
    # An account row the repair creates again starts its version past any it had announced (each
    # of its changes is a journal entry), so the views of it take what it announces next.
    chain = await head(conn)
    recreated_version = chain.length if chain else 0
    rows = [{"number": number, "currency": known.currency, "payment_type": known.payment_type.value,
             "credit_limit": known.credit_limit, "is_open": known.is_open,
             "main": replayed.get((main_account(number), known.currency), 0),
             "bonus": replayed.get((bonus_account(number), known.currency), 0),
             "opened_at": opened_at[number], "version": recreated_version}
            for number, known in sorted(settings.items())]
    if rows:
        await conn.execute(upsert(conn, accounts, ["number"], ["currency", "payment_type", "credit_limit", "is_open",
                                                              "main", "bonus"]), rows)
    strangers = set((await conn.execute(select(accounts.c.number))).scalars()) - set(settings)
    if strangers:
        await conn.execute(accounts.delete().where(accounts.c.number.in_(sorted(strangers))))
    posted = sorted(key for key in replayed if is_operator_account(key[0]))
    unposted = set((await conn.execute(select(operator_balances.c.code, operator_balances.c.currency))).all()) \
        - set(posted)
    for code, currency in sorted(unposted):
        await conn.execute(operator_balances.delete().where(operator_balances.c.code == code,
                                                            operator_balances.c.currency == currency))
    if posted:
        await conn.execute(upsert(conn, operator_balances, ["code", "currency"], ["balance"]), [
            {"code": code, "currency": currency, "balance": replayed[(code, currency)]} for code, currency in posted])


# --- idempotency records -------------------------------------------------------------------


def _idempotency_record(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        KeyFamily(row.family), row.key, row.fingerprint, Fate(row.fate), row.refusal,
        tuple(UUID(i) for i in row.transaction_ids.split()), row.cause_event_id, row.answer,
    )


async def idempotency_records(
    conn: AsyncConnection, keys: Collection[tuple[KeyFamily, str]]
) -> dict[tuple[KeyFamily, str], IdempotencyRecord]:
    """The records of these business keys, where the keys were seen before."""
    if not keys:
        return {}
    found: dict[tuple[KeyFamily, str], IdempotencyRecord] = {}
    for family in {family for family, _ in keys}:
        names = sorted({key for f, key in keys if f is family})
        rows = await conn.execute(select(idempotency_keys).where(
            idempotency_keys.c.family == family.value, any_of(conn, idempotency_keys.c.key, names)))
        found.update(((record.family, record.key), record) for record in map(_idempotency_record, rows))
    return found


async def count_records(conn: AsyncConnection, family: KeyFamily, key_prefix: str) -> int:
    return await conn.scalar(select(func.count()).select_from(idempotency_keys).where(
        idempotency_keys.c.family == family.value, idempotency_keys.c.key.startswith(key_prefix, autoescape=True),
    )) or 0


async def save_records(conn: AsyncConnection, records: Sequence[IdempotencyRecord], at: datetime) -> None:
    """Insert, never upsert: a second record for a key fails the whole transaction."""
    await bulk_insert(conn, idempotency_keys, [
        {"family": r.family.value, "key": r.key, "fingerprint": r.fingerprint, "fate": r.fate.value,
         "refusal": r.refusal, "transaction_ids": " ".join(str(i) for i in r.transaction_ids),
         "cause_event_id": r.cause_event_id, "answer": r.answer, "recorded_at": at}
        for r in records
    ])


# --- suspense -------------------------------------------------------------------------------


def _suspense_row(item: SuspenseItem) -> dict[str, Any]:
    return {
        "transaction_id": item.transaction_id, "typed_account": item.typed_account,
        "channel": item.channel.value, "reference": item.reference, "amount": item.amount,
        "currency": item.currency, "received_at": item.received_at, "reason": item.reason.value,
        "status": item.status.value, "settled_by": item.settled_by,
    }


def _suspense_item(row: Any) -> SuspenseItem:
    return SuspenseItem(
        row.transaction_id, row.typed_account, PaymentChannel(row.channel), row.reference, row.amount,
        row.currency, row.received_at, UnmatchedReason(row.reason), SuspenseStatus(row.status), row.settled_by,
    )


async def save_suspense(conn: AsyncConnection, items: Sequence[SuspenseItem]) -> None:
    for item in items:
        row = _suspense_row(item)
        changed = await conn.execute(
            update(suspense).where(suspense.c.transaction_id == item.transaction_id)
            .values(status=row["status"], settled_by=row["settled_by"])
        )
        if not changed.rowcount:
            await conn.execute(insert(suspense).values(**row))


async def suspense_item(conn: AsyncConnection, transaction_id: UUID, *, lock: bool = False) -> SuspenseItem | None:
    query = select(suspense).where(suspense.c.transaction_id == transaction_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return _suspense_item(row) if row else None


async def suspense_settled_by(conn: AsyncConnection, settled_by: UUID) -> SuspenseItem | None:
    row = (await conn.execute(select(suspense).where(suspense.c.settled_by == settled_by))).first()
    return _suspense_item(row) if row else None


async def open_suspense(conn: AsyncConnection) -> list[SuspenseItem]:
    rows = await conn.execute(
        select(suspense).where(suspense.c.status == SuspenseStatus.OPEN.value).order_by(suspense.c.received_at)
    )
    return [_suspense_item(row) for row in rows]


# --- audit and repair ----------------------------------------------------------------------


async def consistent_snapshot(conn: AsyncConnection) -> None:
    """Make the rest of the caller's transaction read one snapshot (PostgreSQL REPEATABLE READ):
    the journal, the chain head and the projections as of one moment, while traffic goes on.
    SQLite's transactions are serialized already. Must be the transaction's first statement."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f-]+")


def shares_snapshots(conn: AsyncConnection) -> bool:
    """Whether other connections can read the caller's snapshot (PostgreSQL's exported ones)."""
    return conn.dialect.name == "postgresql"


async def export_snapshot(conn: AsyncConnection) -> str:
    """The id of the caller's snapshot (taken with :func:`consistent_snapshot`), for other
    connections to read the same rows with :func:`adopt_snapshot` while the caller's transaction
    lasts."""
    return await conn.scalar(text("SELECT pg_export_snapshot()"))


async def adopt_snapshot(conn: AsyncConnection, snapshot: str) -> None:
    """Make the caller's transaction read the snapshot another one exported. Must be the
    transaction's first statement. The id is spelled into the statement (PostgreSQL takes no
    parameter there), so it is checked to be one first."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))


async def lock_out_writers(conn: AsyncConnection) -> None:
    """Hold every writer off until the caller's transaction ends, so what it replays is what it
    writes over. PostgreSQL: the projections and the chain head locked in EXCLUSIVE mode, in the
    writers' lock order (accounts, operator balances, chain head); it waits for the writers in
    flight and blocks the next ones at their first row lock, while plain reads go on. SQLite:
    the transaction began IMMEDIATE and is the only writer already."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE accounts, operator_balances, chain_head IN EXCLUSIVE MODE"))


async def head(conn: AsyncConnection) -> ChainHead | None:
    row = (await conn.execute(select(chain_head.c.length, chain_head.c.hash).where(chain_head.c.id == 1))).first()
    return ChainHead(row.length, row.hash) if row else None


_JOURNAL_ROWS = (
    select(postings.c.account, postings.c.amount, postings.c.currency, journal.c.seq, journal.c.txn_id, journal.c.kind,
           journal.c.cause_event_id, journal.c.cause_type, journal.c.occurred_at, journal.c.business_key,
           journal.c.reverses, journal.c.operator, journal.c.operator_reason, journal.c.hash,
           journal.c.account_settings, journal.c.recorded_at)
    .select_from(journal)
    .outerjoin(postings, postings.c.txn_id == journal.c.txn_id)
    .order_by(journal.c.seq, postings.c.id)
)
"""One row per posting (a journal row without postings once, with null posting columns): the
posting's columns first, then the journal row's in :class:`JournalRecord`'s order from ``seq``."""

_JOURNAL_IN_ORDER = select(
    journal.c.seq, journal.c.txn_id, journal.c.kind, journal.c.cause_event_id, journal.c.cause_type,
    journal.c.occurred_at, journal.c.business_key, journal.c.reverses, journal.c.operator, journal.c.operator_reason,
    journal.c.hash, journal.c.account_settings,
    case((journal.c.account_settings.is_not(None), journal.c.recorded_at)),
).order_by(journal.c.seq)
"""The journal rows alone, in :class:`JournalRecord`'s order but for the postings. ``recorded_at``
only beside settings, the one place the audit reads it (when an account was opened): decoding a
timestamp costs more than anything else in a row."""

_POSTINGS_IN_CHAIN_ORDER = (
    select(journal.c.seq, postings.c.account, postings.c.amount, postings.c.currency)
    .select_from(postings)
    .join(journal, journal.c.txn_id == postings.c.txn_id)
    .order_by(journal.c.seq, postings.c.id)
)
"""Every posting with its journal row's ``seq``, in journal order: sorting these narrow rows costs
the server a third of sorting the postings with every journal column beside them."""


class JournalSpan(NamedTuple):
    """A stretch of the journal: the rows whose ``seq`` lies from ``first_seq`` to ``last_seq``
    (both included), ``records`` of them, the first at 0-based position ``start`` in the chain."""

    first_seq: int
    last_seq: int
    start: int
    records: int


async def journal_spans(conn: AsyncConnection, parts: int) -> list[JournalSpan]:
    """The journal cut into at most ``parts`` spans of equally many ``seq`` values, in order,
    empty ones left out: about as many rows each, the ledger's ``seq`` having few gaps."""
    lowest, highest = (await conn.execute(select(func.min(journal.c.seq), func.max(journal.c.seq)))).one()
    if lowest is None:
        return []
    width = -(-(highest - lowest + 1) // parts)
    bounds = [(first, min(first + width - 1, highest)) for first in range(lowest, highest + 1, width)]
    counts = (await conn.execute(select(*(func.count().filter(journal.c.seq.between(first, last))
                                          for first, last in bounds)))).one()
    spans, start = [], 0
    for (first, last), records in zip(bounds, counts, strict=True):
        if records:
            spans.append(JournalSpan(first, last, start, records))
        start += records
    return spans


async def span_prev_hash(conn: AsyncConnection, span: JournalSpan) -> bytes:
    """The predecessor's hash the span's first row stores: what its chain says it follows."""
    return await conn.scalar(select(journal.c.prev_hash).where(journal.c.seq >= span.first_seq)
                             .order_by(journal.c.seq).limit(1))


async def raw_journal(conn: AsyncConnection, batch: int = 50_000) -> AsyncIterator[JournalRecord]:
    """Every journal row with its postings, as stored, in ``seq`` order: what the audit reads.
    A row left without postings comes with none, never dropped."""
    async for chunk in raw_journal_chunks(conn, batch):
        for record in chunk:
            yield record


async def raw_journal_chunks(conn: AsyncConnection, batch: int = 50_000,
                             span: JournalSpan | None = None) -> AsyncIterator[list[JournalRecord]]:
    """:func:`raw_journal` in lists of about ``batch`` records (a transaction is never split);
    the rows of ``span`` alone if given.

    On PostgreSQL the journal rows and the postings are two streams of the driver's server-side
    cursors, merged here by ``seq``: each journal column crosses the wire and is decoded once per
    transaction, not once per posting. SQLite reads one outer join."""
    if conn.dialect.name != "postgresql":
        async for chunk in _joined_journal_chunks(conn, batch, _within(_JOURNAL_ROWS, span)):
            yield chunk
        return
    lines = _chunks(conn, _within(_POSTINGS_IN_CHAIN_ORDER, span), batch)
    pending: Sequence[Any] = ()
    taken = 0
    try:
        async for rows in _chunks(conn, _within(_JOURNAL_IN_ORDER, span), batch):
            records = []
            for row in rows:
                seq = row[0]
                own: list[Posting] = []
                while True:
                    if taken == len(pending):
                        pending, taken = await _next_chunk(lines), 0
                        if not pending:
                            break
                    line = pending[taken]
                    if line[0] != seq:
                        break
                    own.append(Posting(line[1], line[2], line[3]))
                    taken += 1
                records.append(JournalRecord(seq, row[1], row[2], tuple(own), *row[3:]))
            yield records
    finally:
        await lines.aclose()


async def _next_chunk(chunks: AsyncIterator[Sequence[Any]]) -> Sequence[Any]:
    """The next chunk, or none once they are all read (again and again)."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return ()


def _within(query: Select[Any], span: JournalSpan | None) -> Select[Any]:
    return query if span is None else query.where(journal.c.seq.between(span.first_seq, span.last_seq))


async def _joined_journal_chunks(conn: AsyncConnection, batch: int,
                                 query: Select[Any]) -> AsyncIterator[list[JournalRecord]]:
    records: list[JournalRecord] = []
    current: Sequence[Any] | None = None
    lines: list[Posting] = []
    async for chunk in _chunks(conn, query, batch):
        for row in chunk:
            if current is not None and row[3] != current[3]:
                records.append(_record(current, lines))
                lines = []
            current = row
            if row[0] is not None:
                lines.append(Posting(row[0], row[1], row[2]))
        if records:
            yield records
            records = []
    if current is not None:
        yield [_record(current, lines)]


def _record(row: Sequence[Any], lines: list[Posting]) -> JournalRecord:
    seq, txn_id, kind, *rest = row[3:]
    return JournalRecord(seq, txn_id, kind, tuple(lines), *rest)


# --- card payment intents -------------------------------------------------------------------


def _intent(row: Any) -> CardIntent:
    return CardIntent(intent_id=row.intent_id, account=row.account, amount=Money(minor=row.amount, currency=row.currency),
                      status=IntentStatus(row.status), created_at=row.created_at,
                      acquirer_reference=row.acquirer_reference, settled_at=row.settled_at)


async def insert_intent(conn: AsyncConnection, intent: CardIntent) -> None:
    await conn.execute(insert(card_intents).values(
        intent_id=intent.intent_id, account=intent.account, amount=intent.amount.minor,
        currency=intent.amount.currency, status=intent.status.value, created_at=intent.created_at))


async def card_intent(conn: AsyncConnection, intent_id: UUID, *, for_update: bool = False) -> CardIntent | None:
    query = select(card_intents).where(card_intents.c.intent_id == intent_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    return _intent(row) if row else None


async def settle_intent(conn: AsyncConnection, intent: CardIntent) -> None:
    await conn.execute(update(card_intents).where(card_intents.c.intent_id == intent.intent_id).values(
        status=intent.status.value, acquirer_reference=intent.acquirer_reference, settled_at=intent.settled_at))
