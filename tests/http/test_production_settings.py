"""Production refuses development defaults, and every door answers with its guard.

With ``BILLING_ENVIRONMENT=production`` a service refuses to start with any setting meant for
development, and says which: a clock file, plaintext Kafka, the tests' published token key,
API docs on, the notifier's file channels, identity without the client address header. Every
answer of every door carries the security headers and ``Cache-Control: no-store`` (a login's
token among them: tests/identity/test_http.py), a body over the limit is answered 413 unread,
and a body field a ledger or tariff route does not know is refused (422) rather than dropped.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_events import migrations
from billing_events.keys import generate_token_keypair, public_key_of
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair
from billing_events.settings import PUBLISHED_TEST_TOKEN_PUBLIC_KEYS, DevelopmentDefaultsInProduction, KafkaSettings
from billing_events.testing.plugin import operations_token
from identity.app import build_runtime as build_identity
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger.acquirer import DEVELOPMENT_CALLBACK_SECRET
from ledger.app import build_runtime as build_ledger
from ledger.settings import LedgerSettings
from notifier.app import build_runtime as build_notifier
from notifier.settings import NotifierSettings
from tariff.app import build_runtime as build_tariff
from tariff.settings import TariffSettings

PUBLISHED_TEST_TOKEN_PRIVATE_KEY = base64.b64encode(b"test-token-private-key-of-suite!").decode()
"""The key the suite's tests signed with while it shipped in billing_events.testing: the
repository's history publishes it, so production refuses it."""

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
ACQUIRER_URL = "https://pay.acquirer.example/checkout"
SERVICES = ("identity", "ledger", "tariff", "notifier")
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                    "x-frame-options": "DENY", "content-security-policy": "frame-ancestors 'none'",
                    "cache-control": "no-store"}


def _production_kafka(kafka: KafkaSettings, **changes: Any) -> KafkaSettings:
    values = {**kafka.model_dump(), "security_protocol": "SASL_SSL", "sasl_username": "ledger",
              "sasl_password": "Kafka-pass-1", **changes}
    return KafkaSettings(**values)


class Production:
    """Each service's settings as a production start takes them: every development default
    replaced. ``runtime(name, **changes)`` builds the service with some of them changed back."""

    def __init__(self, make_settings: Callable[..., Any], kafka: KafkaSettings, clock: ManualClock) -> None:
        self.make_settings, self.kafka, self.clock = make_settings, kafka, clock
        self.token_public, self.token_private = generate_token_keypair()
        self.notifier_public, self.notifier_private = generate_keypair()

    async def runtime(self, name: str, **changes: Any) -> ServiceRuntime:
        common: dict[str, Any] = {"environment": "production", "kafka": _production_kafka(self.kafka),
                                  "metrics_port": 0,
                                  "token_public_keys": [self.token_public], "database": "sqlite"}
        match name:
            case "identity":
                values = {"notifier_public_key": self.notifier_public, "pii_lookup_key": new_key(),
                          "pii_encryption_key": new_key(), "hashing_profile": "fast",
                          "token_private_key": self.token_private, "client_address_header": "X-Forwarded-For"}
                cls, build = IdentitySettings, build_identity
            case "ledger":
                values = {"bonus_campaigns_file": None, "card_acquirer_url": ACQUIRER_URL,
                          "card_callback_secret": base64.b64encode(os.urandom(32)).decode()}
                cls, build = LedgerSettings, build_ledger
            case "tariff":
                values, cls, build = {"billing_clock_enabled": False}, TariffSettings, build_tariff
            case _:
                values = {"notifier_private_key": self.notifier_private, "sms_channel": "http_sms",
                          "email_channel": "smtp"}
                cls, build = NotifierSettings, build_notifier
        settings = await self.make_settings(cls, **{**common, **values, **changes})
        return build(settings, self.clock)


@pytest.fixture
def production(make_settings: Callable[..., Any], kafka_settings: KafkaSettings) -> Production:
    return Production(make_settings, kafka_settings, ManualClock(START))


