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
from collections.abc import Sequence

from billing_events.db import Database
from identity.context import personal_data_vault
from identity.service import reencrypt_personal_data
from identity.settings import IdentitySettings


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
