"""deploy/postgres/init-databases.sh, run against the test PostgreSQL server as the official
image's entrypoint runs it: each service gets its own role and database, closed to the others."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from billing_events.testing.infrastructure import Infrastructure

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "init-databases.sh"


@pytest.fixture
async def service_databases(infrastructure: Infrastructure) -> AsyncIterator[tuple[dict[str, str], dict[str, Any]]]:
    """Two made-up services, their passwords (with quotes, as a careless operator might), and the
    connection settings of the server; everything made is dropped afterwards."""
    suffix = uuid4().hex[:8]
    passwords = {f"ti{suffix}_ledger": "it's a \"secret\"", f"ti{suffix}_notifier": "plain"}
    url = make_url(infrastructure.postgres_url)
    server = {"host": url.host or "127.0.0.1", "port": url.port or 5432, "user": url.username or "postgres",
              "password": url.password or "", "database": url.database or "postgres"}
    yield passwords, server
    admin = await asyncpg.connect(**server)
    try:
        for name in passwords:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
    finally:
        await admin.close()


def script_environment(server: dict[str, Any], databases: Iterable[str], passwords: dict[str, str]) -> dict[str, str]:
    """What the postgres image gives the script, pointed at the test server."""
    return {
        **os.environ,
        "PGHOST": server["host"], "PGPORT": str(server["port"]), "PGPASSWORD": server["password"],
        "POSTGRES_USER": server["user"], "POSTGRES_DB": server["database"],
        "SERVICE_DATABASES": " ".join(databases),
        **{f"{name.upper()}_DB_PASSWORD": password for name, password in passwords.items()},
    }


def run_script(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


async def test_each_service_gets_its_own_role_and_database(service_databases: tuple[dict[str, str], dict[str, Any]]) -> None:
    passwords, server = service_databases
    result = run_script(script_environment(server, passwords, passwords))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("database ")] == [
        f"database {name} ready" for name in passwords
    ]

    ledger, notifier = passwords
    own = await asyncpg.connect(**{**server, "user": ledger, "password": passwords[ledger], "database": ledger})
    try:
        assert await own.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == ledger
        await own.execute("CREATE TABLE journal (id int)")  # the owner may build its schema
    finally:
        await own.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(**{**server, "user": notifier, "password": passwords[notifier], "database": ledger})


async def test_a_missing_password_stops_the_script(service_databases: tuple[dict[str, str], dict[str, Any]]) -> None:
    passwords, server = service_databases
    name = next(iter(passwords))
    result = run_script(script_environment(server, [name], passwords={}))
    assert result.returncode != 0
    assert f"{name.upper()}_DB_PASSWORD is not set" in result.stderr
