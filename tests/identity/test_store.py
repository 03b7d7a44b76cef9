"""The identity store on both databases: the account-number sequence, reset codes, throttles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_events.db import Database
from billing_events.schema import plumbing_metadata
from identity import store
from identity.domain import (
    ThrottleState,
    account_number_from_sequence,
    is_valid_account_number,
    issue_reset_code,
)
from identity.settings import IdentitySettings

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(postgres_databases: Any, database_url: str) -> AsyncIterator[Database]:
    # postgres_databases first: database_url asks for it lazily, which an async session
    # fixture cannot serve from inside a running loop.
    database = Database(database_url)
    await database.create_schema(plumbing_metadata, store.metadata)
    yield database
    await database.dispose()


async def allocate(db: Database) -> int:
    async with db.transaction() as conn:
        return await store.next_account_sequence(conn)


async def test_the_sequence_never_hands_out_a_value_twice_even_concurrently(db: Database) -> None:
    first = await allocate(db)
    values = await asyncio.gather(*(allocate(db) for _ in range(25)))

    assert first == 1
    assert sorted(values) == list(range(2, 27))
    numbers = [account_number_from_sequence(v) for v in values]
    assert len(set(numbers)) == 25 and all(is_valid_account_number(n) for n in numbers)


async def test_a_rolled_back_allocation_is_not_reused(db: Database) -> None:
    before = await allocate(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await store.next_account_sequence(conn)
            raise RuntimeError("registration failed after allocating")
    after = await allocate(db)

    # PostgreSQL sequences skip the lost value; SQLite's counter rolls back with the transaction,
    # which is safe there because the value was never committed anywhere.
    assert after > before
    assert after in (before + 1, before + 2)


async def test_a_new_reset_code_replaces_the_old_row(db: Database) -> None:
    account = account_number_from_sequence(1)
    async with db.transaction() as conn:
        await store.save_reset_code(conn, account, issue_reset_code("hash-1", now=NOW))
        await store.save_reset_code(conn, account, issue_reset_code("hash-2", now=NOW + timedelta(minutes=3)))
    async with db.connect() as conn:
        code = await store.reset_code(conn, account)

    assert code is not None
    assert (code.code_hash, code.issued_at, code.expires_at) == (
        "hash-2", NOW + timedelta(minutes=3), NOW + timedelta(minutes=18)
    )
    assert code.issued_at.tzinfo is not None and code.wrong_guesses == 0 and code.used_at is None


async def test_throttle_state_round_trips_and_is_kept_per_scope_and_account(db: Database) -> None:
    locked = ThrottleState(counted=(), locked_until=NOW + timedelta(minutes=15))
    counting = ThrottleState(counted=(NOW, NOW + timedelta(seconds=30)))
    async with db.transaction() as conn:
        await store.save_throttle_state(conn, "login", "100000000016", locked)
        await store.save_throttle_state(conn, "login", "100000000024", counting)
        await store.save_throttle_state(conn, "support_recovery", "100000000016", counting)
    async with db.connect() as conn:
        assert await store.throttle_state(conn, "login", "100000000016") == locked
        assert await store.throttle_state(conn, "login", "100000000024") == counting
        assert await store.throttle_state(conn, "support_recovery", "100000000016") == counting
        assert await store.throttle_state(conn, "login", "100000000032") == ThrottleState()
    async with db.transaction() as conn:
        await store.save_throttle_state(conn, "login", "100000000016", ThrottleState())
    async with db.connect() as conn:
        assert await store.throttle_state(conn, "login", "100000000016") == ThrottleState()


# --- settings ---------------------------------------------------------------------------------


def test_settings_refuse_bad_keys_without_quoting_them(identity_secrets: dict[str, Any]) -> None:
    from pydantic import ValidationError

    bad = "c2hvcnQta2V5"  # base64 of 9 bytes
    for name in ("pii_lookup_key", "pii_encryption_key", "notifier_public_key"):
        with pytest.raises(ValidationError) as caught:
            IdentitySettings(**{**identity_secrets, name: bad})
        assert bad not in str(caught.value)
        assert caught.value.errors()[0]["loc"] == (name,) or name.upper() in str(caught.value)
    settings = IdentitySettings(**identity_secrets)
    assert settings.regions == ("moscow", "spb", "kazan")
    assert settings.reset_code_policy.lifetime == timedelta(minutes=15)
    login = settings.login_policy
    assert (login.per_source.threshold, login.per_address.threshold, login.per_account.threshold) == (5, 30, 50)
    assert login.per_source.lock_for == login.per_address.lock_for == timedelta(minutes=15)
    assert IdentitySettings(**{**identity_secrets, "hashing_profile": "production"}).hashing.memory_cost_kib == 65536


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, identity_secrets: dict[str, Any]) -> None:
    monkeypatch.setenv("BILLING_NOTIFIER_PUBLIC_KEY", identity_secrets["notifier_public_key"])
    monkeypatch.setenv("BILLING_PII_LOOKUP_KEY", identity_secrets["pii_lookup_key"])
    monkeypatch.setenv("BILLING_PII_ENCRYPTION_KEY", identity_secrets["pii_encryption_key"])
    monkeypatch.setenv("BILLING_IDENTITY_RESET_CODE_MINUTES", "10")
    monkeypatch.setenv("BILLING_IDENTITY_REGIONS", '["moscow"]')

    settings = IdentitySettings()

    assert settings.reset_code_minutes == 10 and settings.regions == ("moscow",)
    assert identity_secrets["pii_lookup_key"] not in repr(settings)
