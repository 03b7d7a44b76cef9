"""Tamper evidence: every transaction's hash covers its content and the previous hash.

A projection rebuilt from the journal only proves the projection; the chain proves the journal:
editing, deleting or reordering a stored transaction breaks every link from there on.
The encoding is canonical (fixed field order, UTC times with microseconds, postings in their
stored order), so the same transaction hashes the same on every machine and every version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC
from typing import NamedTuple
from uuid import UUID

from ledger.domain.transactions import Transaction

GENESIS_HASH = bytes(32)
"""The "previous hash" of the first transaction in a chain."""


def canonical_encoding(txn: Transaction) -> bytes:
    operator = None if txn.operator is None else [txn.operator.who, txn.operator.why]
    content = [
        str(txn.id),
        txn.kind.value,
        [[account, amount, currency] for account, amount, currency in txn.postings],
        None if txn.cause_event_id is None else str(txn.cause_event_id),
        txn.cause_type,
        txn.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        txn.business_key,
        None if txn.reverses is None else str(txn.reverses),
        operator,
    ]
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


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
