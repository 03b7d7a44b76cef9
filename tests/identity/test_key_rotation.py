"""The personal-data key rotates while identity runs: records the old key wrote stay readable
once the new key is added, `python -m identity.reencrypt` moves them all to the new key in
resumable batches, and then the old key can go."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from billing_contracts import topics
from billing_events.testing.kafka_probe import TopicReader
from identity import service, store
from identity.context import personal_data_vault
from identity.reencrypt import reencrypt_personal_data
from identity.security import PersonalDataVault, UnreadablePersonalData, new_key
from identity.settings import IdentitySettings


async def stored(runtime: Any) -> list[Any]:
    async with runtime.db.connect() as conn:
        return list((await conn.execute(select(store.subscribers))).all())


def readable(vault: PersonalDataVault, rows: list[Any]) -> bool:
    for row in rows:
        for kind in store.ENCRYPTED_KINDS:
            vault.decrypt(getattr(row, f"{kind}_encrypted"), bound_to=f"{row.account_number}/{kind}")
    return True


async def test_the_personal_data_key_rotates_without_an_unreadable_record(
        start_identity: Callable[..., Any], make_flow: Callable[..., Any], identity_secrets: dict[str, Any],
        bootstrap_servers: str) -> None:
    old, new = identity_secrets["pii_encryption_key"], new_key()
    first, first_ctx = await start_identity()
    database = {"database_url": first.settings.database_url}
    async with first, TopicReader(bootstrap_servers, first.topics(topics.IDENTITY)) as reader:
        flow = make_flow(first, first_ctx, reader)
        before = [(await flow.register(unique=True)).account_number for _ in range(5)]

    # 1. Identity lists the new key first: it writes with it and still reads the old one's records.
    rotating, rotating_ctx = await start_identity(pii_encryption_key=f"{new},{old}", **database)
    async with rotating, TopicReader(bootstrap_servers, rotating.topics(topics.IDENTITY)) as reader:
        flow = make_flow(rotating, rotating_ctx, reader)
        after = (await flow.register(passport_number="699999", mobile_phone="+7 916 999-99-99")).account_number
        [sent] = await service.reissue_password_by_sms(rotating_ctx, {"login": before[0]})  # decrypts the contact
        assert sent.account_number == before[0]
        vault = personal_data_vault(rotating.settings)
        rows = await stored(rotating)
        assert {row.account_number for row in rows if vault.is_current(row.contact_encrypted)} == {after}

        # 2. Re-encrypt, interrupted after one batch of two, then resumed by the command.
        batches = reencrypt_personal_data(rotating.db, vault, batch_size=2)
        assert await anext(batches) == 2
        await batches.aclose()
        assert sum(vault.is_current(row.passport_encrypted) for row in await stored(rotating)) == 3
        code, out = await reencrypt_command(rotating.settings, batch=2)
        assert code == 0, out
        assert "re-encrypted 3 subscribers" in out and "re-encrypted 4" not in out  # the rest only
        rows = await stored(rotating)
        assert all(vault.is_current(getattr(row, f"{kind}_encrypted"))
                   for row in rows for kind in store.ENCRYPTED_KINDS)
        assert readable(vault, rows)
        code, out = await reencrypt_command(rotating.settings, batch=2)
        assert code == 0 and "re-encrypted" not in out, out  # nothing left

    # 3. The old key goes: every record is still readable, through the service too.
    final, final_ctx = await start_identity(pii_encryption_key=new, **database)
    async with final, TopicReader(bootstrap_servers, final.topics(topics.IDENTITY)) as reader:
        assert readable(personal_data_vault(final.settings), await stored(final))
        [sent] = await service.reissue_password_by_sms(final_ctx, {"login": before[1]})
        assert sent.account_number == before[1]
    with pytest.raises(UnreadablePersonalData):  # nothing is left under the old key
        readable(PersonalDataVault.from_base64(lookup_key=identity_secrets["pii_lookup_key"], encryption_key=old),
                 rows[:1])


async def reencrypt_command(settings: IdentitySettings, *, batch: int) -> tuple[int, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BILLING_IDENTITY_DATABASE_URL": settings.database_url or "",
        "BILLING_NOTIFIER_PUBLIC_KEY": settings.notifier_public_key,
        "BILLING_PII_LOOKUP_KEY": settings.pii_lookup_key.get_secret_value(),
        "BILLING_PII_ENCRYPTION_KEY": settings.pii_encryption_key.get_secret_value(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity.reencrypt", "--batch", str(batch), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()
