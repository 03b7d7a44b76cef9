"""Settings shared by every service: one prefix (``BILLING_``), nested sections with ``__``.

``BILLING_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` sets the broker for every service;
``BILLING_LEDGER_DATABASE_URL=postgresql+asyncpg://...`` sets one service's database.
Each service subclasses :class:`ServiceSettings` and adds its own section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from billing_events.keys import OperatorKeys, TokenKeys
from billing_events.clock import Clock, FileClock, SystemClock
from billing_events.signing import EnvelopeSigner, Keyring, parse_entries

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
"""What a consumer takes at most: thirty times the largest event the catalog holds (a
``BalanceChanged`` with every field is under 1 KiB, a registration under 2 KiB), so no honest
producer comes near it, while a 10 MB field is refused before it is parsed, archived or kept whole
in a dead letter."""


PUBLISHED_TEST_TOKEN_PUBLIC_KEYS = frozenset({
    "BnczzCsaE6ng11GAisAGW8DNfOekVSMS3h7m0e3cNMY=",
})
"""Public halves of token keys whose private halves are public (the suite's tests signed with a
fixed key until it left the package; the repository's history still holds it): anyone can mint
a token these verify, so production refuses them."""

PLAINTEXT_PROTOCOLS = frozenset({"PLAINTEXT", "SASL_PLAINTEXT"})
"""Kafka without TLS: events, sealed secrets and SASL passwords readable on the network."""


class DevelopmentDefaultsInProduction(Exception):
    """A production start with settings meant for development: names each of them."""

    def __init__(self, service: str, offending: list[str]) -> None:
        self.offending = offending
        listed = "".join(f"\n  - {reason}" for reason in offending)
        super().__init__(f"{service} refuses to start with BILLING_ENVIRONMENT=production and "
                         f"{len(offending)} development setting(s):{listed}")


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="SSL: TLS; SASL_SSL: a user name and password over TLS"
    )
    ssl_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates (unset: the system's)"
    )
    ssl_cert_file: Path | None = Field(default=None, description="PEM client certificate, for mutual TLS")
    ssl_key_file: Path | None = Field(default=None, description="PEM private key of the client certificate")
    ssl_key_password: SecretStr | None = Field(default=None, description="Passphrase of the key file, if any")
    ssl_check_hostname: bool = Field(default=True, description="The broker's certificate must name its host")
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="A mounted file holding the SASL password (instead of sasl_password)"
    )
    topic_prefix: str = Field(
        default="", description="Put before every topic name: isolates test runs and tenants"
    )
    partitions: int = Field(default=12, ge=1, description="Partitions of each event topic")
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    acks: Literal["all", 1, 0] = "all"
    enable_idempotence: bool = Field(
        default=False, description="On against Apache Kafka; the embedded broker lacks it"
    )
    linger_ms: int = Field(
        default=0, ge=0,
        description="The relay hands a batch's rows to the producer back to back, and the producer batches "
                    "what accumulates while a request is in flight: a linger would only delay every event",
    )
    producer_batch_bytes: int = Field(
        default=256 * 1024, ge=16 * 1024, description="Per-partition producer batch: a relay sends thousands at once"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=20, ge=1,  # 0: the embedded broker (Tansu 0.6) answers every fetch empty
        description="How long the broker may hold a fetch for more data: the latency floor",
    )
    consumer_max_records: int = Field(default=1000, ge=1, description="Events per batch")
    session_timeout_ms: int = Field(
        default=6_000, ge=1000,
        description="How long the group waits for a dead instance's heartbeats before its partitions move: "
                    "6 s is the least Apache Kafka allows (group.min.session.timeout.ms)",
    )
    heartbeat_interval_ms: int = Field(default=1_000, ge=100, description="A sixth of the session timeout")
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    create_topics: bool = Field(default=True, description="Create missing topics at start-up")
    closed_network: bool = Field(
        default=False,
        description="The broker is reached only on a closed test network (the embedded suite, the tests, a "
                    "single Compose host): a service then starts over PLAINTEXT or SASL_PLAINTEXT, which it "
                    "refuses otherwise (a password or a record readable on the wire)",
    )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def refuse_cleartext(self) -> None:
        """Raise unless the connection is encrypted or the network is declared closed: what a
        service checks before it connects (clients of the tests and tools may read a local broker)."""
        if not self.uses_tls and not self.closed_network:
            raise ValueError(f"BILLING_KAFKA__SECURITY_PROTOCOL={self.security_protocol} sends records"
                             f"{' and the SASL password' if self.uses_sasl else ''} in clear: use SASL_SSL (or SSL), "
                             "or set BILLING_KAFKA__CLOSED_NETWORK=true on a closed test network")

    @model_validator(mode="after")
    def _credentials_complete(self) -> KafkaSettings:
        if self.uses_sasl and not (self.sasl_username and (self.sasl_password or self.sasl_password_file)):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and "
                             "sasl_password (or sasl_password_file)")
        if self.sasl_password and self.sasl_password_file:
            raise ValueError("set sasl_password or sasl_password_file, not both")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("a client certificate needs its key: set both ssl_cert_file and ssl_key_file")
        if not self.uses_tls and (self.ssl_ca_file or self.ssl_cert_file):
            raise ValueError(f"TLS files are set but security_protocol is {self.security_protocol}: "
                             "use SSL or SASL_SSL")
        return self


class DatabaseSettings(BaseModel):
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    echo: bool = False


class ServiceSettings(BaseSettings):
    """A service subclasses this, names itself, and names its own database URL variable:

    ``database_url: str | None = Field(None, validation_alias="BILLING_LEDGER_DATABASE_URL")``
    """

    model_config = SettingsConfigDict(
        env_prefix="BILLING_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    service_name: ClassVar[str]
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: a SQLite file in the data folder"
    )
    database: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    data_dir: Path = Field(default=Path("var"), description="Embedded default: one folder per service")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    outbox_retention_hours: int = Field(
        default=0, ge=0,
        description="Keep published events this long (0: forever). Kept, they are the service's archive: "
                    "account histories read it, and an empty broker is filled again from it",
    )
    inbox_retention_days: int = Field(
        default=30, ge=0,
        description="Forget claimed event ids after this many days (0: never). A redelivery older than that would "
                    "be taken again, but none comes: offsets are committed after each batch, and the ledger's "
                    "business keys (idempotency_keys, never pruned) refuse a payment or charge seen before",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=4096, validation_alias="BILLING_MAX_MESSAGE_BYTES",
        description="The largest message value a consumer takes; a larger one is dead-lettered "
                    "too_large, cut short, before it is parsed or stored. The largest event is under 2 KiB",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="Upgrade the database at start (the embedded suite). Off in production, where a one-shot "
                    "`python -m <service> migrate` runs first: a database behind the code then stops the start",
    )
    outbox_poll_seconds: float = Field(
        default=0.5, gt=0,
        description="How often the relay looks for unpublished rows nothing woke it for (after an outage)",
    )
    process_role: Literal["all", "consumer", "relay"] = Field(
        default="all",
        description="all: consume and publish in one process. Or split them: consumer processes (any number) "
                    "post and stage events; a relay process publishes the staged events (PostgreSQL only)",
    )
    http_port: int | None = Field(
        default=None, description="Port of health, metrics and the service's API (0: any free port; unset: off)"
    )
    http_host: str = "127.0.0.1"
    metrics_port: int | None = Field(
        default=None, validation_alias="BILLING_METRICS_PORT",
        description="Port of /metrics alone (0: any free port), on http_host; set, the API port no longer "
                    "answers /metrics, so the API's clients never see it. Unset (development): /metrics is "
                    "on the API port",
    )
    token_public_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="BILLING_TOKEN_PUBLIC_KEYS",
        description="Comma-separated base64 Ed25519 public keys API tokens may be signed with: the current "
                    "one and, while a rotation runs, the previous one; unset: every API call is refused",
    )
    operator_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="BILLING_OPERATOR_KEYS",
        description="The operators' key ring: comma-separated <operator>=<base64 Ed25519 public key> (what "
                    "`billing operator keygen` prints); an operator's token is accepted when signed by the key "
                    "listed for the operator it names. Unset: no operator token is accepted",
    )
    signing_private_key: SecretStr | None = Field(
        default=None,
        description="Base64 Ed25519 private key this service signs every record it publishes with; each "
                    "service names its own variable (BILLING_LEDGER_SIGNING_PRIVATE_KEY...). Unset: the "
                    "service refuses to start while envelope signatures are on",
    )
    signing_public_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="BILLING_SIGNING_PUBLIC_KEYS",
        description="Comma-separated owner:base64 Ed25519 public keys records are accepted from (every "
                    "service, channel adapter and operator that publishes what this service consumes; "
                    "several per owner while a rotation runs); a record signed otherwise is dead-lettered "
                    "bad_signature",
    )
    envelope_signatures: bool = Field(
        default=True,
        validation_alias="BILLING_ENVELOPE_SIGNATURES",
        description="Sign what is published and verify what is consumed. Off only for the bench's comparison "
                    "of the cost: never in a deployment",
    )

    environment: Literal["development", "production"] = Field(
        default="development",
        validation_alias="BILLING_ENVIRONMENT",
        description="production: refuse to start with any development default (a clock file, plaintext Kafka, "
                    "a published token key, API docs, the notifier's file channels...), API docs off by default, "
                    "Strict-Transport-Security on every answer",
    )
    api_docs: bool | None = Field(
        default=None,
        validation_alias="BILLING_API_DOCS",
        description="Serve /docs, /redoc and /openapi.json; unset: on in development, off in production",
    )
    max_request_bytes: int = Field(
        default=64 * 1024, ge=1024,
        validation_alias="BILLING_MAX_REQUEST_BYTES",
        description="The largest request body a door reads; a larger one is answered 413 unread. The largest "
                    "honest body (a registration) is under 2 KiB",
    )
    database_password: SecretStr | None = Field(
        default=None,
        validation_alias="BILLING_DATABASE_PASSWORD",
        description="The database user's password, kept out of the URL (a secret of its own); put into the URL "
                    "when it connects",
    )
    clock_file: Path | None = Field(
        default=None,
        validation_alias="BILLING_CLOCK_FILE",
        description="Embedded suite only (`billing up` sets it): the shared clock file that `billing clock` "
                    "moves; unset: the wall clock, as production runs",
    )

    @field_validator("token_public_keys", "operator_keys", "signing_public_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return parse_entries(value) if isinstance(value, str) else value

    @field_validator("signing_public_keys")
    @classmethod
    def _valid_signing_keys(cls, value: list[str]) -> list[str]:
        Keyring.from_entries(value)
        return value

    def envelope_signer(self) -> EnvelopeSigner | None:
        """The key this service signs its records with (None: signatures are off)."""
        if not self.envelope_signatures:
            return None
        if self.signing_private_key is None:
            raise ValueError(f"no signing key: set BILLING_{self.service_name.upper()}_SIGNING_PRIVATE_KEY "
                             "(its public half goes into every consumer's BILLING_SIGNING_PUBLIC_KEYS)")
        return EnvelopeSigner(self.service_name, self.signing_private_key.get_secret_value())

    def signing_keyring(self) -> Keyring | None:
        """The keys consumed records are checked with (None: signatures are off)."""
        return Keyring.from_entries(self.signing_public_keys) if self.envelope_signatures else None

    @field_validator("token_public_keys")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        TokenKeys.from_base64(value)
        return value

    @field_validator("operator_keys")
    @classmethod
    def _valid_operator_keys(cls, value: list[str]) -> list[str]:
        OperatorKeys.parse(value)
        return value

    def operator_key_ring(self) -> OperatorKeys:
        return OperatorKeys.parse(self.operator_keys)

    @property
    def in_production(self) -> bool:
        return self.environment == "production"

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else not self.in_production

    def development_defaults(self) -> list[str]:
        """Each setting of this process that production refuses, named, with why. A service adds its own."""
        found = []
        if self.clock_file is not None:
            found.append("BILLING_CLOCK_FILE is set: whoever can write that file moves token expiry and "
                         "throttles (unset it: production runs on the wall clock)")
        if self.kafka.security_protocol in PLAINTEXT_PROTOCOLS:
            found.append(f"BILLING_KAFKA__SECURITY_PROTOCOL is {self.kafka.security_protocol}: events and "
                         "credentials cross the network in clear (use SASL_SSL or SSL)")
        if PUBLISHED_TEST_TOKEN_PUBLIC_KEYS.intersection(self.token_public_keys):
            found.append("BILLING_TOKEN_PUBLIC_KEYS holds the tests' published key: anyone can mint a token it "
                         "accepts (python -m billing_events.admin token-keypair makes a new pair)")
        if self.api_docs:
            found.append("BILLING_API_DOCS is true: the API's documentation is served to whoever asks "
                         "(unset it: off in production)")
        if not self.envelope_signatures:
            found.append("BILLING_ENVELOPE_SIGNATURES is false: records are published unsigned and consumed "
                         "unchecked, so whoever reaches the broker speaks for any service")
        if self.metrics_port is None and self.http_port is not None:
            found.append("BILLING_METRICS_PORT is unset: /metrics is served on the API port, to every caller "
                         "(give it a port only the scraper reaches)")
        return found

    def refuse_development_defaults(self) -> None:
        """Raise :class:`DevelopmentDefaultsInProduction` in production when any is set."""
        offending = self.development_defaults() if self.in_production else []
        if offending:
            raise DevelopmentDefaultsInProduction(self.service_name, offending)

    def token_keys(self) -> TokenKeys:
        """The keys API tokens are checked with (identity adds the private key it signs with)."""
        return TokenKeys.from_base64(self.token_public_keys)

    def clock(self) -> Clock:
        """The service's clock: the wall clock, or the embedded suite's movable shared one."""
        return FileClock(self.clock_file) if self.clock_file else SystemClock()

    def resolved_database_url(self) -> str:
        if self.database_url and self.database_password is not None:
            url = make_url(self.database_url).set(password=self.database_password.get_secret_value())
            return url.render_as_string(hide_password=False)
        if self.database_url:
            return self.database_url
        folder = self.data_dir / self.service_name
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(folder / f'{self.service_name}.db').resolve()}"
