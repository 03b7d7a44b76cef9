"""Secrets sealed for one reader: libsodium sealed boxes (X25519 + XSalsa20-Poly1305).

The identity service seals a password or a contact with the notifier's public key; only the
notifier's private key opens it. Anyone else reading the topic sees base64 noise, and a
sealed text that was altered does not open at all. Keys and sealed texts travel as standard
base64; a sealed text starts with the id of the public key that sealed it (``<key id>:``), so
a reader holding several private keys (during a rotation) knows which one opens it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from nacl.encoding import Base64Encoder
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


class SealingError(ValueError):
    """A key or a sealed text that cannot be used. The message never holds the clear text."""


def generate_keypair() -> tuple[str, str]:
    """A new key pair as ``(public_b64, private_b64)``; the private half belongs to the reader."""
    private = PrivateKey.generate()
    return (
        private.public_key.encode(Base64Encoder).decode(),
        private.encode(Base64Encoder).decode(),
    )


def key_id(public_key: PublicKey) -> str:
    """A short fingerprint of a public key: named in what it sealed."""
    return base64.urlsafe_b64encode(hashlib.sha256(public_key.encode()).digest()[:6]).decode()


def open_box(private_keys: Mapping[str, PrivateKey], sealed: str) -> bytes:
    """The clear bytes of ``sealed``, opened with the key (of ``private_keys``, by key id) it names.
    A text sealed before key ids existed names none: each key is tried. Raises CryptoError or
    ValueError (bad base64)."""
    kid, _, box = sealed.rpartition(":")
    if not kid:
        candidates = list(private_keys.values())
    else:  # a key no longer listed opens nothing
        candidates = [private_keys[kid]] if kid in private_keys else []
    for key in candidates:
        try:
            return SealedBox(key).decrypt(box.encode(), encoder=Base64Encoder)
        except CryptoError:
            continue
    raise CryptoError("no listed key opens it")


def private_keys(private_keys_b64: str) -> dict[str, PrivateKey]:
    """Comma-separated base64 private keys (current and previous) by the id of their public half."""
    try:
        keys = [PrivateKey(key.strip().encode(), encoder=Base64Encoder) for key in private_keys_b64.split(",")]
    except (CryptoError, ValueError, TypeError):
        raise SealingError("the private key is not a base64 X25519 key") from None
    return {key_id(key.public_key): key for key in keys}


def seal(public_key_b64: str, payload: Mapping[str, Any]) -> str:
    """Seal a JSON object for the holder of the private key matching ``public_key_b64``."""
    try:
        public_key = PublicKey(public_key_b64.encode(), encoder=Base64Encoder)
    except (CryptoError, ValueError, TypeError):
        raise SealingError("the public key is not a base64 X25519 key") from None
    plaintext = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False).encode()
    return f"{key_id(public_key)}:{SealedBox(public_key).encrypt(plaintext, encoder=Base64Encoder).decode()}"


def unseal(private_keys_b64: str, sealed: str) -> dict[str, Any]:
    """Open what :func:`seal` made with one of the (comma-separated) private keys; a wrong key
    or an altered text raises :class:`SealingError`."""
    keys = private_keys(private_keys_b64)
    try:
        opened = open_box(keys, sealed)
        payload = json.loads(opened)
    except (CryptoError, ValueError):
        # ValueError covers bad base64 and bad JSON.
        raise SealingError("the sealed text cannot be opened: wrong key or altered") from None
    if not isinstance(payload, dict):
        raise SealingError("the sealed text does not hold a JSON object")
    return payload


__all__ = ["SealingError", "generate_keypair", "key_id", "open_box", "private_keys", "seal", "unseal"]
