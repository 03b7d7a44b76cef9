"""A running ledger (HTTP door on a free port) over the session's broker and a fresh PostgreSQL
database, and the `billing` command line run against it as a separate process, as an operator
runs it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_events.clock import FileClock
from billing_contracts.envelope import Envelope
from billing_events.runtime import ServiceRuntime
from billing_events.testing import PATIENCE, signing
from billing_events.testing.clock import CLOCK_FILE_SETTING, clock_file
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import TEST_OPERATOR, TEST_OPERATOR_PRIVATE_KEY, TEST_TOKEN_PRIVATE_KEY, eventually
from ledger import store
from ledger.app import build
from ledger.context import LedgerContext
from ledger.settings import LedgerSettings

A, B = "100000000008", "100000000016"


@dataclass
class Cli:
    runtime: ServiceRuntime
    ledger: LedgerContext
    env: dict[str, str]

    @property
    def clock(self) -> FileClock:
        """The time the ledger and the command line share, as under `billing up`."""
        return FileClock(Path(self.env[CLOCK_FILE_SETTING]))

    async def __call__(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "billing_cli", *args, env={**self.env, **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=PATIENCE)  # a deadline, not a speed
        assert b"Traceback" not in err, err.decode()
        return process.returncode or 0, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        code, out, err = await self(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    async def opened(self) -> None:
        """Wait until the fixture's two accounts are open."""
        async def both() -> bool:
            return await self.balance(A) == 0 and await self.balance(B) == 0
        await eventually(both, what="accounts opened")

    async def balance(self, number: str) -> int | None:
        async with self.runtime.db.connect() as conn:
            state = await store.account(conn, number)
        return state.main if state else None


@pytest.fixture
async def cli(make_settings: Any, bootstrap_servers: str, tmp_path: Any) -> AsyncIterator[Cli]:
    settings = await make_settings(LedgerSettings, http_port=0, bonus_campaigns_file=None,
                                   seal_every_seconds=0)  # seals only when a test asks
    shared_clock = clock_file(tmp_path / "clock.json")
    runtime, ledger = build(settings, FileClock(Path(shared_clock[CLOCK_FILE_SETTING])))
    async with runtime:
        async with RawProducer(bootstrap_servers) as producer:
            for number in (A, B):
                registered = SubscriberRegistered(
                    account_number=number, contract_number=f"D-2026-{number[-7:]}", region="moscow",
                    legal_status=LegalStatus.PERSON, masked_phone="+7 *** ***-00-00", sealed_contact="c2VhbGVk")
                await producer.send(runtime.topics(topics.IDENTITY),
                                    Envelope.new(registered, account=number, producer="identity", clock=ledger.clock))
        operator_key = tmp_path / "operator.key"
        operator_key.write_text(TEST_OPERATOR_PRIVATE_KEY)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "BILLING_OPERATOR": TEST_OPERATOR,
            "BILLING_OPERATOR_KEY_FILE": str(operator_key),
            "BILLING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "BILLING_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
            "BILLING_LEDGER_DATABASE_URL": settings.database_url or "",
            "BILLING_TOKEN_PRIVATE_KEY": TEST_TOKEN_PRIVATE_KEY,
            "BILLING_LEDGER_URL": f"http://127.0.0.1:{runtime.http_port}",
            "BILLING_DATA_DIR": str(tmp_path / "cli"),
            **shared_clock,
            **signing.environment(),
        }
        yield Cli(runtime, ledger, env)
