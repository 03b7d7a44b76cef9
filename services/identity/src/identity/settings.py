"""The identity service's settings: the shared ones plus its own (environment prefix BILLING_).

Secrets (the launcher ``billing up`` generates dev values; production takes them from its
secret store):

- ``BILLING_NOTIFIER_PUBLIC_KEY``: the notifier's X25519 public key (base64); passwords, codes
  and contact details are sealed with it.
- ``BILLING_PII_LOOKUP_KEY``: base64 of >= 32 bytes; keyed hashes that find personal data.
- ``BILLING_PII_ENCRYPTION_KEY``: base64 of 32 bytes; AES-256-GCM of the readable copies.
  Comma-separated during a rotation: the current key first (it encrypts), then the previous
  ones (they still decrypt, until ``python -m identity.reencrypt`` has moved every record).
- ``BILLING_TOKEN_PRIVATE_KEY``: base64 Ed25519 private key; identity alone signs API tokens
  (every service checks them with ``BILLING_TOKEN_PUBLIC_KEYS``).

Tuning:

- ``BILLING_IDENTITY_HASHING_PROFILE``: ``production`` (argon2id, 64 MiB, 3 passes) or ``fast``
  (the cheapest argon2id parameters: tests only).
- ``BILLING_IDENTITY_RESET_CODE_MINUTES`` / ``BILLING_IDENTITY_RESET_CODE_MAX_WRONG_GUESSES``.
- Wrong logins lock out whoever makes them, never the owner (each counted within
  ``BILLING_IDENTITY_LOGIN_WINDOW_MINUTES``, each lock lasting
  ``BILLING_IDENTITY_LOGIN_LOCK_MINUTES``):
  ``BILLING_IDENTITY_LOGIN_LOCK_THRESHOLD`` (5) from one client address at one account lock
  that address out of that account; ``BILLING_IDENTITY_LOGIN_ADDRESS_FAILURE_LIMIT`` (30)
  from one address at any accounts lock it out of every login;
  ``BILLING_IDENTITY_LOGIN_ACCOUNT_FAILURE_CEILING`` (50) at one account from all addresses
  leave each address that has failed there no further guess until its failures leave the
  window, while an address that has not failed is still checked.
- ``BILLING_IDENTITY_PENDING_PASSWORD_HOURS``: how long a password sent on request (by SMS,
  or after a reset code) waits to be used; the current password keeps working meanwhile.
- ``BILLING_IDENTITY_ADDRESS_REQUEST_LIMIT`` anonymous requests for a password or a code from
  one client address within ``BILLING_IDENTITY_ADDRESS_WINDOW_MINUTES`` (whatever the
  accounts); the next ones are answered 429 until the window has passed. Per account, at most
  5 requests an hour are acted on (the rest are answered the same and change nothing).
- ``BILLING_IDENTITY_REDEEM_ACCOUNT_LIMIT`` (10): attempts to redeem a code for one account
  within an hour, from all addresses (an account that does not exist is counted alike); the
  next ones are refused unchecked. Redeeming counts on the address limit above too.
- ``BILLING_IDENTITY_HASH_CONCURRENCY`` (2) slow hashes run at once, each holding the hashing
  profile's memory; ``BILLING_IDENTITY_HASH_QUEUE`` (16) more wait their turn; one more is
  answered 429 ``hashing_busy`` with ``Retry-After``, so a flood costs bounded memory and CPU.
- ``BILLING_IDENTITY_LOGIN_PHONE_ACCOUNTS`` (3): a login by phone does the slow checks of this
  many accounts (a password and a pending one each), whatever the phone has, so its time does
  not tell how many accounts a phone has; a phone with more costs more.
- ``BILLING_IDENTITY_CLIENT_ADDRESS_HEADER``: the header a trusted reverse proxy puts the
  client's address in (``X-Forwarded-For``, ``X-Real-IP``); its last entry is taken, the one
  the proxy itself appended. Unset (the default): the address of the TCP peer. Set it only
  behind such a proxy: otherwise any client can write the header and pick its address.
- ``BILLING_IDENTITY_REFRESH_TOKEN_DAYS`` (30): how long a refresh token works unused; each
  use gives the next one, and a sign-out, a password change or support's recovery ends it.
- ``BILLING_IDENTITY_REGIONS``: the region codes registration accepts (JSON list), by default
  the regions of the tariff catalog.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from billing_events.keys import TokenKeys, public_key_of
from billing_events.settings import PUBLISHED_TEST_TOKEN_PUBLIC_KEYS, ServiceSettings
from identity.domain import LoginPolicy, ResetCodePolicy, ThrottlePolicy
from identity.security import (
    ENCRYPTION_KEY_BYTES,
    FAST_TEST_HASHING,
    MIN_LOOKUP_KEY_BYTES,
    PRODUCTION_HASHING,
    HashingProfile,
)

PUBLIC_KEY_BYTES = 32  # X25519

# The tariff catalog's regions (services never import each other, so the list is repeated).
DEFAULT_REGIONS = ("moscow", "spb", "kazan")


def _key_bytes(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        # Never quote the value: it is a secret.
        raise ValueError(f"{what} is not valid base64") from None


class IdentitySettings(ServiceSettings):
    # A refused key must not be echoed in the error (it is a secret): merged with the parent's.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    service_name: ClassVar[str] = "identity"
    database_url: str | None = Field(default=None, validation_alias="BILLING_IDENTITY_DATABASE_URL")
    signing_private_key: SecretStr | None = Field(default=None, validation_alias="BILLING_IDENTITY_SIGNING_PRIVATE_KEY")

    notifier_public_key: str = Field(
        validation_alias="BILLING_NOTIFIER_PUBLIC_KEY",
        description="The notifier's X25519 public key (base64): secrets are sealed for it",
    )
    pii_lookup_key: SecretStr = Field(
        validation_alias="BILLING_PII_LOOKUP_KEY",
        description="Base64 of at least 32 bytes: the key of the personal-data lookup hashes",
    )
    pii_encryption_key: SecretStr = Field(
        validation_alias="BILLING_PII_ENCRYPTION_KEY",
        description="Base64 of 32 bytes: AES-256-GCM key of the stored personal data; comma-separated "
                    "during a rotation, the current key first, then the previous ones (read only)",
    )
    token_private_key: SecretStr | None = Field(
        default=None,
        validation_alias="BILLING_TOKEN_PRIVATE_KEY",
        description="Base64 Ed25519 private key subscriber tokens are signed with: identity's alone; "
                    "unset: logins are refused",
    )

    hashing_profile: Literal["production", "fast"] = Field(
        default="production",
        validation_alias="BILLING_IDENTITY_HASHING_PROFILE",
        description="argon2id cost: production, or fast (tests only, never for real secrets)",
    )
    reset_code_minutes: int = Field(
        default=15, ge=1, le=24 * 60, validation_alias="BILLING_IDENTITY_RESET_CODE_MINUTES"
    )
    reset_code_max_wrong_guesses: int = Field(
        default=5, ge=1, le=100, validation_alias="BILLING_IDENTITY_RESET_CODE_MAX_WRONG_GUESSES"
    )
    login_lock_threshold: int = Field(
        default=5, ge=1, le=1000, validation_alias="BILLING_IDENTITY_LOGIN_LOCK_THRESHOLD"
    )
    login_window_minutes: int = Field(
        default=15, ge=1, validation_alias="BILLING_IDENTITY_LOGIN_WINDOW_MINUTES"
    )
    login_lock_minutes: int = Field(
        default=15, ge=1, validation_alias="BILLING_IDENTITY_LOGIN_LOCK_MINUTES"
    )
    login_address_failure_limit: int = Field(
        default=30, ge=1, le=100_000, validation_alias="BILLING_IDENTITY_LOGIN_ADDRESS_FAILURE_LIMIT"
    )
    login_account_failure_ceiling: int = Field(
        default=50, ge=1, le=100_000, validation_alias="BILLING_IDENTITY_LOGIN_ACCOUNT_FAILURE_CEILING"
    )
    pending_password_hours: int = Field(
        default=24, ge=1, le=24 * 30, validation_alias="BILLING_IDENTITY_PENDING_PASSWORD_HOURS"
    )
    refresh_token_days: int = Field(
        default=30, ge=1, le=365, validation_alias="BILLING_IDENTITY_REFRESH_TOKEN_DAYS"
    )
    address_request_limit: int = Field(
        default=20, ge=1, le=100_000, validation_alias="BILLING_IDENTITY_ADDRESS_REQUEST_LIMIT"
    )
    address_window_minutes: int = Field(
        default=60, ge=1, le=24 * 60, validation_alias="BILLING_IDENTITY_ADDRESS_WINDOW_MINUTES"
    )
    redeem_account_limit: int = Field(
        default=10, ge=1, le=1000, validation_alias="BILLING_IDENTITY_REDEEM_ACCOUNT_LIMIT",
        description="Attempts to redeem a code for one account within an hour, from all addresses",
    )
    hash_concurrency: int = Field(
        default=2, ge=1, le=64, validation_alias="BILLING_IDENTITY_HASH_CONCURRENCY",
        description="Slow hashes (argon2id) computed at once: each holds the profile's memory (64 MiB)",
    )
    hash_queue: int = Field(
        default=16, ge=0, le=10_000, validation_alias="BILLING_IDENTITY_HASH_QUEUE",
        description="Slow hashes waiting for their turn; one more is answered 429 with Retry-After",
    )
    login_phone_accounts: int = Field(
        default=3, ge=1, le=100, validation_alias="BILLING_IDENTITY_LOGIN_PHONE_ACCOUNTS",
        description="A login by phone does the slow checks of this many accounts, whatever the phone has",
    )
    client_address_header: str | None = Field(
        default=None,
        validation_alias="BILLING_IDENTITY_CLIENT_ADDRESS_HEADER",
        description="Header a trusted proxy writes the client address in; unset: the TCP peer",
    )
    regions: tuple[str, ...] = Field(
        default=DEFAULT_REGIONS,
        min_length=1,
        validation_alias="BILLING_IDENTITY_REGIONS",
        description="Region codes accepted at registration (the tariff catalog's regions)",
    )

    @field_validator("token_private_key")
    @classmethod
    def _token_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            TokenKeys.from_base64(private_key=value.get_secret_value())
        return value

    def development_defaults(self) -> list[str]:
        found = super().development_defaults()
        private = self.token_private_key
        if private is not None and public_key_of(private.get_secret_value()) in PUBLISHED_TEST_TOKEN_PUBLIC_KEYS:
            found.append("BILLING_TOKEN_PRIVATE_KEY is the tests' published key: anyone can mint subscriber tokens")
        if self.client_address_header is None:
            found.append("BILLING_IDENTITY_CLIENT_ADDRESS_HEADER is unset: behind the ingress every client is the "
                         "proxy, and 30 wrong logins lock every login (name the header the proxy writes)")
        return found

    def token_keys(self) -> TokenKeys:
        private = self.token_private_key
        return TokenKeys.from_base64(self.token_public_keys, private.get_secret_value() if private else None)

    @field_validator("notifier_public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        if len(_key_bytes(value, "BILLING_NOTIFIER_PUBLIC_KEY")) != PUBLIC_KEY_BYTES:
            raise ValueError(f"BILLING_NOTIFIER_PUBLIC_KEY must be {PUBLIC_KEY_BYTES} bytes")
        return value.strip()

    @field_validator("pii_lookup_key")
    @classmethod
    def _lookup_key(cls, value: SecretStr) -> SecretStr:
        if len(_key_bytes(value.get_secret_value(), "BILLING_PII_LOOKUP_KEY")) < MIN_LOOKUP_KEY_BYTES:
            raise ValueError(f"BILLING_PII_LOOKUP_KEY needs at least {MIN_LOOKUP_KEY_BYTES} bytes")
        return value

    @field_validator("pii_encryption_key")
    @classmethod
    def _encryption_key(cls, value: SecretStr) -> SecretStr:
        for key in value.get_secret_value().split(","):
            if len(_key_bytes(key, "BILLING_PII_ENCRYPTION_KEY")) != ENCRYPTION_KEY_BYTES:
                raise ValueError(f"each key of BILLING_PII_ENCRYPTION_KEY must be {ENCRYPTION_KEY_BYTES} bytes")
        return value

    @property
    def hashing(self) -> HashingProfile:
        return FAST_TEST_HASHING if self.hashing_profile == "fast" else PRODUCTION_HASHING

    @property
    def reset_code_policy(self) -> ResetCodePolicy:
        return ResetCodePolicy(
            lifetime=timedelta(minutes=self.reset_code_minutes),
            max_wrong_guesses=self.reset_code_max_wrong_guesses,
        )

    @property
    def refresh_token_lifetime(self) -> timedelta:
        return timedelta(days=self.refresh_token_days)

    @property
    def pending_password_lifetime(self) -> timedelta:
        return timedelta(hours=self.pending_password_hours)

    @property
    def address_throttle(self) -> ThrottlePolicy:
        window = timedelta(minutes=self.address_window_minutes)
        return ThrottlePolicy(threshold=self.address_request_limit, window=window, lock_for=window)

    @property
    def redeem_account_throttle(self) -> ThrottlePolicy:
        return ThrottlePolicy(threshold=self.redeem_account_limit, window=timedelta(hours=1),
                              lock_for=timedelta(hours=1))

    @property
    def login_policy(self) -> LoginPolicy:
        window = timedelta(minutes=self.login_window_minutes)
        lock_for = timedelta(minutes=self.login_lock_minutes)

        def limit(threshold: int) -> ThrottlePolicy:
            return ThrottlePolicy(threshold=threshold, window=window, lock_for=lock_for)

        return LoginPolicy(
            per_source=limit(self.login_lock_threshold),
            per_address=limit(self.login_address_failure_limit),
            per_account=limit(self.login_account_failure_ceiling),
        )
