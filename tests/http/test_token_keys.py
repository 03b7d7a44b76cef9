"""API tokens are signed with identity's private key: the other services hold public keys only,
and a key rotation (new public key everywhere, then identity signs with the new key, then the old
public key goes) logs nobody out."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from billing_events.auth import Tokens

from billing_events.keys import generate_token_keypair
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger.app import build_runtime as build_ledger
from ledger.settings import LedgerSettings

from .conftest import START

ACCOUNT = "100000000008"


def identity_tokens(clock: ManualClock, private: str, public: list[str]) -> Tokens:
    """What identity's login signs with, from identity's own settings."""
    settings = IdentitySettings(notifier_public_key=base64.b64encode(bytes(32)).decode(), pii_lookup_key=new_key(),
                                pii_encryption_key=new_key(), token_private_key=private, token_public_keys=public)
    return Tokens(settings.token_keys(), clock)


async def answer(ledger: ServiceRuntime, token: str) -> tuple[int, str]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ledger.http_app), base_url="http://ledger",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.get(f"/ledger/accounts/{ACCOUNT}")
    return response.status_code, response.json()["code"]


ACCEPTED = (404, "unknown_account")
"""The token opened the door; the account is simply not there (no 401)."""


@pytest.fixture
def ledger_with(make_settings: Callable[..., Any]) -> Callable[..., Any]:
    """``async with ledger_with(public_keys) as ledger``: the ledger (re)started on one database."""
    database: dict[str, str] = {}

    @asynccontextmanager
    async def start(public_keys: list[str], clock: ManualClock) -> AsyncIterator[ServiceRuntime]:
        settings = await make_settings(LedgerSettings, bonus_campaigns_file=None, token_public_keys=public_keys,
                                       **database)
        database["database_url"] = settings.database_url
        async with build_ledger(settings, clock) as ledger:
            yield ledger

    return start


async def test_a_rotation_of_the_token_key_logs_nobody_out(ledger_with: Callable[..., Any]) -> None:
    clock = ManualClock(START)
    old_public, old_private = generate_token_keypair()
    new_public, new_private = generate_token_keypair()
    before = identity_tokens(clock, old_private, [])
    old_token, _ = before.issue("subscriber", ACCOUNT)
    async with ledger_with([old_public], clock) as ledger:
        assert await answer(ledger, old_token) == ACCEPTED

    # 1. Every service lists the new public key beside the old one.
    async with ledger_with([old_public, new_public], clock) as ledger:
        assert await answer(ledger, old_token) == ACCEPTED
        # 2. Identity signs with the new key; it keeps accepting the old key's tokens.
        after = identity_tokens(clock, new_private, [old_public])
        new_token, _ = after.issue("subscriber", ACCOUNT)
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        assert await answer(ledger, new_token) == ACCEPTED
        assert await answer(ledger, old_token) == ACCEPTED  # no logout
        assert after.verify(old_token).subject == ACCOUNT

    # 3. Once the old key's last token has expired, the old key goes.
    clock.advance(timedelta(minutes=10))
    new_token, _ = after.issue("subscriber", ACCOUNT)
    async with ledger_with([new_public], clock) as ledger:
        assert await answer(ledger, new_token) == ACCEPTED
        assert await answer(ledger, old_token) == (401, "invalid_token")


async def test_a_service_with_public_keys_only_cannot_mint_and_forgeries_fail(
        ledger_with: Callable[..., Any]) -> None:
    clock = ManualClock(START)
    public, private = generate_token_keypair()
    async with ledger_with([public], clock) as ledger:
        assert not ledger.tokens.can_issue
        with pytest.raises(RuntimeError, match="BILLING_TOKEN_PRIVATE_KEY"):
            ledger.tokens.issue("subscriber", ACCOUNT)
        genuine, _ = identity_tokens(clock, private, []).issue("service", "operations", audience=["ledger"],
                                                                scopes=["ledger:accounts"])
        header = jwt.get_unverified_header(genuine)
        claims = jwt.decode(genuine, options={"verify_signature": False})
        forgeries = {
            # the old shared-secret scheme, keyed with what every service holds: the public key
            "HS256 with the public key": jwt.encode(claims, base64.b64decode(public), algorithm="HS256",
                                                    headers={"kid": header["kid"]}),
            "another key pair under the same kid": jwt.encode(
                claims, Ed25519PrivateKey.from_private_bytes(base64.b64decode(generate_token_keypair()[1])), algorithm="EdDSA", headers={"kid": header["kid"]}),
            "no signature": jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]}),
        }
        assert await answer(ledger, genuine) == ACCEPTED
        for what, forged in forgeries.items():
            assert await answer(ledger, forged) == (401, "invalid_token"), what
