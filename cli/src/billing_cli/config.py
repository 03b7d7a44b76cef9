"""Where the CLI finds the suite: environment first, then what `billing up` wrote, then defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing_cli.output import Exit, fail
from billing_events.auth import TokenKeys, Tokens
from billing_events.catalog.payments import DEFAULT_MAX_PAYMENT
from billing_events.clock import Clock, FileClock, SystemClock
from billing_events.settings import KafkaSettings
from billing_events.signing import EnvelopeSigner

SUITE_FILE = "suite.json"
CLOCK_FILE = "clock.json"
DEFAULT_PORTS = {"ledger": 8101, "identity": 8102, "tariff": 8103, "notifier": 8104}


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("var")
    bootstrap_servers: str | None = Field(default=None, validation_alias="BILLING_KAFKA__BOOTSTRAP_SERVERS")
    topic_prefix: str = Field(default="", validation_alias="BILLING_KAFKA__TOPIC_PREFIX")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings,
                                 description="BILLING_KAFKA__SECURITY_PROTOCOL and the rest, as the services read them")
    clock_file: Path | None = Field(default=None, validation_alias="BILLING_CLOCK_FILE")
    token_private_key: str | None = Field(
        default=None, validation_alias="BILLING_TOKEN_PRIVATE_KEY",
        description="The key identity signs tokens with: operators mint service tokens with it")
    signing_private_key: str | None = Field(
        default=None, validation_alias="BILLING_CLI_SIGNING_PRIVATE_KEY",
        description="The key `billing pay` signs its payments with, as a payment channel (producer `cli`)")
    ledger_url: str | None = None
    identity_url: str | None = None
    tariff_url: str | None = None
    notifier_url: str | None = None
    operator: str = Field(default="operations", description="Recorded as who did an operator command")
    max_payment: int = Field(default=DEFAULT_MAX_PAYMENT, gt=0, validation_alias="BILLING_MAX_PAYMENT")

    def suite(self) -> dict[str, Any]:
        """What `billing up` recorded about the running embedded suite, if anything."""
        path = self.data_dir / SUITE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def broker(self) -> str:
        return self.bootstrap_servers or self.suite().get("bootstrap_servers") or "127.0.0.1:9092"

    def broker_options(self) -> dict[str, Any]:
        """The keywords of an aiokafka client: the broker and its TLS/SASL settings."""
        from billing_events.kafka import client_options  # the Kafka client only for commands that need it

        return client_options(self.kafka.model_copy(update={"bootstrap_servers": self.broker()}))

    def shared_clock_file(self) -> Path | None:
        """The embedded suite's movable clock, if the suite has one (production: none)."""
        recorded = self.suite().get("clock_file")
        return self.clock_file or (Path(recorded) if recorded else None)

    def clock(self) -> Clock:
        """The services' time: tokens the CLI mints and payments it sends carry it."""
        path = self.shared_clock_file()
        return FileClock(path) if path else SystemClock()

    def url(self, service: str) -> str:
        explicit = getattr(self, f"{service}_url")
        return explicit or f"http://127.0.0.1:{self.suite().get('ports', DEFAULT_PORTS)[service]}"

    def service_token(self) -> str:
        """A short-lived service token for the services' APIs, minted with the deployment's key on
        the services' clock (the embedded suite's may be far from the wall clock)."""
        return self.tokens().issue("service", f"cli:{self.operator}")[0]

    def _secret(self, value: str | None, variable: str) -> str | None:
        """``value`` if set, else what `billing up` made for ``variable`` in the data folder."""
        if value is not None:
            return value
        secrets = self.data_dir / "dev-secrets.json"
        return json.loads(secrets.read_text()).get(variable) if secrets.exists() else None

    def signer(self) -> EnvelopeSigner:
        """The CLI's signing key, as a payment channel's, from the environment or `billing up`'s."""
        key = self._secret(self.signing_private_key, "BILLING_CLI_SIGNING_PRIVATE_KEY")
        if key is None:
            fail("no signing key: set BILLING_CLI_SIGNING_PRIVATE_KEY (or run `billing up` for the embedded suite)",
                 Exit.USAGE)
        try:
            return EnvelopeSigner("cli", key)
        except ValueError as exc:
            fail(f"BILLING_CLI_SIGNING_PRIVATE_KEY: {exc}", Exit.USAGE)

    def tokens(self, clock: Clock | None = None) -> Tokens:
        """Minting with the token private key, from the environment or from what `billing up` made."""
        key = self._secret(self.token_private_key, "BILLING_TOKEN_PRIVATE_KEY")
        if key is None:
            fail("no token private key: set BILLING_TOKEN_PRIVATE_KEY (or run `billing up` for the embedded suite)",
                 Exit.USAGE)
        try:
            keys = TokenKeys.from_base64(private_key=key)
        except ValueError as exc:
            fail(f"BILLING_TOKEN_PRIVATE_KEY: {exc}", Exit.USAGE)
        return Tokens(keys, clock or self.clock())
