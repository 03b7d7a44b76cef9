"""Account facts: what the journal says about an account besides money.

An account's opening, its payment type and credit limit, and its closing move no money, yet
they decide what money may move. They are journaled as facts in the same chain as the money
transactions, so the journal is the whole truth: dropping every projection and replaying the
journal gives back each account with its settings, and editing a setting behind the ledger's
back breaks the chain like editing a posting does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

from billing_contracts.catalog.ledger import PaymentType
from billing_contracts.money import format_amount

from ledger.domain.accounts import AccountState
from ledger.domain.chain import encode_content
from ledger.domain.transactions import transaction_id_for


class FactKind(StrEnum):
    ACCOUNT_OPENED = "account_opened"
    ACCOUNT_SETTINGS_CHANGED = "account_settings_changed"
    ACCOUNT_CLOSED = "account_closed"


FACT_KINDS = frozenset(kind.value for kind in FactKind)


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """An account as a fact leaves it, balances aside (those are the postings' sum)."""

    number: str
    currency: str
    payment_type: PaymentType
    credit_limit: int
    is_open: bool

    @classmethod
    def of(cls, state: AccountState) -> AccountSettings:
        return cls(state.number, state.currency, state.payment_type, state.credit_limit, state.is_open)

    def encode(self) -> str:
        """Canonical JSON: what the chain hashes and the journal stores."""
        return json.dumps({"number": self.number, "currency": self.currency, "payment_type": self.payment_type.value,
                           "credit_limit": self.credit_limit, "is_open": self.is_open},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> AccountSettings:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on text no fact ever held."""
        data = json.loads(text)
        return cls(str(data["number"]), str(data["currency"]), PaymentType(data["payment_type"]),
                   int(data["credit_limit"]), bool(data["is_open"]))


def describe_settings(settings: AccountSettings | None) -> str:
    if settings is None:
        return "none (no such account)"
    limit = f", credit limit {format_amount(settings.credit_limit, settings.currency)}" if settings.credit_limit else ""
    return f"{settings.payment_type.value}{limit}, {'open' if settings.is_open else 'closed'}, in {settings.currency}"


class SettingsMismatch(NamedTuple):
    account: str
    stored: AccountSettings | None
    """None: the projection has no such account."""
    journaled: AccountSettings | None
    """None: no fact of the journal opened it."""


def find_settings_mismatches(
    stored: Mapping[str, AccountSettings], journaled: Mapping[str, AccountSettings]
) -> list[SettingsMismatch]:
    """Every account whose stored settings differ from those the journal's facts leave."""
    return [SettingsMismatch(number, stored.get(number), journaled.get(number))
            for number in sorted(stored.keys() | journaled.keys()) if stored.get(number) != journaled.get(number)]


def settings_of_facts(encoded: Iterable[str]) -> dict[str, AccountSettings]:
    """Every account as the facts' settings (stored text, in journal order) leave it; a fact
    without readable settings is skipped (the audit reports it)."""
    settings: dict[str, AccountSettings] = {}
    for text in encoded:
        try:
            fact = AccountSettings.decode(text)
        except (ValueError, KeyError, TypeError):
            continue
        settings[fact.number] = fact
    return settings


@dataclass(frozen=True, slots=True)
class AccountFact:
    id: UUID
    kind: FactKind
    settings: AccountSettings
    cause_event_id: UUID | None
    cause_type: str
    occurred_at: datetime
    business_key: str


def account_fact(kind: FactKind, state: AccountState, *, cause_event_id: UUID | None, cause_type: str,
                 at: datetime, business_key: str) -> AccountFact:
    """The fact that ``state`` is how the account is now; its id derives from what caused it, so a
    redelivered cause builds the same fact."""
    return AccountFact(transaction_id_for(kind, business_key), kind, AccountSettings.of(state), cause_event_id,
                       cause_type, at, business_key)


def facts_of_change(
    before: Mapping[str, AccountState], after: Iterable[AccountState], *, cause_event_id: UUID | None,
    cause_type: str, at: datetime, request: str,
) -> Iterator[AccountFact]:
    """The facts a decision leaves, found by comparing each account with how it was before: no
    code path can change an account's settings without the journal saying so. ``request`` names
    the decision (an event id, a request id), making each fact's key unique."""
    for state in after:
        old = before.get(state.number)
        if old is None:
            kind = FactKind.ACCOUNT_OPENED
        elif AccountSettings.of(old) == AccountSettings.of(state):
            continue
        else:
            kind = FactKind.ACCOUNT_CLOSED if old.is_open and not state.is_open else FactKind.ACCOUNT_SETTINGS_CHANGED
        yield account_fact(kind, state, cause_event_id=cause_event_id, cause_type=cause_type, at=at,
                           business_key=f"{state.number}:{request}")


def fact_hash(previous: bytes, fact: AccountFact) -> bytes:
    return hashlib.sha256(previous + encode_content(
        fact.id, fact.kind.value, (), fact.cause_event_id, fact.cause_type, fact.occurred_at, fact.business_key,
        None, None, settings=fact.settings.encode())).digest()
