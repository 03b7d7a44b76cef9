"""What the identity commands need from their process, built once in :mod:`identity.app`.

Beside the suite's database, clock, topics and relay: the settings (policies, regions, the
notifier's public key), the personal-data vault and the slow hasher. Slow hashes run in a
worker thread so the event loop keeps serving other accounts.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from billing_events.service import ServiceContext
from identity.domain import PASSWORD_POLICY
from identity.security import HashingProfile, PersonalDataVault, SecretHasher, generate_password
from identity.settings import IdentitySettings


@cache
def _vault(lookup_key: str, encryption_key: str) -> PersonalDataVault:
    return PersonalDataVault.from_base64(lookup_key=lookup_key, encryption_key=encryption_key)


def personal_data_vault(settings: IdentitySettings) -> PersonalDataVault:
    return _vault(settings.pii_lookup_key.get_secret_value(), settings.pii_encryption_key.get_secret_value())


@cache
def secret_hasher(profile: HashingProfile) -> SecretHasher:
    return SecretHasher(profile)


@cache
def _decoy_hash(profile: HashingProfile) -> str:
    """Verified against when there is no secret to check (:meth:`IdentityContext.verify_decoy`)."""
    return secret_hasher(profile).hash(generate_password(PASSWORD_POLICY))


def bound_to(account_number: str, kind: str) -> str:
    """What a ciphertext of ``kind`` (``store.ENCRYPTED_KINDS``) is bound to: it decrypts in that row only."""
    return f"{account_number}/{kind}"


@dataclass(frozen=True, kw_only=True)
class IdentityContext(ServiceContext):
    producer: str = "identity"
    settings: IdentitySettings
    vault: PersonalDataVault
    hasher: SecretHasher

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, secret)

    async def verify(self, stored_hash: str, candidate: str) -> bool:
        return await asyncio.to_thread(self.hasher.verify, stored_hash, candidate)

    async def verify_decoy(self, candidate: str) -> None:
        """The work of checking a secret when there is none to check, so both answers take as long."""
        await asyncio.to_thread(lambda: self.hasher.verify(_decoy_hash(self.settings.hashing), candidate))

    def encrypt(self, account_number: str, kind: str, data: dict[str, Any]) -> str:
        return self.vault.encrypt(json.dumps(data), bound_to=bound_to(account_number, kind))

    def decrypt(self, account_number: str, kind: str, token: str) -> dict[str, Any]:
        return dict(json.loads(self.vault.decrypt(token, bound_to=bound_to(account_number, kind))))
