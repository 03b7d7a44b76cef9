"""The auditor's fold: one pass over the journal's raw rows, every kind of damage reported.

The journal is read as stored, not as :class:`~ledger.domain.Transaction` objects: a transaction
whose postings no longer sum to zero is exactly what the audit must report, and the domain's
constructor refuses to build one. Nothing here raises on damaged data; every finding names the
transaction (id, 0-based position in the chain, ``seq``) and the accounts it touches.

What is checked, in the one pass:

- double entry: each transaction has at least two postings, and its postings sum to zero per
  currency;
- the hash chain: each stored hash is the hash of its transaction's content and the stored hash
  before it. The first broken link makes every later transaction suspect: whoever could write
  the broken one could have rewritten the rest consistently;
- the chain head (the ``chain_head`` row: length and hash): the journal is neither shorter (the
  newest transactions cut off) nor longer (rows added behind the ledger's back) than it says;
- seals (chain heads published outside the database, or written down by an auditor): the
  journal still reproduces each one, so a history rewritten consistently, chain head included,
  is found too;
- projections: the stored balances equal the balances replayed from the postings, per account
  and currency (an operator account holds one balance per currency), and the stored settings
  equal those the account facts leave.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, TypeVar
from uuid import UUID

from billing_contracts.money import format_amount

from ledger.domain.chain import GENESIS_HASH, BrokenLink, encode_content
from ledger.domain.facts import (
    FACT_KINDS,
    AccountSettings,
    FactKind,
    SettingsMismatch,
    describe_settings,
    find_settings_mismatches,
)
from ledger.domain.replay import BalanceMismatch, Balances, find_mismatches
from ledger.domain.transactions import Posting


_Key = TypeVar("_Key")


class JournalRecord(NamedTuple):
    """One journal row and its postings, exactly as stored."""

    seq: int
    id: UUID
    kind: str
    postings: tuple[Posting, ...]
    cause_event_id: UUID | None
    cause_type: str
    occurred_at: datetime
    business_key: str
    reverses: UUID | None
    operator: str | None
    operator_reason: str | None
    hash: bytes
    account_settings: str | None = None
    """An account fact's settings, as stored."""
    recorded_at: datetime | None = None
    """When the row was written; the audit reads it of account facts only (PostgreSQL's read
    leaves it out of money transactions)."""

    def content_hash(self, previous: bytes) -> bytes:
        """The hash the ledger wrote for this content after ``previous`` (same bytes as
        :func:`~ledger.domain.transaction_hash` of the transaction, or
        :func:`~ledger.domain.fact_hash` of the account fact, it stored)."""
        return hashlib.sha256(previous + self.content()).digest()

    def content(self) -> bytes:
        """The canonical encoding of this row's content: what its hash covers."""
        operator = None if not self.operator else (self.operator, self.operator_reason or "")
        return encode_content(
            self.id, self.kind, self.postings, self.cause_event_id, self.cause_type, self.occurred_at,
            self.business_key, self.reverses, operator, settings=self.account_settings)


class ChainHead(NamedTuple):
    length: int
    hash: bytes


class Seal(NamedTuple):
    """A chain head recorded outside the database: the journal's first ``length`` transactions
    hash to ``hash``. ``source`` says where it came from (the broker, the command line)."""

    length: int
    hash: bytes
    source: str
    last_transaction_id: UUID | None = None


class FindingKind(StrEnum):
    TOO_FEW_POSTINGS = "too_few_postings"
    MALFORMED_FACT = "malformed_fact"
    UNBALANCED = "unbalanced"
    BROKEN_LINK = "broken_link"
    SUSPECT_AFTER_BREAK = "suspect_after_break"
    JOURNAL_SHORTER_THAN_HEAD = "journal_shorter_than_head"
    JOURNAL_LONGER_THAN_HEAD = "journal_longer_than_head"
    HEAD_HASH_DIFFERS = "head_hash_differs"
    SEAL_NOT_REPRODUCED = "seal_not_reproduced"
    PROJECTION_DRIFT = "projection_drift"


