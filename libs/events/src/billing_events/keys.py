"""The Ed25519 keys of API tokens and operators, read from settings: no token library and no
HTTP framework, so that a process serving no API (a relay, a consumer without
``BILLING_HTTP_PORT``) reads its settings without importing either (:mod:`billing_events.auth`
checks and issues the tokens)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The ``kid`` of tokens signed with the matching private key: a fingerprint, no setting."""
    return base64.urlsafe_b64encode(hashlib.sha256(_raw_public(key)).digest()[:8]).decode().rstrip("=")


def decode_key(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        # Never quote the value: it may be a secret.
        raise ValueError(f"{what} must be base64 of a 32-byte Ed25519 key")
    return raw


def generate_token_keypair() -> tuple[str, str]:
    """A new signing key pair as ``(public_b64, private_b64)``: identity's, or an operator's."""
    private = Ed25519PrivateKey.generate()
    private_b64 = base64.b64encode(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    return public_key_of(private_b64), private_b64


def public_key_of(private_key_b64: str) -> str:
    """The public half (base64) of a token private key: what the other services list."""
    return base64.b64encode(_raw_public(token_private_key(private_key_b64).public_key())).decode()


def token_private_key(private_key_b64: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(decode_key(private_key_b64, "the token private key"))


def _public_key(public_key_b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(decode_key(public_key_b64, "a token public key"))


@dataclass(frozen=True)
class TokenKeys:
    """The public keys tokens are accepted from (by ``kid``), and the private key to sign with."""

    public: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    private: Ed25519PrivateKey | None = None

    @classmethod
    def from_base64(cls, public_keys: Iterable[str] = (), private_key: str | None = None) -> TokenKeys:
        """``public_keys``: every key a token may be signed with (current and previous). The
        private key's own public half is accepted as well."""
        public = [_public_key(key) for key in public_keys]
        private = token_private_key(private_key) if private_key else None
        if private is not None:
            public.append(private.public_key())
        return cls({key_id(key): key for key in public}, private)


@dataclass(frozen=True)
class OperatorKeys:
    """The operators' key ring: each public key (by ``kid``) and the one operator it speaks for."""

    keys: Mapping[str, tuple[str, Ed25519PublicKey]] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OperatorKeys:
        """``entries``: ``<operator>=<base64 public key>`` each (``billing operator keygen`` prints one)."""
        return cls(owned_keys(
            entries, separator="=", owner_ok=is_operator_name,
            malformed="an operator key is <name>=<base64 public key>, the name of letters, digits, . _ -",
            what=lambda _: "a token public key"))


def owned_keys(entries: Iterable[str], *, separator: str, owner_ok: Callable[[str], bool], malformed: str,
               what: Callable[[str], str]) -> dict[str, tuple[str, Ed25519PublicKey]]:
    """``<owner><separator><base64 public key>`` entries as a ring: each key, by its id, with the
    one owner it speaks for. ``malformed`` is the refusal of an entry without the separator or
    with an owner ``owner_ok`` refuses; ``what(owner)`` names a key that does not decode."""
    ring: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for entry in entries:
        owner, found, encoded = entry.partition(separator)
        owner = owner.strip()
        if not found or not owner_ok(owner):
            raise ValueError(malformed)
        key = Ed25519PublicKey.from_public_bytes(decode_key(encoded, what(owner)))
        ring[key_id(key)] = (owner, key)
    return ring


def is_operator_name(name: str) -> bool:
    return 0 < len(name) <= 48 and all(c.isalnum() or c in "._-" for c in name) and name.isascii()
