"""Signing keys of a test session: one per publisher the tests play, made afresh at import.

Every service a test starts lists them all (:func:`settings_values`, :func:`environment`), and a
test's producer signs each envelope with the key of the producer it names
(:func:`signed_headers`), as that publisher would. A name without a key here (an intruder)
cannot sign, as nobody can who merely reaches the broker.
"""

from __future__ import annotations

from typing import Any

from billing_contracts.catalog.payments import PaymentChannel
from billing_contracts.envelope import Envelope
from billing_events.signing import EnvelopeSigner, generate_signing_key

SERVICES = ("identity", "ledger", "tariff", "notifier")
PUBLISHERS = (*SERVICES, *(channel.value for channel in PaymentChannel), "payments", "cli", "test", "counter")
"""The services, the payment channels, and the names tests give the adapters they play."""

_PRIVATE = {name: generate_signing_key(name)[1] for name in PUBLISHERS}
SIGNERS = {name: EnvelopeSigner(name, private) for name, private in _PRIVATE.items()}
PUBLIC_KEYS = [signer.public_entry() for signer in SIGNERS.values()]
"""Every test publisher's key, as a consumer's ``signing_public_keys`` lists them."""


def settings_values(service: str) -> dict[str, Any]:
    """The signing settings of a service a test builds in-process (``make_settings``). A service
    the tests make up for themselves gets a key of its own that no keyring lists: what it
    publishes is read by the tests' readers, never by another service."""
    private = _PRIVATE.get(service) or generate_signing_key(service)[1]
    return {"signing_private_key": private, "signing_public_keys": PUBLIC_KEYS}


def environment() -> dict[str, str]:
    """The same, as the environment of service processes (each service reads its own private key)
    and of the CLI (``billing pay`` and ``billing dlq retry --with`` sign as ``cli``)."""
    return {"BILLING_SIGNING_PUBLIC_KEYS": ",".join(PUBLIC_KEYS),
            **{f"BILLING_{name.upper()}_SIGNING_PRIVATE_KEY": _PRIVATE[name] for name in (*SERVICES, "cli")}}


def trusting_tests_too(suite_secrets: dict[str, str]) -> dict[str, str]:
    """The environment of a suite made by ``billing up``'s own keys (``dev_secrets``) that takes
    the tests' records as well: its keyring lists the tests' publishers beside its own."""
    return {"BILLING_SIGNING_PUBLIC_KEYS": ",".join([suite_secrets["BILLING_SIGNING_PUBLIC_KEYS"], *PUBLIC_KEYS])}


def signature(topic: str, key: bytes, value: bytes, producer: str) -> dict[str, str]:
    """The signature headers ``producer`` gives a record (none for a name that has no key)."""
    signer = SIGNERS.get(producer)
    return signer.headers(topic, key, value) if signer else {}


def signed_headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    """An envelope's record headers, signed by its producer."""
    headers = {**envelope.kafka_headers(), **signature(envelope.topic, envelope.account.encode(), envelope.to_bytes(),
                                                        envelope.producer)}
    return [(name, text.encode()) for name, text in headers.items()]
