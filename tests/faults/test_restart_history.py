"""A restart of ``make run`` forgets nothing an operator reads.

The four services run the way ``billing up`` runs them (one process each, SQLite files in one
data folder) over an embedded broker of the test's own. Events flow through the `billing`
commands, one message is dead-lettered; then the services are stopped with SIGTERM and the
broker after them, as Ctrl-C does, and everything starts again on a new, empty embedded broker.
`billing history`, `replay --as-of` and `dlq list` answer exactly what they answered before, and
the broker holds again every record it held (what `events tail` reads): the services filled it
from the events their databases kept, with the original ids and order, and redelivering them to
the consumers changed nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from billing_cli.launcher import SERVICES, dev_secrets
from billing_cli.watch import read_from_beginning
from billing_contracts import topics
from billing_events.clock import FileClock
from billing_events.embedded import EmbeddedBroker, free_port
from billing_events.testing.clock import CLOCK_FILE_SETTING, clock_file
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import eventually
from billing_events.testing.processes import ServiceProcess

FORM = {
    "contract_accepted": True, "legal_status": "person", "surname": "Петрова", "first_name": "Анна",
    "patronymic": "Игоревна", "passport_series": "4510", "passport_number": "482913",
    "date_of_birth": "1988-11-02", "issuing_authority": "ОУФМС по г. Москве", "date_of_issue": "2012-03-15",
    "mobile_phone": "+7 915 204-33-71", "email": "anna.petrova@example.ru", "region": "moscow",
}
Record = tuple[str, bytes | None, bytes]


class MakeRun:
    """``billing up``'s processes, started on a broker the test chooses."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = dev_secrets(data_dir)
        self.ports = {name: free_port() for name in SERVICES}
        self.clock = clock_file(data_dir / "clock.json")
        self.broker: EmbeddedBroker | None = None
        self.processes: dict[str, ServiceProcess] = {}

    async def start(self) -> None:
        self.broker = EmbeddedBroker(log_file=self.data_dir / "broker.log").start()
        env = {**self.secrets, "BILLING_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
               "BILLING_KAFKA__CLOSED_NETWORK": "true",
               "BILLING_KAFKA__PARTITIONS": "3", "BILLING_KAFKA__SESSION_TIMEOUT_MS": "2000",
               "BILLING_KAFKA__HEARTBEAT_INTERVAL_MS": "300", "BILLING_DATA_DIR": str(self.data_dir.resolve()), **self.clock}
        self.processes = {name: ServiceProcess(name, {**env, "BILLING_HTTP_PORT": str(self.ports[name])},
                                               log_path=self.data_dir / f"{name}.log") for name in SERVICES}
        for process in self.processes.values():
            process.spawn()
        for process in self.processes.values():
            await process.wait_ready(90)

    async def stop(self) -> None:
        """Services first (each publishes its outbox), the broker last: what Ctrl-C does."""
        codes = await asyncio.gather(*(process.stop(30) for process in self.processes.values()))
        assert all(code == 0 for code in codes), codes
        assert self.broker is not None
        self.broker.stop()

    def kill(self) -> None:
        for process in self.processes.values():
            process.kill()
        if self.broker is not None:
            self.broker.stop()

    async def billing(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        assert self.broker is not None
        env = {"BILLING_DATA_DIR": str(self.data_dir), "BILLING_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
               **self.clock,
               **{f"BILLING_{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in self.ports.items()}}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "billing_cli", *args, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        assert b"Traceback" not in err, err.decode()
        return process.returncode or 0, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        code, out, err = await self.billing(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    def balance(self, number: str) -> int | None:
        with closing(sqlite3.connect(f"file:{self.data_dir / 'ledger' / 'ledger.db'}?mode=ro", uri=True)) as db:
            rows = list(db.execute("SELECT main FROM accounts WHERE number = ?", (number,)))
        return rows[0][0] if rows else None

    async def topics(self) -> Counter[Record]:
        """Every record the broker holds on the event and dead-letter topics."""
        assert self.broker is not None
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            # not the seals: the ledger seals its chain head again as it stops, so they grow by design
            wanted = [spec.name for spec in topics.EVENT_TOPICS if spec.name != topics.LEDGER_SEALS] + [
                topics.dead_letter_topic(s) for s in SERVICES]
            existing = await consumer.topics()
            partitions = [TopicPartition(topic, partition) for topic in wanted if topic in existing
                          for partition in sorted(consumer.partitions_for_topic(topic) or ())]
            return Counter((r.topic, r.key, r.value) for r in await read_from_beginning(consumer, partitions))
        finally:
            await consumer.stop()


@pytest.fixture
async def suite(tmp_path: Path) -> AsyncIterator[MakeRun]:
    suite = MakeRun(tmp_path / "var")
    try:
        yield suite
    finally:
        suite.kill()


async def _settled(suite: MakeRun, number: str) -> Any:
    """The account's history once it stopped growing (notifications are sent after a payment)."""
    async def same_twice() -> Any:
        first = await suite.json("history", number)
        await asyncio.sleep(1.5)
        return first if first == await suite.json("history", number) else None
    return await eventually(same_twice, timeout=60, what="the history to settle")


@pytest.mark.slow
async def test_after_a_restart_of_make_run_the_operator_reads_the_same_history(suite: MakeRun) -> None:
    await suite.start()
    code, out, err = await suite.billing("do", "register", "-", "--json", stdin=json.dumps(FORM).encode())
    assert code == 0, err
    number = json.loads(out)["account_number"]
    await eventually(lambda: suite.balance(number) == 0, timeout=60, what="the ledger opening the account")
    assert (await suite.billing("do", "pay", number, "1500"))[0] == 0
    assert (await suite.billing("do", "activate", number, "internet-100"))[0] == 0
    await eventually(lambda: suite.balance(number) == 150_000, what="the payment posted")
    async with RawProducer(suite.broker.bootstrap_servers) as producer:  # type: ignore[union-attr]
        await producer.send_raw(topics.PAYMENTS, b'{"not": "an event"}', key=number.encode())
    letters = await eventually(lambda: _letters(suite), what="the dead letter listed")
    history = await _settled(suite, number)
    as_of = (FileClock(Path(suite.clock[CLOCK_FILE_SETTING])).now() + timedelta(minutes=1)).isoformat()
    replayed = await suite.json("replay", number, "--as-of", as_of)
    held = await suite.topics()
    assert {"SubscriberRegistered", "PaymentReceived", "BalanceChanged", "SubscriptionActivated",
            "NotificationSent"} <= {event["event_type"] for event in history}

    await suite.stop()
    await suite.start()  # a new embedded broker: it starts empty

    assert await _settled(suite, number) == history
    assert await suite.json("replay", number, "--as-of", as_of) == replayed
    assert await suite.json("dlq", "list") == letters
    refilled = await suite.topics()
    # Every record is back, once; only the message the ledger refused is not on the payments
    # topic again (no service took it; its dead letter, with its bytes, is).
    assert held - refilled == Counter({(topics.PAYMENTS, number.encode(), b'{"not": "an event"}'): 1})
    assert refilled - held == Counter()
    assert suite.balance(number) == 150_000


async def _letters(suite: MakeRun) -> Any:
    return await suite.json("dlq", "list") or None
