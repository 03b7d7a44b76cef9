"""Opening what identity sealed for the notifier: the implementation of the domain's
:class:`notifier.domain.Unsealer` port with libsodium sealed boxes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billing_events import sealing
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey

from notifier.domain import Contact, ErrorCode, IssuedSecret, NotifierError


class SealOpener:
    """Opens what identity sealed for the notifier's public key (libsodium sealed boxes), with the
    private key the sealed text names: the current one or, during a rotation, a previous one."""

    def __init__(self, private_keys: dict[str, PrivateKey]) -> None:
        self._keys = private_keys

    @classmethod
    def from_base64(cls, private_keys_b64: str) -> SealOpener:
        """Comma-separated base64 private keys."""
        return cls(sealing.private_keys(private_keys_b64))

    def contact(self, sealed: str) -> Contact:
        data = self._open(sealed, "sealed_contact")
        return Contact(phone=_text(data, "phone", "sealed_contact"), email=data.get("email"))

    def secret(self, sealed: str) -> IssuedSecret:
        data = self._open(sealed, "sealed_secret")
        return IssuedSecret(
            secret=_text(data, "secret", "sealed_secret"),
            destination=_text(data, "destination", "sealed_secret"),
        )

    def _open(self, sealed: str, field_name: str) -> dict[str, Any]:
        try:
            data = json.loads(sealing.open_box(self._keys, sealed))
        except (CryptoError, ValueError) as exc:
            # ValueError covers bad base64 and bad JSON; neither message holds the clear text.
            raise NotifierError(
                ErrorCode.UNSEAL_FAILED, f"cannot open {field_name}: {type(exc).__name__}", field=field_name
            ) from None
        if not isinstance(data, dict):
            raise NotifierError(
                ErrorCode.UNSEAL_FAILED, f"{field_name} is not a JSON object", field=field_name
            )
        return data


def _text(data: Mapping[str, Any], key: str, field_name: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise NotifierError(ErrorCode.UNSEAL_FAILED, f"{field_name} has no {key}", field=field_name)
    return value
