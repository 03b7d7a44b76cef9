"""Where the CLI finds the suite: environment first, then what `billing up` wrote, then defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing_cli.output import Exit, fail
from billing_events.auth import OperatorSigner, Tokens, scopes_of
from billing_events.keys import TokenKeys
from billing_contracts.catalog.payments import DEFAULT_MAX_PAYMENT
from billing_events.clock import Clock, FileClock, SystemClock
from billing_events.settings import KafkaSettings
from billing_events.signing import EnvelopeSigner

SUITE_FILE = "suite.json"
DEFAULT_OPERATOR = "operations"
OPERATOR_KEY_FILE = "operator.key"
"""The embedded suite's operator key (`billing up` makes it and lists it in the services' ring)."""
CLOCK_FILE = "clock.json"
DEFAULT_PORTS = {"ledger": 8101, "identity": 8102, "tariff": 8103, "notifier": 8104}
CABINET_PORT = 8090
"""The subscriber's web cabinet under `billing up` (BILLING_CABINET_PORT changes it)."""


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
        description="Identity's signing key: only `billing token` (minting a subscriber's or a platform service's"
                    " token where identity's key is kept) reads it; operators never need it")
    signing_private_key: str | None = Field(
        default=None, validation_alias="BILLING_CLI_SIGNING_PRIVATE_KEY",
        description="The key `billing pay` signs its payments with, as a payment channel (producer `cli`)")
    ledger_url: str | None = None
    identity_url: str | None = None
    tariff_url: str | None = None
    notifier_url: str | None = None
    operator: str = Field(default=DEFAULT_OPERATOR, description="The operator's name: the one their key is listed"
                                                            " under in BILLING_OPERATOR_KEYS, recorded as who did it")
    operator_key_file: Path | None = Field(
        default=None, description="The operator's own private key (`billing operator keygen` writes it);"
                                  " default: the embedded suite's <data_dir>/operator.key")
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

    def operator_token(self, *services: str) -> str:
        """A short-lived token of this operator for ``services`` (every scope of each), signed with
        the operator's own key on the services' clock (the embedded suite's may be far from the
        wall clock). Each call mints a new one: it lives for the command at hand."""
        path = self.operator_key_file or self.data_dir / OPERATOR_KEY_FILE
        if not path.exists():
            fail(f"no operator key at {path}: make one with `billing operator keygen --name {self.operator}`"
                 " and have it listed in BILLING_OPERATOR_KEYS (or run `billing up` for the embedded suite)",
                 Exit.USAGE)
        try:
            signer = OperatorSigner(self.operator, path.read_text().strip(), self.clock())
        except ValueError as exc:
            fail(f"operator key {path}: {exc}", Exit.USAGE)
        return signer.issue(services, [scope for service in services for scope in scopes_of(service)])[0]

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
