"""Kafka security: TLS (CA, client certificate and key) and SASL (PLAIN, SCRAM-SHA-256/512) from
the ``BILLING_KAFKA__*`` variables and mounted files, for every client the suite makes.

The embedded broker (Tansu 0.6) accepts ``--cert``/``--key`` but still speaks plain TCP (a TLS
client gets "early eof"), so the TLS round trip runs through a TLS terminator in front of it
that demands a client certificate: the services' broker, the topic creation and a plain client
connect over mutual TLS, and a client without the certificate is refused. SASL is not offered
by the embedded broker: those tests prove the settings reach aiokafka as it expects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from billing_cli.config import CliSettings
from billing_events.admin import AdminSettings, describe_topics
from billing_events.embedded import EmbeddedBroker, free_port
from billing_events.kafka import client_options, ensure_topics, make_broker
from billing_events.settings import KafkaSettings
from billing_events.testing import signing
from billing_contracts.topics import TopicNames, TopicSpec
from ledger.settings import LedgerSettings


# --- certificates ------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None,
                 issuer_key: ec.EllipticCurvePrivateKey | None = None, *, ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)  # wall clock: TLS checks certificates against the machine's time
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path.with_suffix(".pem"), path.with_suffix(".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, the broker's certificate for 127.0.0.1, and a client certificate, all signed by it."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _certificate("billing test CA", ca_key, ca=True)
    ca_file, _ = _write(folder / "ca", ca, ca_key)
    server_key, client_key = _key(), _key()
    server = _write(folder / "broker", _certificate("127.0.0.1", server_key, ca.subject, ca_key), server_key)
    client = _write(folder / "client", _certificate("billing-ledger", client_key, ca.subject, ca_key), client_key)
    return Pki(ca_file, *server, *client)


# --- a broker that speaks only mutual TLS ------------------------------------------------------

async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_terminator(port: int, upstream: int, pki: Pki) -> AsyncIterator[list[str]]:
    """Mutual TLS on ``port`` in front of the plain broker on ``upstream``; yields the subjects of
    the client certificates it accepted."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    clients: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        clients.append(dict(item[0] for item in peer["subject"])["commonName"])
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(_pipe(reader, broker_writer), _pipe(broker_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context)
    try:
        yield clients
    finally:
        server.close()


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[tuple[int, int]]:
    """A broker of its own that tells clients to connect to the TLS port in front of it."""
    tls_port = free_port()
    with EmbeddedBroker(advertised_port=tls_port) as broker:
        yield broker.port, tls_port


def tls_settings(port: int, pki: Pki, **extra: object) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SSL", ssl_ca_file=pki.ca,
                         ssl_cert_file=pki.client_cert, ssl_key_file=pki.client_key, partitions=1, **extra)


