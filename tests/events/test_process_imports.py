"""A service process imports only what it serves: without an HTTP port (a relay, a consumer the
bench or a pod runs without ``BILLING_HTTP_PORT``) no HTTP framework, token library or PDF code
is loaded. They were 31 of the 127 MiB a ledger process imported (docs/performance.md).

Each case builds a service as ``python -m <service>`` does, from the environment, in a fresh
interpreter, and reads its ``sys.modules``: exact, whatever the machine's speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing_events.sealing import generate_keypair
from billing_events.testing import signing
from billing_events.testing.clock import clock_file
from billing_events.testing.plugin import TEST_TOKEN_PRIVATE_KEY, TEST_TOKEN_PUBLIC_KEY
from identity.security import new_key

SERVED_ONLY_BY_THE_API = ["fastapi", "starlette", "jwt", "fpdf", "billing_events.auth", "billing_events.http"]
"""The HTTP framework, the token library, the receipts' PDF and our door's modules over them."""

BUILD_AND_LIST = """
import asyncio, importlib, json, os, sys
service, heavy, door, roles = sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "door", sys.argv[4].split(",")

async def build(role):  # in a loop, as run() builds it: the broker's clients want one
    os.environ["BILLING_PROCESS_ROLE"] = role
    runtime = importlib.import_module(f"{service}.app").build_runtime()
    if door:
        runtime.http_app

for role in roles:
    asyncio.run(build(role))
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def environment(service: str, tmp_path: Path) -> dict[str, str]:
    notifier_public, notifier_private = generate_keypair()
    return {
        **os.environ,
        f"BILLING_{service.upper()}_DATABASE_URL": "postgresql+asyncpg://127.0.0.1:5432/test",  # not connected to
        "BILLING_KAFKA__CLOSED_NETWORK": "true",
        "BILLING_DATA_DIR": str(tmp_path / "data"),
        "BILLING_TOKEN_PUBLIC_KEYS": TEST_TOKEN_PUBLIC_KEY,
        "BILLING_TOKEN_PRIVATE_KEY": TEST_TOKEN_PRIVATE_KEY,
        "BILLING_NOTIFIER_PUBLIC_KEY": notifier_public,
        "BILLING_NOTIFIER_PRIVATE_KEY": notifier_private,
        "BILLING_PII_LOOKUP_KEY": new_key(),
        "BILLING_PII_ENCRYPTION_KEY": new_key(),
        **clock_file(tmp_path / "clock.json"),
        **signing.environment(),
    }


def imported(service: str, roles: list[str], tmp_path: Path, *, door: bool = False) -> list[str]:
    """The modules of :data:`SERVED_ONLY_BY_THE_API` that building ``service`` in each of
    ``roles``, one after the other in one interpreter, imported (and, with ``door``, building its
    HTTP door as a process with a port does)."""
    finished = subprocess.run(
        [sys.executable, "-c", BUILD_AND_LIST, service, ",".join(SERVED_ONLY_BY_THE_API), "door" if door else "-",
         ",".join(roles)],
        env=environment(service, tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


@pytest.mark.parametrize("service", ["ledger", "identity", "tariff", "notifier"])
def test_a_process_without_an_http_port_imports_no_http_token_or_pdf_code(service: str, tmp_path: Path) -> None:
    """A relay and a consumer, built in one interpreter (neither may bring them in)."""
    assert imported(service, ["relay", "consumer"], tmp_path) == []


def test_the_http_door_brings_its_framework_and_token_checks_when_it_is_built(tmp_path: Path) -> None:
    """The probe sees them where they are served; the receipts' PDF waits for the first receipt."""
    assert imported("ledger", ["consumer"], tmp_path, door=True) == sorted(
        ["fastapi", "starlette", "jwt", "billing_events.auth", "billing_events.http"])