JOURNAL_DAMAGE = frozenset(FindingKind) - {FindingKind.PROJECTION_DRIFT}
"""Findings that put the journal itself in doubt: a repair from it would launder them."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    detail: str
    transaction_id: UUID | None = None
    position: int | None = None
    """0-based position in the chain (journal order)."""
    seq: int | None = None
    accounts: tuple[str, ...] = ()


@dataclass
class Audit:
    """Feed journal records in ``seq`` order, then :meth:`finish` with what the database and the
    seals say; the report lists every finding.

    An audit may also cover one span of the journal: its first record at position ``start``,
    linked to ``previous`` (the hash its predecessor stored, or the one the record says it
    follows: its ``prev_hash``). Spans audited apart are :meth:`join`-ed in order into a whole
    journal's audit, which then finishes; the findings are those one pass would have made, as
    long as each span was audited from the hash the one before it ends with (:meth:`joins`)."""

    seals: Iterable[Seal] = ()
    start: int = 0
    """The position of the first record fed."""
    previous: bytes = GENESIS_HASH
    """The hash the first record fed was written after."""
    records: int = 0
    """Journal rows read: the chain's length (money transactions and account facts)."""
    transactions: int = 0
    facts: int = 0
    entries: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    replayed: dict[tuple[str, str], int] = field(default_factory=dict)
    """Every (account, currency)'s balance replayed from the postings."""
    findings: list[Finding] = field(default_factory=list)
    settings: dict[str, AccountSettings] = field(default_factory=dict)
    """Every account as the journal's facts leave it."""
    opened_at: dict[str, datetime] = field(default_factory=dict)
    first_broken: BrokenLink | None = None
    _first: JournalRecord | None = None
    _last: JournalRecord | None = None
    _before_break: JournalRecord | None = None
    """The record before the first broken link, if any was fed before it."""
    _first_suspect: tuple[int, JournalRecord] | None = None
    _last_suspect: JournalRecord | None = None
    _suspects: int = 0
    _sealed_at: dict[int, list[Seal]] = field(default_factory=dict)
    _seals_checked: int = 0

    def __post_init__(self) -> None:
        for seal in self.seals:
            self._sealed_at.setdefault(seal.length - 1, []).append(seal)

    def feed(self, record: JournalRecord) -> None:
        position = self.start + self.records
        postings = record.postings
        replayed = self.replayed
        sums: dict[str, int] = {}
        self.entries += len(postings)
        for account, amount, currency in postings:
            sums[currency] = sums.get(currency, 0) + amount
            key = (account, currency)
            replayed[key] = replayed.get(key, 0) + amount
        totals = self.totals
        for currency, total in sums.items():
            totals[currency] = totals.get(currency, 0) + total
        is_fact = record.kind in FACT_KINDS
        if is_fact:
            self._account_fact(record, position)
        elif len(postings) < 2:
            self._find(FindingKind.TOO_FEW_POSTINGS, f"{len(postings)} posting(s); a transaction needs two",
                       record, position, _accounts(record))
        if any(sums.values()):
            unbalanced = {c: t for c, t in sums.items() if t}
            self._find(FindingKind.UNBALANCED, "postings sum to " + ", ".join(format_amount(t, c) for c, t in unbalanced.items())
                       + ", not zero", record, position, _accounts(record))
        last = self._last
        if last is None:
            self._first = record
        expected = record.content_hash(self.previous if last is None else last.hash)
        if expected != record.hash:
            self._find(FindingKind.BROKEN_LINK, "the stored hash is not the hash of this content after the one before",
                       record, position, _accounts(record))
            if self.first_broken is None:
                self.first_broken = BrokenLink(position, record.id, expected, record.hash)
                self._before_break = last
        elif self.first_broken is not None:
            self._suspect(position, record, record, 1)
        if self._sealed_at:
            self._check_seals(record, position)
        self._last = record
        self.records += 1
        if is_fact:
            self.facts += 1
        else:
            self.transactions += 1

    def _suspect(self, position: int, first: JournalRecord, last: JournalRecord, count: int) -> None:
        """``count`` records from ``first`` (at ``position``) to ``last`` link up after a broken link."""
        self._first_suspect = self._first_suspect or (position, first)
        self._last_suspect = last
        self._suspects += count

    @property
    def ends_with(self) -> bytes:
        """The hash the next record must have been written after: the last one fed stored it."""
        return self.previous if self._last is None else self._last.hash

    def joins(self, later: Audit) -> bool:
        """Whether ``later``, the audit of the span right after this one's, was audited from the
        hash this one ends with: then its first link was checked as one pass checks it."""
        return later.previous == self.ends_with

    def join(self, later: Audit) -> None:
        """Take in the audit of the span right after this one's (:meth:`joins` holding): its
        counts, sums, findings, settings and seals checked, as if its records had been fed here."""
        self._join_links(later)
        self.records += later.records
        self.transactions += later.transactions
        self.facts += later.facts
        self.entries += later.entries
        _add(self.totals, later.totals)
        _add(self.replayed, later.replayed)
        self.findings.extend(later.findings)
        self.settings.update(later.settings)
        for number, opened in later.opened_at.items():
            self.opened_at.setdefault(number, opened)
        covered = range(later.start, later.start + later.records)
        self._sealed_at = {position: seals for position, seals in self._sealed_at.items() if position not in covered}
        self._seals_checked += later._seals_checked
        self._first = self._first or later._first
        self._last = later._last or self._last

    def _join_links(self, later: Audit) -> None:
        """The first broken link over both spans, and the records that link up after it."""
        if self.first_broken is None:
            self.first_broken, self._before_break = later.first_broken, later._before_break
            self._first_suspect, self._last_suspect, self._suspects = (
                later._first_suspect, later._last_suspect, later._suspects)
            return
        if later._first is None or later._last is None:
            return
        if later.first_broken is None:
            self._suspect(later.start, later._first, later._last, later.records)
            return
        if later._before_break is not None:
            self._suspect(later.start, later._first, later._before_break, later.first_broken.position - later.start)
        if later._first_suspect is not None and later._last_suspect is not None:
            self._suspect(*later._first_suspect, later._last_suspect, later._suspects)

    def _check_seals(self, record: JournalRecord, position: int) -> None:
        for seal in self._sealed_at.pop(position, ()):
            self._seals_checked += 1
            if seal.hash != record.hash:
                self._find(FindingKind.SEAL_NOT_REPRODUCED,
                           f"{_sealed(seal)}; the journal's transaction at that length is {record.id} with hash"
                           f" {record.hash.hex()}", record, position, _accounts(record))

    def _account_fact(self, record: JournalRecord, position: int) -> None:
        try:
            settings = AccountSettings.decode(record.account_settings or "")
        except (ValueError, KeyError, TypeError):
            self._find(FindingKind.MALFORMED_FACT, "an account fact without readable settings", record, position)
            return
        if record.postings:
            self._find(FindingKind.MALFORMED_FACT, f"an account fact with {len(record.postings)} posting(s)",
                       record, position, (settings.number,))
        self.settings[settings.number] = settings
        if record.kind == FactKind.ACCOUNT_OPENED and record.recorded_at is not None:
            self.opened_at.setdefault(settings.number, record.recorded_at)

    def _find(self, kind: FindingKind, detail: str, record: JournalRecord | None = None, position: int | None = None,
              accounts: tuple[str, ...] = ()) -> None:
        self.findings.append(Finding(kind, detail, record.id if record else None, position,
                                     record.seq if record else None, accounts))

    def finish(self, head: ChainHead | None, stored_balances: Balances,
               stored_settings: Mapping[str, AccountSettings] | None = None) -> AuditReport:
        if self._first_suspect and self._last_suspect and self.first_broken:
            (position, first), last = self._first_suspect, self._last_suspect
            self.findings.append(Finding(
                FindingKind.SUSPECT_AFTER_BREAK,
                f"{self._suspects} transaction(s) after the first broken link at position {self.first_broken.position}"
                f" (seq {first.seq} to {last.seq}) link up among themselves, but nothing proves they are the ones"
                " the ledger wrote", first.id, position, first.seq))
        self._check_head(head)
        for seal in sorted((s for seals in self._sealed_at.values() for s in seals), key=lambda s: s.length):
            self._find(FindingKind.SEAL_NOT_REPRODUCED,
                       f"{_sealed(seal)}; the journal holds only {self.records}: its newest history was cut off")
        mismatches = find_mismatches(stored_balances, self.replayed)
        self.findings.extend(
            Finding(FindingKind.PROJECTION_DRIFT,
                    f"stored {format_amount(m.stored, m.currency)}, the journal says"
                    f" {format_amount(m.replayed, m.currency)}", accounts=(m.account,))
            for m in mismatches
        )
        settings = [] if stored_settings is None else find_settings_mismatches(stored_settings, self.settings)
        self.findings.extend(
            Finding(FindingKind.PROJECTION_DRIFT, f"stored settings {describe_settings(m.stored)}, the journal says"
                    f" {describe_settings(m.journaled)}", accounts=(m.account,))
            for m in settings
        )
        return AuditReport(self.records, self.facts, self.transactions, self.entries, self.totals, self.replayed,
                           self.findings, self.first_broken, mismatches, head, self._seals_checked, self.settings,
                           self.opened_at, settings)

    def _check_head(self, head: ChainHead | None) -> None:
        length, last = (head.length, head.hash) if head else (0, GENESIS_HASH)
        stored_last = self._last.hash if self._last else GENESIS_HASH
        if self.records < length:
            self._find(FindingKind.JOURNAL_SHORTER_THAN_HEAD,
                       f"the chain head counts {length} records, the journal holds {self.records}: "
                       "the newest were deleted", self._last, self.records - 1 if self._last else None)
        elif self.records > length:
            self._find(FindingKind.JOURNAL_LONGER_THAN_HEAD,
                       f"the chain head counts {length} records, the journal holds {self.records}: "
                       "rows were added behind the ledger's back", self._last, self.records - 1)
        elif stored_last != last:
            self._find(FindingKind.HEAD_HASH_DIFFERS,
                       f"the chain head's hash {last.hex()} is not the newest transaction's {stored_last.hex()}",
                       self._last, self.records - 1 if self._last else None)


