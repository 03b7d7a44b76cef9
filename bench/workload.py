"""The messages of a run, encoded once up front so that producing them costs only the send.

They are the suite's own envelopes (the same JSON :meth:`Envelope.to_bytes` writes), signed by
their producer's key as each publisher signs them (keys made afresh for the run, listed in the
ledger's keyring: :func:`signing_environment`); one of each kind is decoded with
:func:`billing_contracts.envelope.decode` before a run, so a drift between this file and the catalog
fails loudly instead of measuring dead letters.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from billing_contracts.accounts import luhn_check_digit
from billing_contracts import topics
from billing_contracts.envelope import decode
from billing_events.signing import EnvelopeSigner, Keyring, generate_signing_key

NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC).isoformat()


PUBLISHERS = ("identity", "payments", "tariff", "ledger")
_KEYS = {name: generate_signing_key(name) for name in PUBLISHERS}
SIGNERS = {name: EnvelopeSigner(name, private) for name, (_, private) in _KEYS.items()}
KEYRING = [entry for entry, _ in _KEYS.values()]


def signing_settings(owner: str) -> dict[str, object]:
    """The signing settings of a service the bench builds in-process, as ``owner``."""
    return {"signing_private_key": _KEYS[owner][1], "signing_public_keys": KEYRING}


def signing_environment(signatures: bool = True, *, owner: str = "ledger") -> dict[str, str]:
    """The signing settings of a service process the bench starts (the ledger's by default);
    ``signatures=False`` only for the comparison of their cost (``BILLING_ENVELOPE_SIGNATURES``)."""
    return {"BILLING_SIGNING_PUBLIC_KEYS": ",".join(KEYRING),
            f"BILLING_{owner.upper()}_SIGNING_PRIVATE_KEY": _KEYS[owner][1],
            "BILLING_ENVELOPE_SIGNATURES": str(signatures).lower()}


@dataclass(frozen=True)
class Message:
    topic: str
    """Logical topic name (without the run's prefix)."""
    key: bytes
    value: bytes
    event_id: uuid.UUID
    headers: list[tuple[str, bytes]]
    """The producer's signature."""


def _message(topic: str, key: bytes, value: bytes, event_id: uuid.UUID) -> Message:
    signature = SIGNERS[topics.spec(topic).owner].headers(topic, key, value)
    return Message(topic, key, value, event_id, [(name, text.encode()) for name, text in signature.items()])


def account_number(index: int, first: int = 10_000_000_000) -> str:
    """The ``index``-th account number from ``first`` (11 digits), with its check digit."""
    body = f"{first + index:011d}"
    return body + luhn_check_digit(body)


def _envelope(topic: str, event_type: str, account: str, payload: dict[str, object],
              version: int = 1) -> tuple[bytes, uuid.UUID]:
    """As the topic's owner publishes it: consumers refuse envelopes from anyone else on an owned topic."""
    event_id = uuid.uuid4()
    body = {
        "event_id": str(event_id), "event_type": event_type, "schema_version": version, "occurred_at": NOW,
        "account": account, "correlation_id": str(event_id), "causation_id": None,
        "producer": topics.spec(topic).owner,
        "payload": payload,
    }
    return json.dumps(body, separators=(",", ":")).encode(), event_id


def registration(index: int) -> Message:
    number = account_number(index)
    value, event_id = _envelope(topics.IDENTITY, "SubscriberRegistered", number, {
        "account_number": number, "contract_number": f"D-2026-{index:07d}", "region": "moscow",
        "legal_status": "person", "masked_phone": "+7 *** ***-00-00", "sealed_contact": "c2VhbGVk",
    })
    return _message(topics.IDENTITY, number.encode(), value, event_id)


def payment(index: int, account_index: int, minor: int = 50_000, tag: str = "p") -> Message:
    number = account_number(account_index)
    value, event_id = _envelope(topics.PAYMENTS, "PaymentReceived", number, {
        "account_number": number, "channel": "terminal", "reference": f"{tag}-{index}",
        "amount": {"minor": minor, "currency": "RUB"}, "received_at": NOW,
    })
    return _message(topics.PAYMENTS, number.encode(), value, event_id)


def charge(index: int, account_index: int, minor: int = 1_000) -> Message:
    number = account_number(account_index)
    plan = f"bench-{index}"  # one item per charge: each charge id is its own
    value, event_id = _envelope(topics.TARIFF, "ChargeApplied", number, {
        "charge_id": f"{number}:2026-12-10:subscription:{plan}", "account_number": number,
        "amount": {"minor": minor, "currency": "RUB"}, "fee_kind": "subscription", "billing_day": "2026-12-10",
        "charged_for": {"item": "plan", "code": plan},
    }, version=2)
    return _message(topics.TARIFF, number.encode(), value, event_id)


def registrations(accounts: int) -> list[Message]:
    return [registration(i) for i in range(accounts)]


def money_movements(count: int, accounts: int) -> list[Message]:
    """Payments and charges alternating, spread round-robin over the accounts."""
    return [
        payment(i, i % accounts) if i % 2 == 0 else charge(i, i % accounts) for i in range(count)
    ]


def check_encoding() -> None:
    keyring = Keyring.from_entries(KEYRING)
    for message in (registration(0), payment(0, 0), charge(1, 0)):
        envelope = decode(message.value)
        assert envelope.account.encode() == message.key, envelope
        refusal = keyring.refusal(message.topic, message.key, message.value, dict(message.headers), envelope.producer)
        assert refusal is None, refusal
