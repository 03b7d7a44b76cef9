"""What the identity commands need from their process, built once in :mod:`identity.app`.

Beside the suite's database, clock, topics and relay: the settings (policies, regions, the
notifier's public key), the personal-data vault and the slow hasher. Slow hashes run in a
worker thread so the event loop keeps serving other accounts, through one gate that bounds how
many run and wait at once (:class:`HashGate`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from billing_events.service import ServiceContext
from identity.domain import PASSWORD_POLICY, HashingBusy
from identity.security import HashingProfile, PersonalDataVault, SecretHasher, generate_password
from identity.settings import IdentitySettings

T = TypeVar("T")


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


class HashGate:
    """At most ``concurrency`` slow hashes at once and ``queue`` more waiting; one more is
    refused at once (:class:`HashingBusy`) rather than queued.

    Each argon2id computation holds its profile's memory (64 MiB) for its duration: without a
    bound, a flood of anonymous requests would hold as many as the worker threads allow and
    queue the rest without end, each queued request keeping its connection and memory.
    """

    RETRY_AFTER_SECONDS = 1
    """What a refused caller is told to wait: a queue's worth of hashes takes about that long."""

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self._running = asyncio.Semaphore(concurrency)
        self._capacity = concurrency + queue
        self._admitted = 0

    async def run(self, work: Callable[[], T]) -> T:
        """``work`` in a worker thread once a place is free; HashingBusy when none is."""
        if self._admitted >= self._capacity:
            raise HashingBusy(retry_after=self.RETRY_AFTER_SECONDS)
        self._admitted += 1
        try:
            async with self._running:
                return await asyncio.to_thread(work)
        finally:
            self._admitted -= 1


@dataclass(frozen=True, kw_only=True)
class IdentityContext(ServiceContext):
    producer: str = "identity"
    settings: IdentitySettings
    vault: PersonalDataVault
    hasher: SecretHasher
    gate: HashGate

    async def hash(self, secret: str) -> str:
        return await self.gate.run(lambda: self.hasher.hash(secret))

    async def verify(self, stored_hash: str, candidate: str) -> bool:
        return await self.gate.run(lambda: self.hasher.verify(stored_hash, candidate))

    async def verify_decoy(self, candidate: str) -> None:
        """The work of checking a secret when there is none to check, so both answers take as long."""
        await self.verify(_decoy_hash(self.settings.hashing), candidate)

    def encrypt(self, account_number: str, kind: str, data: dict[str, Any]) -> str:
        return self.vault.encrypt(json.dumps(data), bound_to=bound_to(account_number, kind))

    def decrypt(self, account_number: str, kind: str, token: str) -> dict[str, Any]:
        return dict(json.loads(self.vault.decrypt(token, bound_to=bound_to(account_number, kind))))