def _add(sums: dict[_Key, int], more: Mapping[_Key, int]) -> None:
    for key, amount in more.items():
        sums[key] = sums.get(key, 0) + amount


def _accounts(record: JournalRecord) -> tuple[str, ...]:
    """The accounts a record touches, each once, in posting order: what a finding names."""
    return tuple(dict.fromkeys(p.account for p in record.postings))


def _sealed(seal: Seal) -> str:
    last = f" (the last {seal.last_transaction_id})" if seal.last_transaction_id else ""
    return f"{seal.source} sealed {seal.length} records{last} as {seal.hash.hex()}"


@dataclass(frozen=True)
class AuditReport:
    records: int
    """The chain's length: money transactions and account facts."""
    facts: int
    transactions: int
    entries: int
    """Postings read."""
    totals: dict[str, int]
    """Sum of every posting per currency: zero in a sound journal."""
    replayed: dict[tuple[str, str], int]
    """Every (account, currency)'s balance replayed from the postings."""
    findings: list[Finding]
    broken_link: BrokenLink | None
    """The first broken link of the chain, if any."""
    mismatches: list[BalanceMismatch]
    head: ChainHead | None
    seals_checked: int
    settings: dict[str, AccountSettings] = field(default_factory=dict)
    """Every account's settings as the journal's facts leave them."""
    opened_at: dict[str, datetime] = field(default_factory=dict)
    settings_mismatches: list[SettingsMismatch] = field(default_factory=list)
    """Accounts whose stored settings differ from the journal's (reported as projection drift)."""

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def journal_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in JOURNAL_DAMAGE]

    @property
    def unbalanced(self) -> list[UUID]:
        return [f.transaction_id for f in self.findings if f.kind is FindingKind.UNBALANCED and f.transaction_id]