def _defaults(kafka: KafkaSettings, tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Each development default: (the settings that bring it back, the setting the refusal names)."""
    return {
        "clock file": ({"clock_file": tmp_path / "clock"}, "BILLING_CLOCK_FILE"),
        "plaintext Kafka": ({"kafka": _production_kafka(kafka, security_protocol="PLAINTEXT",
                                                        sasl_username=None, sasl_password=None)},
                            "BILLING_KAFKA__SECURITY_PROTOCOL is PLAINTEXT"),
        "SASL without TLS": ({"kafka": _production_kafka(kafka, security_protocol="SASL_PLAINTEXT")},
                             "BILLING_KAFKA__SECURITY_PROTOCOL is SASL_PLAINTEXT"),
        "the test token key": ({"token_public_keys": [public_key_of(PUBLISHED_TEST_TOKEN_PRIVATE_KEY)]},
                               "BILLING_TOKEN_PUBLIC_KEYS"),
        "API docs on": ({"api_docs": True}, "BILLING_API_DOCS"),
        "metrics on the API port": ({"metrics_port": None, "http_port": 0}, "BILLING_METRICS_PORT"),
        "unsigned envelopes": ({"envelope_signatures": False}, "BILLING_ENVELOPE_SIGNATURES"),
    }


SERVICE_DEFAULTS = {
    "ledger": {
        "no card callback secret": ({"card_callback_secret": None}, "BILLING_LEDGER_CARD_CALLBACK_SECRET"),
        "the published card callback secret": ({"card_callback_secret": DEVELOPMENT_CALLBACK_SECRET},
                                               "BILLING_LEDGER_CARD_CALLBACK_SECRET"),
        "no card acquirer": ({"card_acquirer_url": None}, "BILLING_LEDGER_CARD_ACQUIRER_URL"),
    },
    "identity": {
        "no client address header": ({"client_address_header": None}, "BILLING_IDENTITY_CLIENT_ADDRESS_HEADER"),
        "the test token private key": ({"token_private_key": PUBLISHED_TEST_TOKEN_PRIVATE_KEY},
                                       "BILLING_TOKEN_PRIVATE_KEY"),
    },
    "notifier": {
        "SMS to the file": ({"sms_channel": "file"}, "BILLING_NOTIFIER_SMS_CHANNEL"),
        "e-mail to the file": ({"email_channel": "file"}, "BILLING_NOTIFIER_EMAIL_CHANNEL"),
    },
}
CASES = [(service, default) for service in SERVICES
         for default in ["clock file", "plaintext Kafka", "SASL without TLS", "the test token key", "API docs on",
                         *SERVICE_DEFAULTS.get(service, {})]]


@pytest.mark.parametrize(("service", "default"), CASES, ids=[f"{s}-{d}" for s, d in CASES])
async def test_a_production_start_refuses_each_development_default(
    production: Production, kafka_settings: KafkaSettings, tmp_path: Path, service: str, default: str
) -> None:
    changes, named = {**_defaults(kafka_settings, tmp_path), **SERVICE_DEFAULTS.get(service, {})}[default]
    with pytest.raises(DevelopmentDefaultsInProduction) as refused:
        await production.runtime(service, **changes)
    assert named in str(refused.value)
    assert len(refused.value.offending) == 1, refused.value.offending  # only what was changed back


@pytest.mark.parametrize("service", SERVICES)
async def test_a_production_start_without_development_defaults_goes_ahead(production: Production, service: str) -> None:
    runtime = await production.runtime(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://door") as client:
        live = await client.get("/health/live")
        docs = [await client.get(path) for path in ("/docs", "/redoc", "/openapi.json")]
    await runtime.db.dispose()
    assert live.status_code == 200
    assert live.headers["strict-transport-security"].startswith("max-age=")
    assert [answer.status_code for answer in docs] == [404, 404, 404]  # API docs off by default


async def test_the_development_acquirer_page_is_not_served_in_production(production: Production) -> None:
    """In production the cabinet sends the subscriber to the acquirer's page; the development page,
    which approves without a card, is no route at all (tests/ledger/test_card_payments.py uses it)."""
    runtime = await production.runtime("ledger")
    intent = "0190a0a0-0000-7000-8000-000000000000"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://door") as client:
        page = await client.get(f"/ledger/dev-acquirer/{intent}")
        approve = await client.post(f"/ledger/dev-acquirer/{intent}/approve")
    await runtime.db.dispose()
    assert [(answer.status_code, answer.json()["code"]) for answer in (page, approve)] == [(404, "not_found")] * 2


def test_the_published_key_is_the_one_refused() -> None:
    assert public_key_of(PUBLISHED_TEST_TOKEN_PRIVATE_KEY) in PUBLISHED_TEST_TOKEN_PUBLIC_KEYS


def test_a_production_process_exits_naming_every_development_default(tmp_path: Path) -> None:
    """``python -m ledger`` as a deployment starts it, with nothing but the suite's defaults."""
    env = {"PATH": os.environ.get("PATH", ""), "BILLING_ENVIRONMENT": "production",
           "BILLING_CLOCK_FILE": str(tmp_path / "clock"), "BILLING_API_DOCS": "true",
           "BILLING_TOKEN_PUBLIC_KEYS": public_key_of(PUBLISHED_TEST_TOKEN_PRIVATE_KEY),
           "BILLING_DATA_DIR": str(tmp_path)}
    ran = subprocess.run([sys.executable, "-m", "ledger"], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1, ran.stderr
    for named in ("BILLING_CLOCK_FILE", "BILLING_KAFKA__SECURITY_PROTOCOL", "BILLING_TOKEN_PUBLIC_KEYS",
                  "BILLING_API_DOCS"):
        assert named in ran.stderr
    assert "Traceback" not in ran.stderr


# --- every door's guard ------------------------------------------------------------------------------


@pytest.fixture
async def doors(make_settings: Callable[..., Any]) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Each service's HTTP app, built and its database migrated (not started: a service token's
    revocation is the only thing read)."""
    clock = ManualClock(START)
    notifier_public, notifier_private = generate_keypair()
    builders = {
        "identity": lambda: make_settings(IdentitySettings, database="sqlite", notifier_public_key=notifier_public,
                                          pii_lookup_key=new_key(), pii_encryption_key=new_key(),
                                          hashing_profile="fast"),
        "ledger": lambda: make_settings(LedgerSettings, database="sqlite", bonus_campaigns_file=None),
        "tariff": lambda: make_settings(TariffSettings, database="sqlite", billing_clock_enabled=False),
        "notifier": lambda: make_settings(NotifierSettings, database="sqlite", notifier_private_key=notifier_private),
    }
    build = {"identity": build_identity, "ledger": build_ledger, "tariff": build_tariff, "notifier": build_notifier}
    runtimes = {name: build[name](await settings(), clock) for name, settings in builders.items()}
    for name, runtime in runtimes.items():
        await migrations.upgrade(runtime.db, name)
    async with AsyncExitStack() as stack:
        def client(name: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=runtimes[name].http_app),
                                     base_url=f"http://{name}")
        yield client
        for runtime in runtimes.values():
            stack.push_async_callback(runtime.db.dispose)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_answer_carries_the_security_headers(doors: Callable[[str], httpx.AsyncClient], service: str) -> None:
    async with doors(service) as client:
        answers = [await client.get("/health/live"), await client.get(f"/{service}/nothing-here"),
                   await client.post(f"/{service}/nothing-here", content=b"{}")]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name)
        assert "strict-transport-security" not in answer.headers  # development: plain HTTP on a laptop


BODY_READERS = {"identity": "/identity/login", "ledger": "/ledger/replays", "tariff": "/tariff/billing-days/close",
                "notifier": "/notifier/anything"}  # the notifier takes no body: the limit holds at its door all the same


@pytest.mark.parametrize("service", SERVICES)
async def test_a_body_over_the_limit_is_answered_413(doors: Callable[[str], httpx.AsyncClient], service: str) -> None:
    body = b'{"padding": "' + b"x" * (64 * 1024) + b'"}'

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    token = operations_token(ManualClock(START))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    async with doors(service) as client:
        declared = await client.post(BODY_READERS[service], content=body, headers=headers)
        undeclared = await client.post(BODY_READERS[service], content=streamed(), headers=headers)
    assert declared.status_code == 413 and declared.json()["code"] == "request_too_large"
    assert declared.headers["cache-control"] == "no-store"
    if service != "notifier":  # a route that reads its body stops reading at the limit
        assert undeclared.status_code == 413 and undeclared.json()["code"] == "request_too_large"


@pytest.mark.parametrize(("service", "path", "body"), [
    ("ledger", "/ledger/accounts/100000000016/transfers",
     {"to_account": "100000000024", "amount": {"minor": 100, "currency": "RUB"}, "note": "unknown"}),
    ("ledger", "/ledger/replays", {"account": None, "everything": True}),
    ("tariff", "/tariff/accounts/100000000016/plan", {"plan": "internet-100", "discount": 50}),
    ("tariff", "/tariff/billing-days/close", {"until": None, "force": True}),
])
async def test_an_unknown_body_field_is_refused(
    doors: Callable[[str], httpx.AsyncClient], service: str, path: str, body: dict[str, Any]
) -> None:
    token = operations_token(ManualClock(START))
    async with doors(service) as client:
        answer = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422, answer.text
    unknown = [error for error in answer.json()["errors"] if error["code"] == "extra_forbidden"]
    assert [error["field"] for error in unknown] == [list(body)[-1]]  # the last field is the unknown one


async def test_credentials_are_never_shown_by_the_settings(make_settings: Callable[..., Any]) -> None:
    _, notifier_private = generate_keypair()
    settings = await make_settings(
        NotifierSettings, database="sqlite", notifier_private_key=notifier_private,
        smtp={"password": "Smtp-pass-31"}, sms_gateway={"api_token": "Sms-token-77"},
        database_url="postgresql+asyncpg://notifier@db:5432/notifier", database_password="Db-p@ss:w/rd",
    )
    shown = repr(settings) + settings.model_dump_json()
    for secret in ("Smtp-pass-31", "Sms-token-77", notifier_private, "Db-p@ss:w/rd"):
        assert secret not in shown
    # The password lives beside the URL and joins it, escaped, only to connect.
    assert settings.resolved_database_url() == "postgresql+asyncpg://notifier:Db-p%40ss%3Aw%2Frd@db:5432/notifier"
