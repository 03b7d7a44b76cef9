"""Restart of everything: the four services run the way ``make run`` runs them (``billing up``:
one process each, SQLite files in one data folder, the dev secrets of that folder), are stopped
with SIGTERM (what Ctrl-C makes the launcher send) and started again on the same folder.

The broker is the test session's, not a fresh embedded one: the embedded broker keeps topics in
memory, so after a restart of ``make run`` only the databases remain, and they are what this
test checks. Every record every service held at rest is still there after the restart, every
ledger balance and journal entry is unchanged, and the restarted suite goes on working.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from billing_cli.launcher import SERVICES
from billing_contracts import topics
from billing_events.sealing import seal
from billing_events.testing.plugin import eventually


@pytest.mark.slow
async def test_stopping_and_starting_the_whole_suite_keeps_every_record(
    suite: Any, producer: Any, traffic: Any, numbers: Any
) -> None:
    prefix = suite.processes["ledger"].env["BILLING_KAFKA__TOPIC_PREFIX"]
    account = numbers(1, first=424_242)[0]
    contact = seal(suite.secrets["BILLING_NOTIFIER_PUBLIC_KEY"], {"phone": "+79161234567", "email": None})

    await suite.start()
    await producer.send(f"{prefix}{topics.IDENTITY}", traffic.registration(account, sealed_contact=contact))
    await eventually(lambda: suite.balance(account) == 0, timeout=60, what="the ledger opening the account")
    first = traffic.payment(account, 150_000, "RESTART-1")
    await producer.send(f"{prefix}{topics.PAYMENTS}", first)
    await eventually(lambda: suite.balance(account) == 150_000, what="the payment posted")
    await suite.quiet()

    codes = await suite.stop()
    assert all(code == 0 for code in codes.values()), f"not a clean stop: {codes}\n{suite.tail()}"
    at_rest = suite.snapshot()
    assert set(at_rest) == set(SERVICES), f"a service kept no database: {sorted(at_rest)}"
    ledger = at_rest["ledger"]
    # the account's opening (an account fact) and the payment
    assert len(ledger["journal"]) == 2 and ledger["accounts"], "the payment was not in the ledger at rest"
    assert not [row for row in suite.query("ledger", "SELECT id FROM outbox WHERE published_at IS NULL")]
    held = {service: {table: len(rows) for table, rows in tables.items() if rows}
            for service, tables in at_rest.items()}

    await suite.start()  # same data folder, same secrets
    await asyncio.sleep(3)  # long enough for a service that would redo or drop something to do it
    after = await suite.quiet()

    lost = {
        (service, table): len(set(rows) - set(after.get(service, {}).get(table, {})))
        for service, tables in at_rest.items() for table, rows in tables.items()
        if set(rows) - set(after.get(service, {}).get(table, {}))
    }
    assert not lost, f"records lost in the restart: {lost}"
    for table in ("accounts", "journal", "postings", "operator_balances", "chain_head", "inbox"):
        assert after["ledger"][table] == ledger[table], f"the ledger's {table} changed in the restart"
    assert suite.balance(account) == 150_000

    # the restarted suite consumes where it stopped: a new payment is posted, the old one not again
    await producer.send(f"{prefix}{topics.PAYMENTS}", traffic.payment(account, 1_000, "RESTART-2"))
    await producer.send(f"{prefix}{topics.PAYMENTS}", first)  # and a redelivery of the first changes nothing
    await eventually(lambda: suite.balance(account) == 151_000, what="a payment after the restart")
    await suite.quiet()
    assert suite.query("ledger", "SELECT count(*) FROM journal WHERE kind = 'payment'")[0][0] == 2
    print(f"\nkept across the restart: {held}")
