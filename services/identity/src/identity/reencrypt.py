"""Re-encrypt identity's stored personal data under the current key, in batches.

``python -m identity.reencrypt [--batch 500]``, with identity's settings (its database and
``BILLING_PII_ENCRYPTION_KEY`` listing the new key first, then the old ones). Each batch is one
transaction; records the current key wrote are skipped, so a run that stopped is finished by
running it again. When it reports nothing left, the old keys can be removed from the setting
(docs/operations.md, "Rotate keys"). The identity service may keep running meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence

from billing_events.db import Database
from identity import store
from identity.context import bound_to, personal_data_vault
from identity.security import PersonalDataVault
from identity.settings import IdentitySettings


async def reencrypt_personal_data(db: Database, vault: PersonalDataVault, *, batch_size: int) -> AsyncIterator[int]:
    """Re-encrypt, under the vault's current key, every subscriber's personal data that an older
    key wrote: one transaction per batch, yielding each batch's size. What the current key wrote
    is skipped, so a run that stopped is finished by running again; the previous keys may go
    once a run finds nothing."""
    after = ""
    while True:
        async with db.transaction() as conn:
            found = await store.encrypted_not_under(conn, vault.current_key_id, after=after, limit=batch_size)
            for data in found:
                account = data.account_number
                await store.replace_encrypted(conn, store.EncryptedData(account, {
                    kind: vault.reencrypt(token, bound_to=bound_to(account, kind)) for kind, token in data.by_kind.items()
                }))
        if not found:
            return
        after = found[-1].account_number
        yield len(found)


async def reencrypt(settings: IdentitySettings, batch_size: int) -> int:
    vault = personal_data_vault(settings)
    db = Database(settings.resolved_database_url())
    done = 0
    try:
        async for count in reencrypt_personal_data(db, vault, batch_size=batch_size):
            done += count
            print(f"re-encrypted {done} subscribers", flush=True)
    finally:
        await db.dispose()
    print(f"done: every subscriber's personal data is under key {vault.current_key_id}")
    return done


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m identity.reencrypt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=500, help="subscribers per transaction (default 500)")
    arguments = parser.parse_args(argv)
    if arguments.batch < 1:
        parser.error("--batch must be at least 1")
    asyncio.run(reencrypt(IdentitySettings(), arguments.batch))


if __name__ == "__main__":
    main()
