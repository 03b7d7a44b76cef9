"""Hashing, comparing and generating secrets, and protecting personal data at rest.

Keys and hashing parameters are passed in (from settings); nothing here reads the environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from billing_events.errors import ErrorKind
from identity.domain import CodePolicy, IdentityError, LookupKind, PasswordPolicy

ENCRYPTION_KEY_BYTES = 32  # AES-256-GCM
MIN_LOOKUP_KEY_BYTES = 32
_NONCE_BYTES = 12


def encryption_key_id(key: bytes) -> str:
    """Names an encryption key in what it wrote, without revealing it: a short fingerprint."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"pii-key-id\x00" + key).digest()[:6]).decode()


@dataclass(frozen=True)
class HashingProfile:
    """Argon2id cost parameters. Stored hashes carry their own, so profiles can change."""

    time_cost: int
    memory_cost_kib: int
    parallelism: int


# RFC 9106's second recommendation (64 MiB, 3 passes), with the lanes cut to the two cores
# these services run on.
PRODUCTION_HASHING = HashingProfile(time_cost=3, memory_cost_kib=64 * 1024, parallelism=2)
# The cheapest parameters argon2 accepts: for tests only, never for stored secrets.
FAST_TEST_HASHING = HashingProfile(time_cost=1, memory_cost_kib=8, parallelism=1)


# Both are faults of what this service stored, never of the caller's input.
class CorruptSecretHash(IdentityError):
    code = "corrupt_secret_hash"
    kind = ErrorKind.BROKEN_INVARIANT


class UnreadablePersonalData(IdentityError):
    code = "unreadable_personal_data"
    kind = ErrorKind.BROKEN_INVARIANT


class SecretHasher:
    """Slow salted hashes (argon2id) of passwords and one-time codes."""

    def __init__(self, profile: HashingProfile = PRODUCTION_HASHING) -> None:
        self._argon2 = PasswordHasher(
            time_cost=profile.time_cost,
            memory_cost=profile.memory_cost_kib,
            parallelism=profile.parallelism,
            type=Type.ID,
        )

    def hash(self, secret: str) -> str:
        return self._argon2.hash(secret)

    def verify(self, stored_hash: str, candidate: str) -> bool:
        """Whether ``candidate`` is the secret behind ``stored_hash`` (constant time inside)."""
        try:
            return self._argon2.verify(stored_hash, candidate)
        except VerificationError:
            return False
        except InvalidHashError:
            raise CorruptSecretHash("the stored secret hash is not an argon2 hash") from None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than this hasher's profile."""
        return self._argon2.check_needs_rehash(stored_hash)


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def generate_password(policy: PasswordPolicy) -> str:
    """A random password the policy admits (drawn again in the rare case one class is missing)."""
    while True:
        candidate = "".join(secrets.choice(policy.alphabet) for _ in range(policy.length))
        if policy.admits(candidate):
            return candidate


def generate_code(policy: CodePolicy) -> str:
    return f"{secrets.randbelow(10**policy.digits):0{policy.digits}d}"


def new_key() -> str:
    """A fresh random 32-byte key, base64: for settings of a new deployment and for tests."""
    return base64.b64encode(secrets.token_bytes(ENCRYPTION_KEY_BYTES)).decode()


class PersonalDataVault:
    """Keyed hashes to find personal data, authenticated encryption to keep a readable copy.

    ``lookup_hash`` is HMAC-SHA256 with its own key: equal inputs give equal hashes (so a
    unique index finds a duplicate passport) but nobody without the key can test guesses.
    ``encrypt`` is AES-256-GCM with a random nonce, bound to a context (for example
    ``"<account>/passport"``) so a ciphertext copied into another row does not decrypt.

    Encryption keys rotate: the first key encrypts, every key listed decrypts, and a ciphertext
    begins with the id of the key that wrote it (``<key id>:<base64>``). A ciphertext without an
    id was written before ids existed: every key is tried.
    """

    def __init__(self, *, lookup_key: bytes, encryption_keys: Sequence[bytes]) -> None:
        if len(lookup_key) < MIN_LOOKUP_KEY_BYTES:
            raise ValueError(f"the lookup key needs at least {MIN_LOOKUP_KEY_BYTES} bytes")
        if not encryption_keys or any(len(key) != ENCRYPTION_KEY_BYTES for key in encryption_keys):
            raise ValueError(f"each encryption key must be {ENCRYPTION_KEY_BYTES} bytes")
        self._lookup_key = lookup_key
        self._ciphers = {encryption_key_id(key): AESGCM(key) for key in encryption_keys}
        self.current_key_id = encryption_key_id(encryption_keys[0])

    @classmethod
    def from_base64(cls, *, lookup_key: str, encryption_key: str) -> PersonalDataVault:
        """``encryption_key``: comma-separated, the current key first, then the previous ones."""
        return cls(
            lookup_key=base64.b64decode(lookup_key, validate=True),
            encryption_keys=[base64.b64decode(key.strip(), validate=True) for key in encryption_key.split(",")],
        )

    def lookup_hash(self, kind: LookupKind, canonical_text: str) -> str:
        message = f"{kind.value}\x00{canonical_text}".encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()

    def matches(self, stored_hash: str, kind: LookupKind, canonical_text: str) -> bool:
        """Whether ``canonical_text`` is what ``stored_hash`` was made from, in constant time."""
        return constant_time_equal(stored_hash, self.lookup_hash(kind, canonical_text))

    def encrypt(self, plaintext: str, *, bound_to: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._ciphers[self.current_key_id].encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{self.current_key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, bound_to: str) -> str:
        key_id, _, body = token.rpartition(":")
        if not key_id:  # written before key ids
            ciphers = list(self._ciphers.values())
        else:  # a key that is no longer listed reads nothing
            ciphers = [self._ciphers[key_id]] if key_id in self._ciphers else []
        for cipher in ciphers:
            try:
                raw = base64.b64decode(body, validate=True)
                return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode()).decode()
            except (binascii.Error, InvalidTag, ValueError):
                continue
        raise UnreadablePersonalData(
            "stored personal data cannot be decrypted: wrong key, wrong context or tampered"
        )

    def is_current(self, token: str) -> bool:
        """Whether ``token`` was written with the current key (``reencrypt`` skips it)."""
        return token.startswith(f"{self.current_key_id}:")

    def reencrypt(self, token: str, *, bound_to: str) -> str:
        return self.encrypt(self.decrypt(token, bound_to=bound_to), bound_to=bound_to)
