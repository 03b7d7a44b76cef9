"""The peer: the same account workload written the way a Python team would with ``eventsourcing``.

An ``Account`` aggregate whose events are postings; one command = get the aggregate, post, save
(one database transaction per command, optimistic concurrency on the aggregate's version),
persisted by the library's PostgreSQL recorder in a database of its own on the same server.
Then every balance is rebuilt by reading every aggregate back from its events.

The suite's side of the comparison is measured in the same run: the ledger's ingestion
(movements per second, each one a command that appends postings) and ``rebuild`` (entries per
second).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.infra import Databases
from bench.workload import account_number


class Account(Aggregate):
    @event("Opened")
    def __init__(self, number: str) -> None:
        self.number = number
        self.balance = 0

    @staticmethod
    def create_id(number: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/accounts/{number}")

    @event("Posted")
    def post(self, amount: int, reference: str) -> None:
        self.balance += amount


class Accounts(Application):
    def open(self, number: str) -> None:
        self.save(Account(number))

    def post(self, number: str, amount: int, reference: str) -> None:
        account: Account = self.repository.get(Account.create_id(number))
        account.post(amount, reference)
        self.save(account)

    def balance(self, number: str) -> int:
        account: Account = self.repository.get(Account.create_id(number))
        return account.balance


def run(url: str, *, commands: int, accounts: int) -> dict[str, float]:
    """Synchronous (the library's PostgreSQL recorder is psycopg, blocking)."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    app = Accounts(env={
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": "2",
    })
    numbers = [account_number(index) for index in range(accounts)]
    try:
        for number in numbers:
            app.open(number)
        started = time.perf_counter()
        expected: dict[str, int] = dict.fromkeys(numbers, 0)
        for index in range(commands):
            number = numbers[index % accounts]
            amount = 50_000 if index % 2 == 0 else -1_000
            app.post(number, amount, f"ref-{index}")
            expected[number] += amount
        command_seconds = time.perf_counter() - started

        started = time.perf_counter()
        balances = {number: app.balance(number) for number in numbers}
        rebuild_seconds = time.perf_counter() - started
    finally:
        app.close()
    if balances != expected:
        raise RuntimeError("the eventsourcing peer's balances disagree with its commands")
    entries = commands + accounts  # every stored event, the openings included
    return {
        "commands": commands,
        "accounts": accounts,
        "commands_per_s": commands / command_seconds,
        "rebuild_entries_per_s": entries / rebuild_seconds,
    }


async def create_database(databases: Databases) -> str:
    return await databases.create("peer")
