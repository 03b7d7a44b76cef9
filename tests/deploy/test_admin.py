"""The commands the deploy files run inside the image: the topic job and the health check."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from billing_events.admin import AdminSettings, main, probe, topic_plan
from billing_events.embedded import free_port
from billing_events.sealing import seal, unseal
from billing_contracts.topics import DEAD_LETTER_RETENTION, EVENT_TOPICS

SERVICES = ["ledger", "identity", "tariff", "notifier"]


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch, bootstrap_servers: str, topic_prefix: str) -> str:
    """The job's environment, as Compose and Kubernetes set it (on the test's own topics)."""
    monkeypatch.setenv("BILLING_KAFKA__BOOTSTRAP_SERVERS", bootstrap_servers)
    monkeypatch.setenv("BILLING_KAFKA__TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("BILLING_KAFKA__PARTITIONS", "6")
    return topic_prefix


def test_create_topics_makes_what_the_catalog_documents(admin_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create-topics", *SERVICES]) == 0
    ready = {
        fields[0]: dict(field.split("=", 1) for field in fields[1:])
        for fields in (line.removeprefix("topic ready: ").split() for line in capsys.readouterr().out.splitlines())
    }
    expected = {f"{admin_env}{spec.name}" for spec in topic_plan(SERVICES)}
    assert set(ready) == expected
    for spec in EVENT_TOPICS:
        assert ready[f"{admin_env}{spec.name}"]["partitions"] == ("1" if spec.partitions == 1 else "6")  # the seals: one key
        assert ready[f"{admin_env}{spec.name}"]["retention.ms"] == str(spec.retention_ms)
    for service in SERVICES:
        dead_letters = ready[f"{admin_env}billing.{service}.dlq"]
        assert dead_letters["partitions"] == "1"
        assert int(dead_letters["retention.ms"]) == DEAD_LETTER_RETENTION // timedelta(milliseconds=1)


def test_create_topics_twice_leaves_existing_topics_alone(admin_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create-topics", "ledger"]) == 0
    first = capsys.readouterr().out
    assert main(["create-topics", "ledger"]) == 0
    assert capsys.readouterr().out == first


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health/live" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_probe_passes_on_200_and_fails_otherwise(health_server: int) -> None:
    settings = AdminSettings(http_port=health_server, http_host="0.0.0.0")
    assert probe(settings, "/health/live") is None
    assert probe(settings, "/health/ready") == f"http://127.0.0.1:{health_server}/health/ready answered 503"


def test_probe_without_a_port_says_why() -> None:
    assert "BILLING_HTTP_PORT is not set" in (probe(AdminSettings(http_port=None), "/health/live") or "")


def test_probe_of_a_closed_port_fails() -> None:
    assert "unreachable" in (probe(AdminSettings(http_port=free_port()), "/health/live") or "")


def test_notifier_keypair_prints_two_halves_that_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notifier-keypair"]) == 0
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert set(printed) == {"BILLING_NOTIFIER_PUBLIC_KEY", "BILLING_NOTIFIER_PRIVATE_KEY"}
    sealed = seal(printed["BILLING_NOTIFIER_PUBLIC_KEY"], {"password": "s3cret"})
    assert unseal(printed["BILLING_NOTIFIER_PRIVATE_KEY"], sealed) == {"password": "s3cret"}


def test_rewind_group_moves_a_stopped_group_back_to_a_time_and_never_forward(
    admin_env: str, bootstrap_servers: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from datetime import UTC, datetime

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic, group = f"{admin_env}billing.payments", f"{admin_env}ledger"
    before, after = TopicPartition(topic, 0), TopicPartition(topic, 1)
    early, late = datetime(2026, 11, 24, 22, 0, tzinfo=UTC), datetime(2026, 11, 24, 23, 0, tzinfo=UTC)

    async def write_and_commit() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        await producer.start()
        try:
            for n in range(6):  # three records an hour before the rewind's time, three at it
                at = early if n < 3 else late
                await producer.send_and_wait(topic, b"x", partition=0, timestamp_ms=int(at.timestamp() * 1000))
            await producer.send_and_wait(topic, b"x", partition=1, timestamp_ms=int(early.timestamp() * 1000))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([before, after])
            await consumer.commit({before: 6, after: 1})  # the service had taken everything
        finally:
            await consumer.stop()

    async def committed() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            return {tp.partition: await consumer.committed(tp) for tp in (before, after)}
        finally:
            await consumer.stop()

    # a group's first join takes half the session timeout on the embedded broker: keep it short
    monkeypatch.setenv("BILLING_KAFKA__SESSION_TIMEOUT_MS", "2000")
    monkeypatch.setenv("BILLING_KAFKA__HEARTBEAT_INTERVAL_MS", "300")
    assert main(["create-topics", "ledger"]) == 0
    asyncio.run(write_and_commit())
    capsys.readouterr()
    assert main(["rewind-group", "ledger", "--to", late.isoformat()]) == 0
    # partition 0 goes back at least to its first record of 23:00 (Kafka: exactly there; the
    # embedded broker answers every time lookup with the partition's start), partition 1 to at
    # most its end: nothing written since the time is skipped
    rewound = asyncio.run(committed())
    assert rewound[0] is not None and rewound[0] <= 3 and rewound[1] is not None and rewound[1] <= 1
    assert f"rewound: {topic}[0] 6 -> {rewound[0]}" in capsys.readouterr().out
    assert main(["rewind-group", "ledger", "--to", early.isoformat()]) == 0
    assert asyncio.run(committed()) == {0: 0, 1: 0}
    assert main(["rewind-group", "ledger", "--to", late.isoformat()]) == 0  # a later time moves nothing forward
    assert asyncio.run(committed()) == {0: 0, 1: 0}
    with pytest.raises(SystemExit):
        main(["rewind-group", "ledger", "--to", "2026-11-24T23:00:00"])
    assert "has no time zone" in capsys.readouterr().err
