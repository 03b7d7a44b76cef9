"""Balances are a projection of the journal: these folds rebuild them and check the journal.

The journal is read as entries, one per posting, in journal order. Replaying one account shows
how every entry moved its balance; rebuilding all balances is the fast path operations use after
a fix (a plain dict sum, fed straight from database rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from billing_contracts.catalog.ledger import TransactionKind

from ledger.domain.transactions import Transaction


class JournalEntry(NamedTuple):
    """One posting with the transaction facts that explain it."""

    transaction_id: UUID
    kind: TransactionKind
    account: str
    amount: int
    currency: str
    occurred_at: datetime
    cause_type: str
    business_key: str
    """What the transaction was for: ``channel:reference`` of a payment, the charge id of a charge."""


def journal_entries(transactions: Iterable[Transaction]) -> Iterator[JournalEntry]:
    for txn in transactions:
        for account, amount, currency in txn.postings:
            yield JournalEntry(
                txn.id, txn.kind, account, amount, currency, txn.occurred_at, txn.cause_type, txn.business_key
            )


class ReplayStep(NamedTuple):
    entry: JournalEntry
    before: int
    after: int


def replay(
    entries: Iterable[JournalEntry], *, account: str | None = None, as_of: datetime | None = None
) -> Iterator[ReplayStep]:
    """Each entry with the balance of its account before and after it.

    ``account`` keeps one account's entries; ``as_of`` keeps the entries booked at or before
    that moment, so the last step of each account is its balance as of then.
    """
    balances: dict[str, int] = {}
    for entry in entries:
        if account is not None and entry.account != account:
            continue
        if as_of is not None and entry.occurred_at > as_of:
            continue
        before = balances.get(entry.account, 0)
        after = before + entry.amount
        balances[entry.account] = after
        yield ReplayStep(entry, before, after)


def rebuild_balances(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Sum (account code, amount) rows into a balance per account: the fast path of a rebuild."""
    balances: dict[str, int] = {}
    get = balances.get
    for account, amount in rows:
        balances[account] = get(account, 0) + amount
    return balances


def balances_of(transactions: Iterable[Transaction]) -> dict[str, int]:
    return rebuild_balances(
        (account, amount) for txn in transactions for account, amount, _ in txn.postings
    )


class BalanceMismatch(NamedTuple):
    account: str
    currency: str
    stored: int
    replayed: int


Balances = Mapping[tuple[str, str], int]
"""Balances by (account code, currency): an operator account holds one balance per currency, and
money moved between two of them is drift in each."""


def find_mismatches(stored: Balances, replayed: Balances) -> list[BalanceMismatch]:
    """Every (account, currency) whose stored balance differs from the journal's (a missing one
    counts as 0)."""
    return [
        BalanceMismatch(account, currency, stored.get((account, currency), 0), replayed.get((account, currency), 0))
        for account, currency in sorted(stored.keys() | replayed.keys())
        if stored.get((account, currency), 0) != replayed.get((account, currency), 0)
    ]


@dataclass(frozen=True, slots=True)
class DoubleEntryReport:
    totals: dict[str, int]
    """Sum of every posting per currency: zero in a sound journal."""
    unbalanced: tuple[UUID, ...]
    """Transactions whose own postings do not sum to zero, in the order first seen."""

    @property
    def balanced(self) -> bool:
        return not self.unbalanced and not any(self.totals.values())


def check_double_entry(rows: Iterable[tuple[UUID, str, int]]) -> DoubleEntryReport:
    """Check (transaction id, currency, amount) rows: the journal and each transaction sum
    to zero."""
    totals: dict[str, int] = {}
    per_transaction: dict[UUID, int] = {}
    for transaction_id, currency, amount in rows:
        totals[currency] = totals.get(currency, 0) + amount
        per_transaction[transaction_id] = per_transaction.get(transaction_id, 0) + amount
    unbalanced = tuple(txn_id for txn_id, total in per_transaction.items() if total != 0)
    return DoubleEntryReport(totals, unbalanced)