async def test_services_admin_and_plain_clients_work_over_mutual_tls(tls_broker: tuple[int, int], pki: Pki) -> None:
    plain_port, tls_port = tls_broker
    settings = tls_settings(tls_port, pki, topic_prefix=f"tls-{uuid4().hex[:6]}-")
    names = TopicNames(settings.topic_prefix)
    async with tls_terminator(tls_port, plain_port, pki) as clients:
        await ensure_topics(settings, names, [TopicSpec("secured", "over TLS", 1)])
        broker = make_broker(settings, client_id="billing-ledger")
        await broker.start()
        try:
            await broker.publish(b"over tls", topic=names("secured"), key=b"k")
        finally:
            await broker.stop()
        consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(names("secured"), 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            batch = await consumer.getmany(partition, timeout_ms=10_000)
        finally:
            await consumer.stop()
        admin = AdminSettings(kafka=settings)
        (state,) = await describe_topics(admin, [names("secured")])
    assert [record.value for record in batch[partition]] == [b"over tls"]
    assert state.partitions == 1
    assert clients and set(clients) == {"billing-ledger"}  # every connection came through TLS


async def test_a_client_without_its_certificate_is_refused(tls_broker: tuple[int, int], pki: Pki) -> None:
    plain_port, tls_port = tls_broker
    no_certificate = KafkaSettings(bootstrap_servers=f"127.0.0.1:{tls_port}", security_protocol="SSL",
                                   ssl_ca_file=pki.ca)
    async with tls_terminator(tls_port, plain_port, pki) as clients:
        producer = AIOKafkaProducer(**client_options(no_certificate), request_timeout_ms=3000)
        with pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()
    assert clients == []


# --- the settings, as aiokafka takes them ---------------------------------------------------

def _settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LedgerSettings:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return LedgerSettings()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_over_tls_from_variables_and_a_mounted_password_file(
    mechanism: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password_file = tmp_path / "kafka-password"
    password_file.write_text("s3cret-from-the-secret\n")
    settings = _settings_from({
        "BILLING_KAFKA__BOOTSTRAP_SERVERS": "kafka-1:9093,kafka-2:9093",
        "BILLING_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "BILLING_KAFKA__SASL_MECHANISM": mechanism,
        "BILLING_KAFKA__SASL_USERNAME": "billing-ledger",
        "BILLING_KAFKA__SASL_PASSWORD_FILE": str(password_file),
        "BILLING_KAFKA__SSL_CA_FILE": str(pki.ca),
    }, monkeypatch)
    options = client_options(settings.kafka)
    assert {key: value for key, value in options.items() if key != "ssl_context"} == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093", "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism, "sasl_plain_username": "billing-ledger",
        "sasl_plain_password": "s3cret-from-the-secret",
    }
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [cert["subject"] for cert in context.get_ca_certs()] == [((("commonName", "billing test CA"),),)]
    # aiokafka accepts them (it checks the combination), and the services' broker gets the same
    producer = AIOKafkaProducer(**options)
    assert producer.client._sasl_mechanism == mechanism and producer.client._ssl_context is context
    consumer_options = make_broker(settings.kafka, client_id="billing-ledger").config.configs[0].builder.keywords
    assert {key: consumer_options[key] for key in options if key not in ("bootstrap_servers", "ssl_context")} == {
        key: value for key, value in options.items() if key not in ("bootstrap_servers", "ssl_context")}
    assert consumer_options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(settings)  # the password never shows in logs of the settings


async def test_sasl_without_tls_and_the_cli_reads_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {"BILLING_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092", "BILLING_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                   "BILLING_KAFKA__SASL_MECHANISM": "SCRAM-SHA-256", "BILLING_KAFKA__SASL_USERNAME": "operator",
                   "BILLING_KAFKA__SASL_PASSWORD": "pw"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    options = CliSettings().broker_options()
    assert options == {"bootstrap_servers": "kafka:9092", "security_protocol": "SASL_PLAINTEXT", "ssl_context": None,
                       "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "operator",
                       "sasl_plain_password": "pw"}
    assert AIOKafkaConsumer(**options)._client._security_protocol == "SASL_PLAINTEXT"


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert client_options(KafkaSettings()) == {"bootstrap_servers": "127.0.0.1:9092"}


@pytest.mark.parametrize("fields, complaint", [
    ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username and sasl_password"),
    ({"security_protocol": "SSL", "ssl_cert_file": "client.pem"}, "needs its key"),
    ({"ssl_ca_file": "ca.pem"}, "use SSL or SASL_SSL"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p",
      "sasl_password_file": "pw"}, "not both"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
])
def test_incomplete_or_contradictory_security_settings_are_refused(fields: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        KafkaSettings.model_validate(fields)


@pytest.mark.parametrize("protocol, credentials", [
    ("PLAINTEXT", {}), ("SASL_PLAINTEXT", {"sasl_username": "ledger", "sasl_password": "s3cret"})])
async def test_a_service_refuses_kafka_in_clear_unless_on_a_closed_network(
        protocol: str, credentials: dict[str, str], tmp_path: Path) -> None:
    from ledger.app import build

    from billing_events.clock import ManualClock

    def ledger(**kafka: Any) -> None:
        settings = LedgerSettings(kafka=KafkaSettings(security_protocol=protocol, **credentials, **kafka),
                                  data_dir=tmp_path, **signing.settings_values("ledger"))
        build(settings, ManualClock(datetime.datetime(2026, 12, 10, tzinfo=datetime.UTC)))

    with pytest.raises(ValueError, match=f"SECURITY_PROTOCOL={protocol} sends records.*CLOSED_NETWORK=true") as refused:
        ledger()
    assert ("SASL password" in str(refused.value)) == (protocol == "SASL_PLAINTEXT")
    assert "s3cret" not in str(refused.value)
    ledger(closed_network=True)  # the embedded suite and the tests: the broker on a closed network
