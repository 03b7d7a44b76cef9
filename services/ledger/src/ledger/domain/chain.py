"""Tamper evidence: every transaction's hash covers its content and the previous hash.

A projection rebuilt from the journal only proves the projection; the chain proves the journal:
editing, deleting or reordering a stored transaction breaks every link from there on.
The encoding is canonical (fixed field order, UTC times with microseconds, postings in their
stored order), so the same transaction hashes the same on every machine and every version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from json.encoder import encode_basestring as _string
from typing import NamedTuple
from uuid import UUID

from ledger.domain.transactions import Transaction

GENESIS_HASH = bytes(32)
"""The "previous hash" of the first transaction in a chain."""


def canonical_encoding(txn: Transaction) -> bytes:
    """Compact JSON (UTF-8, no spaces) of the transaction's content as a list:
    ``[id, kind, [[account, amount, currency], ...], cause_event_id, cause_type, occurred_at,
    business_key, reverses, [who, why] or null]``.

    Written out by hand because every posted transaction is hashed: this is several times
    faster than ``json.dumps`` over the same list, and produces the same bytes (a test holds
    the two together)."""
    operator = None if txn.operator is None else (txn.operator.who, txn.operator.why)
    return encode_content(txn.id, txn.kind.value, txn.postings, txn.cause_event_id, txn.cause_type,
                          txn.occurred_at, txn.business_key, txn.reverses, operator)


def encode_content(
    txn_id: UUID, kind: str, postings: Iterable[tuple[str, int, str]], cause_event_id: UUID | None,
    cause_type: str, occurred_at: datetime, business_key: str, reverses: UUID | None,
    operator: tuple[str, str] | None, *, settings: str | None = None,
) -> bytes:
    """:func:`canonical_encoding` of a transaction's fields as stored, whatever they hold: the
    verifier hashes raw journal rows with it, including rows no :class:`Transaction` accepts.
    An account fact (no postings) adds its settings as a tenth element; a money transaction
    has none, so its bytes are those it always had."""
    lines = ",".join([f"[{_string(account)},{amount},{_string(currency)}]" for account, amount, currency in postings])
    note = "null" if operator is None else f"[{_string(operator[0])},{_string(operator[1])}]"
    tail = "" if settings is None else f",{_string(settings)}"
    return (
        f'["{txn_id}",{_string(kind)},[{lines}],{_uuid(cause_event_id)},'
        f"{_string(cause_type)},\"{occurred_at.astimezone(UTC).isoformat(timespec='microseconds')}\","
        f"{_string(business_key)},{_uuid(reverses)},{note}{tail}]"
    ).encode()


def _uuid(value: UUID | None) -> str:
    return "null" if value is None else f'"{value}"'


def transaction_hash(prev_hash: bytes, txn: Transaction) -> bytes:
    return hashlib.sha256(prev_hash + canonical_encoding(txn)).digest()


class BrokenLink(NamedTuple):
    position: int
    """0-based position in the chain of the first transaction whose stored hash is wrong."""
    transaction_id: UUID
    expected: bytes
    stored: bytes


def verify_chain(
    links: Iterable[tuple[Transaction, bytes]], *, start: bytes = GENESIS_HASH
) -> BrokenLink | None:
    """Recompute the chain over (transaction, stored hash) pairs in chain order; the first link
    whose stored hash differs from the recomputed one, or None if the whole chain holds."""
    prev = start
    for position, (txn, stored) in enumerate(links):
        expected = transaction_hash(prev, txn)
        if expected != stored:
            return BrokenLink(position, txn.id, expected, stored)
        prev = expected
    return None
