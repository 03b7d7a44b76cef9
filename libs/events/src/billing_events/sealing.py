"""Secrets sealed for one reader: libsodium sealed boxes (X25519 + XSalsa20-Poly1305).

The identity service seals a password or a contact with the notifier's public key; only the
notifier's private key opens it. Anyone else reading the topic sees base64 noise, and a
sealed text that was altered does not open at all. Keys and sealed texts travel as standard
base64.
"""

from __future__ import annotations

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


def seal(public_key_b64: str, payload: Mapping[str, Any]) -> str:
    """Seal a JSON object for the holder of the private key matching ``public_key_b64``."""
    try:
        public_key = PublicKey(public_key_b64.encode(), encoder=Base64Encoder)
    except (CryptoError, ValueError, TypeError):
        raise SealingError("the public key is not a base64 X25519 key") from None
    plaintext = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False).encode()
    return SealedBox(public_key).encrypt(plaintext, encoder=Base64Encoder).decode()


def unseal(private_key_b64: str, sealed: str) -> dict[str, Any]:
    """Open what :func:`seal` made; a wrong key or an altered text raises :class:`SealingError`."""
    try:
        private_key = PrivateKey(private_key_b64.encode(), encoder=Base64Encoder)
    except (CryptoError, ValueError, TypeError):
        raise SealingError("the private key is not a base64 X25519 key") from None
    try:
        opened = SealedBox(private_key).decrypt(sealed.encode(), encoder=Base64Encoder)
        payload = json.loads(opened)
    except (CryptoError, ValueError):
        # ValueError covers bad base64 and bad JSON.
        raise SealingError("the sealed text cannot be opened: wrong key or altered") from None
    if not isinstance(payload, dict):
        raise SealingError("the sealed text does not hold a JSON object")
    return payload


__all__ = ["SealingError", "generate_keypair", "seal", "unseal"]
