"""Signed envelopes: who published a record, proven by the publisher's own Ed25519 key.

Topic ownership compares the envelope's ``producer`` field, which the sender writes itself: on
its own it keeps honest mistakes out, not a forger who reaches the broker. So every publisher
(each service, each payment channel adapter, the CLI) signs what it publishes with its own
private key, and every consumer checks the signature against the public keys of a keyring it
is given (settings), before the event reaches a handler:

- the signature covers the record's exact value bytes, its key (the account) and the topic the
  event travels on (the catalog's logical name, without the deployment's prefix), so it cannot
  be moved to another account's record or another topic;
- it travels in two record headers, ``signature`` (base64) and ``signature_kid`` (the key's
  fingerprint, as token keys are named: :func:`billing_events.keys.key_id`);
- the keyring names each public key's owner, and the envelope's ``producer`` must be that owner:
  the ledger's key signs only what says ``producer: ledger``.

A producer's keyring entry may list several keys (the current one and, while a rotation runs,
the previous one), exactly as token keys rotate; a producer signs with one key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from billing_events.keys import decode_key, generate_token_keypair, key_id, owned_keys

SIGNATURE_HEADER = "signature"
KEY_ID_HEADER = "signature_kid"
SIGNATURE_HEADERS = (SIGNATURE_HEADER, KEY_ID_HEADER)
DOMAIN = b"billing.envelope.v1"
"""Put before what is signed: an envelope signature can never pass for another kind of signature
made with the same key."""


def signed_bytes(topic: str, key: bytes, value: bytes) -> bytes:
    """What a signature covers: the topic and the key, each length-prefixed (no separator a topic
    or key could contain makes two different records sign alike), then the value as sent."""
    encoded_topic = topic.encode()
    return b"%s|%d:%s|%d:%s|" % (DOMAIN, len(encoded_topic), encoded_topic, len(key), key) + value


class EnvelopeSigner:
    """One publisher's signing key: the headers that prove its records."""

    def __init__(self, owner: str, private_key_b64: str) -> None:
        self.owner = owner
        self._key = Ed25519PrivateKey.from_private_bytes(decode_key(private_key_b64, "the signing private key"))
        self.kid = key_id(self._key.public_key())

    def headers(self, topic: str, key: bytes, value: bytes) -> dict[str, str]:
        """The signature headers of a record of ``topic`` (a logical name) with ``key`` and ``value``."""
        signature = self._key.sign(signed_bytes(topic, key, value))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), KEY_ID_HEADER: self.kid}

    def public_entry(self) -> str:
        """This key as a keyring lists it (``owner:base64``)."""
        return keyring_entry(self.owner, self._key.public_key())


def generate_signing_key(owner: str) -> tuple[str, str]:
    """A new key for ``owner``: its keyring entry (``owner:public``, for every consumer) and its
    private half (base64, for the publisher alone)."""
    public, private = generate_token_keypair()  # the same Ed25519 pair a token key is
    return f"{owner}:{public}", private


def keyring_entry(owner: str, key: Ed25519PublicKey) -> str:
    return f"{owner}:{base64.b64encode(key.public_bytes_raw()).decode()}"


def parse_entries(value: str) -> list[str]:
    """``owner:key,owner:key`` (a setting's text) as a list of entries."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]


@dataclass(frozen=True)
class Keyring:
    """The public keys records are accepted from, by key id, each with the producer it speaks for."""

    keys: Mapping[str, tuple[str, Ed25519PublicKey]] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> Keyring:
        """``entries``: ``owner:base64-public-key`` each; one owner may have several (a rotation)."""
        return cls(owned_keys(entries, separator=":", owner_ok=bool,
                              malformed="a signing public key is listed as owner:base64-key",
                              what=lambda owner: f"the signing public key of {owner}"))

    def owners(self) -> set[str]:
        return {owner for owner, _ in self.keys.values()}

    def refusal(self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes], producer: str) -> str | None:
        """Why a record of ``topic`` (logical name) naming ``producer`` is not proven to come from
        it, or None when its signature holds."""
        kid = headers.get(KEY_ID_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if kid is None or signature is None:
            return "the record is not signed"
        known = self.keys.get(kid.decode(errors="replace"))
        if known is None:
            return "signed with a key this consumer does not list"
        owner, public = known
        if owner != producer:
            return f"signed with a key of {owner!r}, while the envelope names {producer!r} as its producer"
        try:
            public.verify(base64.b64decode(signature, validate=True), signed_bytes(topic, key, value))
        except (InvalidSignature, binascii.Error, ValueError):
            return "the signature does not match the record (altered, or moved from another record)"
        return None


__all__ = ["KEY_ID_HEADER", "SIGNATURE_HEADER", "SIGNATURE_HEADERS", "EnvelopeSigner", "Keyring", "generate_signing_key", "keyring_entry", "parse_entries",
           "signed_bytes"]
