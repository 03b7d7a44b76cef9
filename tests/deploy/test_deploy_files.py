"""The deploy files, checked without a Docker engine or a cluster.

- deploy/compose.yaml against the Compose specification's JSON Schema (the copy check-jsonschema
  ships), and deploy/k8s/ against the Kubernetes schemas (kubernetes-validate): both offline.
- Every BILLING_* variable the files set is one the settings classes read, every setting without
  a default is set, and the values parse: the files and the embedded default go through the
  same settings classes.
- The production shape the issue asks for: three KRaft brokers with replication 3 and
  min.insync.replicas 2, a database per service, two ledger instances, probes, limits, non-root.
- The web cabinet: it calls each service where that listens, its cookie is Secure where HTTPS
  serves it, and it reaches the services' APIs alone.
- docs/operations.md names real topics, metrics, variables and commands.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import uvicorn
import yaml
from prometheus_client.metrics import MetricWrapperBase
from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_settings import BaseSettings
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bench.cluster import PRODUCTION_SETTINGS
from billing_events import metrics
from billing_events.admin import AdminSettings
from billing_events.admin import main as admin_main
from billing_events.keys import generate_token_keypair, public_key_of
from billing_events.sealing import generate_keypair
from billing_events.settings import ServiceSettings
from billing_events.signing import generate_signing_key
from billing_contracts.topics import EVENT_TOPICS, dead_letter_spec
from billing_cabinet.__main__ import main as cabinet_main
from billing_cabinet.app import build as build_cabinet
from billing_cabinet.settings import CabinetSettings
from identity.settings import IdentitySettings
from ledger.settings import LedgerSettings
from notifier.settings import NotifierSettings
from tariff.settings import TariffSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes release the manifests must fit (the schemas ship in kubernetes-validate).
KUBERNETES_VERSION = "1.30"

SERVICES: dict[str, type[ServiceSettings]] = {
    "identity": IdentitySettings,
    "ledger": LedgerSettings,
    "tariff": TariffSettings,
    "notifier": NotifierSettings,
}
CABINET = "billing_cabinet"
# The processes on the broker, by the module their command runs (the cabinet speaks HTTP alone).
KAFKA_CLIENTS: dict[str, type[ServiceSettings]] = {**SERVICES, "billing_events.admin": AdminSettings}
# Who reads the environment of a container, by the module its command runs.
READERS: dict[str, type[BaseSettings]] = {**KAFKA_CLIENTS, CABINET: CabinetSettings}
TOKEN_SAMPLE = generate_token_keypair()[1]
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|_KEY|DATABASE_URL)$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<rule>[:?+-][^}]*)?\}")


# --- what the settings read --------------------------------------------------------------

def field_variables(settings_cls: type[BaseSettings], name: str) -> set[str]:
    """The environment variables that set one field (pydantic-settings ignores their case)."""
    config = settings_cls.model_config
    field = settings_cls.model_fields[name]
    alias = field.validation_alias
    if isinstance(alias, str):
        return {alias.upper()}
    if isinstance(alias, AliasChoices):
        return {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    own = f"{config['env_prefix']}{name}".upper()
    nested = field.annotation
    if isinstance(nested, type) and issubclass(nested, BaseModel):
        delimiter = config["env_nested_delimiter"]
        return {own} | {f"{own}{delimiter}{sub}".upper() for sub in nested.model_fields}
    return {own}


def variables_read_by(settings_cls: type[BaseSettings]) -> set[str]:
    return set().union(*(field_variables(settings_cls, name) for name in settings_cls.model_fields))


def unread_variables(environment: Mapping[str, str], settings_cls: type[BaseSettings]) -> set[str]:
    billing = {name.upper() for name in environment if name.upper().startswith("BILLING_")}
    return billing - variables_read_by(settings_cls)


def missing_required(environment: Mapping[str, str], settings_cls: type[BaseSettings]) -> set[str]:
    given = {name.upper() for name in environment}
    return {
        name for name, field in settings_cls.model_fields.items()
        if field.is_required() and not field_variables(settings_cls, name) & given
    }


def secret_sample(variable: str) -> str:
    """A valid stand-in for a value the files take from a secret store."""
    if variable.endswith("_DATABASE_URL"):
        return "postgresql+asyncpg://user:password@db:5432/sample"
    if variable in {"BILLING_NOTIFIER_PUBLIC_KEY", "BILLING_NOTIFIER_PRIVATE_KEY"}:
        public, private = generate_keypair()
        return public if variable.endswith("PUBLIC_KEY") else private
    if variable in {"BILLING_TOKEN_PUBLIC_KEYS", "BILLING_TOKEN_PRIVATE_KEY"}:
        return public_key_of(TOKEN_SAMPLE) if variable.endswith("PUBLIC_KEYS") else TOKEN_SAMPLE
    if variable == "BILLING_OPERATOR_KEYS":
        return f"ops={public_key_of(TOKEN_SAMPLE)}"
    if variable == "BILLING_SIGNING_PUBLIC_KEYS":
        return ",".join(generate_signing_key(owner)[0] for owner in SERVICES)
    if variable.endswith("_KEY"):
        return base64.b64encode(bytes(range(32))).decode()
    if variable == "BILLING_LEDGER_CARD_CALLBACK_SECRET":
        return "sample-secret-shared-with-the-card-acquirer"
    if variable == "BILLING_CABINET_SESSION_SECRET":
        return "sample-secret-signing-the-cabinets-session-cookie"
    return "sample-secret"


Settings = TypeVar("Settings", bound=BaseSettings)


def load_settings(
    settings_cls: type[Settings], environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a process with exactly this BILLING_* environment would get."""
    with monkeypatch.context() as patch:
        for name in [name for name in os.environ if name.upper().startswith("BILLING_")]:
            patch.delenv(name)
        for name, value in environment.items():
            patch.setenv(name, value)
        return settings_cls()


# --- the files, read ---------------------------------------------------------------------

@dataclass(frozen=True)
class Container:
    """One process the deploy files start: where, what it runs, and its BILLING_* environment."""

    where: str
    module: str
    environment: dict[str, str]
    secret_sourced: frozenset[str]

    def resolved(self) -> dict[str, str]:
        return {name: secret_sample(name) if name in self.secret_sourced else value
                for name, value in self.environment.items()}


def python_module(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], f"command {command} does not run a python module"
    return command[2]


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in raw.items()}


def compose_containers() -> list[Container]:
    containers = []
    for name, service in load_compose()["services"].items():
        if "command" not in service or service["command"][:1] != ["python"]:
            continue  # Kafka, PostgreSQL
        if service["command"][:len(MIGRATE)] == MIGRATE:
            continue  # the databases only: test_the_databases_are_migrated_before_the_services_start
        environment = compose_environment(service)
        interpolated = frozenset(n for n, value in environment.items() if INTERPOLATION.search(value))
        containers.append(Container(f"compose:{name}", python_module(service["command"]), environment, interpolated))
    return containers


MIGRATE = ["python", "-m", "billing_cli", "migrate"]


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def k8s_resources() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/k8s` applies (the resources kustomization.yaml lists)."""
    return [doc for resource in kustomization()["resources"] for doc in yaml_documents(K8S / resource)]


def example_secrets() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["stringData"] for doc in yaml_documents(K8S / "secret.example.yaml")}


def of_kind(kind: str) -> Iterator[dict[str, Any]]:
    return (doc for doc in k8s_resources() if doc["kind"] == kind)


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in k8s_resources():
        if doc["kind"] in {"Deployment", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def k8s_containers() -> list[Container]:
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in of_kind("ConfigMap")}
    secrets = example_secrets()
    containers = []
    for where, pod in pod_specs():
        for container in pod["containers"]:
            environment: dict[str, str] = {}
            from_secrets: set[str] = set()
            for source in container.get("envFrom", []):
                environment.update(config_maps[source["configMapRef"]["name"]])
            for variable in container.get("env", []):
                if "value" in variable:
                    environment[variable["name"]] = str(variable["value"])
                    continue
                reference = variable["valueFrom"]["secretKeyRef"]
                environment[variable["name"]] = secrets[reference["name"]][reference["key"]]
                from_secrets.add(variable["name"])
            containers.append(Container(f"k8s:{where}", python_module(container["command"]), environment,
                                        frozenset(from_secrets)))
    return containers


ALL_CONTAINERS = compose_containers() + k8s_containers()


def deployed_module(deployment: dict[str, Any]) -> str:
    return python_module(deployment["spec"]["template"]["spec"]["containers"][0]["command"])


def service_deployments() -> list[dict[str, Any]]:
    return [deployment for deployment in of_kind("Deployment") if deployed_module(deployment) in SERVICES]


def cabinet_container(where: str) -> Container:
    """The cabinet's container of the Compose file (``compose:``) or of the manifests (``k8s:``)."""
    (cabinet,) = [c for c in ALL_CONTAINERS if c.module == CABINET and c.where.startswith(where)]
    return cabinet


# --- schemas -----------------------------------------------------------------------------

def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def compose_errors(document: Any) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(load_compose()) == []


SECURED_OVERLAY = DEPLOY / "compose.kafka-secured.yaml"


@pytest.mark.parametrize("container", [c for c in ALL_CONTAINERS if c.module in KAFKA_CLIENTS], ids=lambda c: c.where)
def test_kafka_in_clear_only_on_the_closed_compose_network(container: Container,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes reaches Kafka over SASL_SSL as a user of the process's own; the Compose file's
    clear listeners are on its own network alone, which it says (the secured overlay: SASL_SSL)."""
    settings = load_settings(KAFKA_CLIENTS[container.module], container.resolved(), monkeypatch)
    if container.where.startswith("k8s:"):
        assert settings.kafka.security_protocol == "SASL_SSL" and not settings.kafka.closed_network
        expected_user = "admin" if container.module == "billing_events.admin" else container.module
        assert settings.kafka.sasl_username == expected_user, container.where
        assert str(settings.kafka.sasl_password_file).startswith("/etc/billing/kafka-user/")
    else:
        assert settings.kafka.closed_network
    settings.kafka.refuse_cleartext()


def test_the_secured_kafka_overlay_secures_every_billing_process(monkeypatch: pytest.MonkeyPatch) -> None:
    overlay = yaml.safe_load(SECURED_OVERLAY.read_text())
    assert compose_errors(overlay) == []
    base = {container.where.removeprefix("compose:"): container for container in compose_containers()
            if container.module in KAFKA_CLIENTS}
    assert set(base) <= set(overlay["services"])
    for name, container in base.items():
        added = compose_environment(overlay["services"][name])
        assert unread_variables(added, KAFKA_CLIENTS[container.module]) == set()
        assert set(overlay["services"][name]["secrets"]) <= set(overlay["secrets"])
        settings = load_settings(KAFKA_CLIENTS[container.module], {**container.resolved(), **added}, monkeypatch)
        assert settings.kafka.security_protocol == "SASL_SSL"
        assert str(settings.kafka.sasl_password_file).startswith("/run/secrets/")
        assert str(settings.kafka.ssl_ca_file).startswith("/run/secrets/")
        assert settings.kafka.sasl_password is None  # from the mounted file, never written in the file
        assert not settings.kafka.closed_network
    for node in ("kafka-1", "kafka-2", "kafka-3"):
        environment = compose_environment(overlay["services"][node])
        assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_SSL://{node}:19092"
        assert "PLAINTEXT://" not in environment["KAFKA_LISTENERS"].replace("CONTROLLER://", "")


def test_the_compose_validator_catches_a_mistake() -> None:
    broken = load_compose()
    broken["services"]["ledger"]["restart_policy"] = "always"  # not a Compose key
    broken["services"]["ledger"]["depends_on"]["postgres"]["condition"] = "service_ready"  # not a condition
    errors = compose_errors(broken)
    assert any("restart_policy" in error for error in errors)
    assert any(error.startswith("services/ledger/depends_on") for error in errors)


@pytest.mark.parametrize("document", k8s_resources() + yaml_documents(K8S / "secret.example.yaml"),
                         ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}")
def test_manifest_follows_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_validator_catches_a_mistake() -> None:
    deployment = next(of_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}
    assert not list(of_kind("Secret")), "placeholder secrets must never be applied"


# --- environment variables ---------------------------------------------------------------

@pytest.mark.parametrize("container", ALL_CONTAINERS, ids=lambda c: c.where)
def test_every_variable_set_is_read_and_every_required_one_is_set(container: Container) -> None:
    reader = READERS[container.module]
    assert unread_variables(container.environment, reader) == set()
    assert missing_required(container.environment, reader) == set()


@pytest.mark.parametrize("container", [c for c in ALL_CONTAINERS if c.module in KAFKA_CLIENTS], ids=lambda c: c.where)
def test_the_values_make_production_settings(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(KAFKA_CLIENTS[container.module], container.resolved(), monkeypatch)
    kafka = settings.kafka
    assert (kafka.acks, kafka.enable_idempotence, kafka.create_topics) == ("all", True, False)
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    assert settings.log_format == "json"
    assert settings.http_host == "0.0.0.0" and settings.http_port in (8080, 8081)  # 8081: a pod's second process
    if container.module in SERVICES:
        assert settings.database_url, f"{container.where} would fall back to a SQLite file"
    if container.module in SERVICES and settings.process_role != "relay":  # a relay serves no API
        assert settings.token_public_keys, f"{container.where} would refuse every API call"
        assert settings.signing_keyring().keys, f"{container.where} would dead-letter every record it consumes"
    if container.module in SERVICES and settings.process_role != "consumer":  # it publishes
        assert settings.envelope_signer().owner == container.module


@pytest.mark.parametrize("container", [c for c in ALL_CONTAINERS if c.module in SERVICES], ids=lambda c: c.where)
def test_each_service_holds_its_own_signing_key_only(container: Container) -> None:
    """A compromised pod can sign as its own service, never as another."""
    held = {name for name in container.environment if name.endswith("_SIGNING_PRIVATE_KEY")}
    assert held <= {f"BILLING_{container.module.upper()}_SIGNING_PRIVATE_KEY"}, container.where


@pytest.mark.parametrize("container", [c for c in k8s_containers() if c.module in KAFKA_CLIENTS],
                         ids=lambda c: c.where)
def test_kubernetes_runs_in_production_without_a_development_default(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifests start: production refuses nothing they set (TLS to Kafka, the notifier's
    gateways, identity's client address header, no API docs)."""
    settings = load_settings(KAFKA_CLIENTS[container.module], container.resolved(), monkeypatch)
    assert settings.environment == "production"
    assert settings.development_defaults() == []
    assert not settings.serves_api_docs


@pytest.mark.parametrize("container", [c for c in compose_containers() if c.module in KAFKA_CLIENTS],
                         ids=lambda c: c.where)
def test_compose_says_what_keeps_it_from_production(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lone Docker host is development, for its plaintext Kafka, the notifier's file,
    /metrics on the API ports and the development acquirer page (said in compose.yaml); nothing
    else it sets would stop a production start."""
    settings = load_settings(KAFKA_CLIENTS[container.module], container.resolved(), monkeypatch)
    assert settings.environment == "development"
    expected = ["BILLING_KAFKA__SECURITY_PROTOCOL"]
    if settings.http_port is not None:
        expected += ["BILLING_METRICS_PORT"]
    if container.module == "notifier":
        expected += ["BILLING_NOTIFIER_SMS_CHANNEL", "BILLING_NOTIFIER_EMAIL_CHANNEL"]
    if container.module == "identity":
        expected += ["BILLING_IDENTITY_CLIENT_ADDRESS_HEADER"]  # no proxy in front: the TCP peer is the client
    if container.module == "ledger" and settings.process_role != "relay":
        expected += ["BILLING_LEDGER_CARD_ACQUIRER_URL"]  # no acquirer: the development page stands in
    assert [found.split(" ", 1)[0] for found in settings.development_defaults()] == expected


@pytest.mark.parametrize("where", ["compose:", "k8s:"])
def test_the_cabinets_cookie_is_secure_where_https_serves_it(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser sends a Secure cookie back over HTTPS only: the ingress serves the cabinet so
    (production), the Compose file over plain HTTP on its published port (development, said in
    compose.yaml), where a Secure cookie would sign nobody in. Both take the session secret from
    their secrets (deploy/.env, the Secret), so a restart, or another pod, signs nobody out."""
    cabinet = cabinet_container(where)
    settings = load_settings(CabinetSettings, cabinet.resolved(), monkeypatch)
    assert settings.secure_cookie == (where == "k8s:")
    assert settings.environment == ("production" if where == "k8s:" else "development")
    assert "BILLING_CABINET_SESSION_SECRET" in cabinet.secret_sourced


@pytest.mark.parametrize("container", ALL_CONTAINERS, ids=lambda c: c.where)
def test_only_identity_holds_the_token_private_key(container: Container) -> None:
    """A compromised ledger, tariff or notifier pod can check tokens, never mint one."""
    assert ("BILLING_TOKEN_PRIVATE_KEY" in container.environment) == (container.module == "identity")


@pytest.mark.parametrize("container", [c for c in ALL_CONTAINERS if c.module in SERVICES], ids=lambda c: c.where)
def test_each_service_has_its_own_postgresql_database(container: Container) -> None:
    url = container.environment[f"BILLING_{container.module.upper()}_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://")
    assert url.rsplit("/", 1)[1] == container.module
    assert url.split("://", 1)[1].startswith(f"{container.module}:")  # the service's own role


def test_the_variable_check_catches_a_misspelt_or_missing_variable() -> None:
    assert unread_variables({"BILLING_KAFKA__BOOTSTRAP_SERVER": "kafka:9092"}, LedgerSettings) == {
        "BILLING_KAFKA__BOOTSTRAP_SERVER"
    }
    assert unread_variables({"BILLING_DATABASE_URL": "postgresql+asyncpg://x"}, LedgerSettings) == {
        "BILLING_DATABASE_URL"  # the ledger reads BILLING_LEDGER_DATABASE_URL only
    }
    assert missing_required({}, NotifierSettings) >= {"notifier_private_key"}


def test_the_variable_list_matches_what_pydantic_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {"BILLING_KAFKA__LINGER_MS": "7", "BILLING_LEDGER_DATABASE_URL": "postgresql+asyncpg://l@db/ledger",
                   "BILLING_OUTBOX_RETENTION_HOURS": "3"}
    assert unread_variables(environment, LedgerSettings) == set()
    settings = load_settings(LedgerSettings, environment, monkeypatch)
    assert (settings.kafka.linger_ms, settings.database_url, settings.outbox_retention_hours) == (
        7, "postgresql+asyncpg://l@db/ledger", 3)


def test_secrets_come_from_secrets() -> None:
    for container in k8s_containers():
        secret_like = {name for name in container.environment if SECRET_NAME.search(name)}
        assert secret_like <= container.secret_sourced, f"{container.where} takes a secret from a ConfigMap"
    for container in compose_containers():
        secret_like = {name for name in container.environment if SECRET_NAME.search(name)}
        assert secret_like <= container.secret_sourced, f"{container.where} has a secret written in the file"


def test_every_secret_compose_needs_is_in_the_env_example() -> None:
    files = [load_compose(), yaml.safe_load((DEPLOY / "compose.kafka-secured.yaml").read_text())]
    values = [value for document in files for service in document["services"].values()
              for value in compose_environment(service).values()]
    required = {match["name"] for value in values for match in INTERPOLATION.finditer(value)
                if (match["rule"] or "").startswith(":?")}
    required |= {secret["environment"] for document in files for secret in document.get("secrets", {}).values()
                 if "environment" in secret}
    example = {line.split("=", 1)[0] for line in (DEPLOY / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required == example


def test_the_example_secrets_cannot_be_deployed_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = next(c for c in k8s_containers() if c.module == "identity")
    with pytest.raises(ValidationError, match="base64"):
        load_settings(IdentitySettings, identity.environment, monkeypatch)


def test_image_defaults_are_variables_every_service_reads() -> None:
    dockerfile_env = dict(re.findall(r"(BILLING_[A-Z0-9_]+)=(\S+)", (DEPLOY / "Dockerfile").read_text()))
    assert dockerfile_env
    for settings_cls in KAFKA_CLIENTS.values():
        assert unread_variables(dockerfile_env, settings_cls) == set()


# --- the production shape ----------------------------------------------------------------

def test_kafka_is_three_kraft_nodes_replicating_three_ways() -> None:
    services = load_compose()["services"]
    nodes = {name: service for name, service in services.items() if service.get("image", "").startswith("apache/kafka:")}
    assert len(nodes) == 3
    configs = [compose_environment(node) for node in nodes.values()]
    assert {config["KAFKA_NODE_ID"] for config in configs} == {"1", "2", "3"}
    for config in configs:
        assert config["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters = {voter.split("@")[1].split(":")[0] for voter in config["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
        assert voters == set(nodes)
        assert (config["KAFKA_DEFAULT_REPLICATION_FACTOR"], config["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
        assert config["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert len(base64.urlsafe_b64decode(config["CLUSTER_ID"] + "==")) == 16  # a KRaft cluster id
    assert len({config["CLUSTER_ID"] for config in configs}) == 1
    advertised = {config["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1] for config in configs}
    for container in [c for c in compose_containers() if c.module in KAFKA_CLIENTS]:
        assert set(container.environment["BILLING_KAFKA__BOOTSTRAP_SERVERS"].split(",")) == advertised


def test_compose_starts_every_service_after_topics_and_database() -> None:
    services = load_compose()["services"]
    started = {name: s for name, s in services.items() if s.get("command", [""])[0] == "python"}
    modules = {name: python_module(s["command"]) for name, s in started.items()}
    assert set(modules.values()) == {*SERVICES, CABINET, "billing_events.admin", "billing_cli"}
    assert started["ledger"].get("deploy", {}).get("replicas") == 2
    for name in [name for name, module in modules.items() if module in SERVICES]:
        depends = started[name]["depends_on"]
        assert depends["create-topics"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_compose_starts_the_cabinet_after_the_services_it_calls_where_they_listen(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """No database and no Kafka: the cabinet waits for the services it calls, and for nothing else."""
    services = load_compose()["services"]
    cabinet = cabinet_container("compose:")
    settings = load_settings(CabinetSettings, cabinet.resolved(), monkeypatch)
    called = {urlsplit(url).hostname: (service, urlsplit(url).port) for service, url in settings.service_urls.items()}
    for host, (service, port) in called.items():
        assert python_module(services[host]["command"]) == service
        assert port == int(compose_environment(services[host])["BILLING_HTTP_PORT"]), service
    compose_service = services[cabinet.where.removeprefix("compose:")]
    assert set(compose_service["depends_on"]) == set(called)
    assert settings.host == "0.0.0.0"  # the default, 127.0.0.1, answers nobody outside the container
    assert f"{settings.port}:{settings.port}" in compose_service["ports"]
    # Its own health check: the image's asks /health/live on the services' port, 8080.
    assert f":{settings.port}/health/live'" in " ".join(compose_service["healthcheck"]["test"])


def test_postgres_init_creates_the_database_of_every_service() -> None:
    postgres = load_compose()["services"]["postgres"]
    mounted = [volume.split(":")[0] for volume in postgres["volumes"] if "docker-entrypoint-initdb.d" in volume]
    assert mounted == ["./postgres/init-databases.sh"]
    script = (DEPLOY / "postgres" / "init-databases.sh").read_text()
    default_databases = re.search(r"SERVICE_DATABASES:-([a-z ]+)\}", script)
    assert default_databases and set(default_databases[1].split()) == set(SERVICES)
    assert {f"{service.upper()}_DB_PASSWORD" for service in SERVICES} <= set(compose_environment(postgres))


def test_the_topic_jobs_create_the_dead_letter_topics_of_every_service() -> None:
    commands = [s["command"] for s in load_compose()["services"].values() if "create-topics" in s.get("command", [])]
    commands += [c["command"] for _, pod in pod_specs() for c in pod["containers"] if "create-topics" in c["command"]]
    assert len(commands) == 2
    for command in commands:
        assert set(command[command.index("create-topics") + 1:]) == set(SERVICES)


def test_k8s_deploys_every_service_and_the_cabinet_once() -> None:
    deployed = [deployed_module(d) for d in of_kind("Deployment")]
    assert sorted(deployed) == sorted([*SERVICES, CABINET])


def test_the_cabinet_calls_each_service_through_its_kubernetes_service(monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "billing-config")["data"]
    cabinet = cabinet_container("k8s:")
    settings = load_settings(CabinetSettings, cabinet.resolved(), monkeypatch)
    kubernetes_services = {doc["metadata"]["name"]: doc for doc in of_kind("Service")}
    for service, url in settings.service_urls.items():
        address = urlsplit(url)
        target = kubernetes_services[address.hostname]
        (port,) = [port for port in target["spec"]["ports"] if port["port"] == address.port]
        (deployment,) = [d for d in of_kind("Deployment")
                         if target["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert deployed_module(deployment) == service
        api = deployment["spec"]["template"]["spec"]["containers"][0]
        served = {p["name"]: p["containerPort"] for p in api["ports"]}
        assert served[port["targetPort"]] == int(config["BILLING_HTTP_PORT"]), service
    (deployment,) = [d for d in of_kind("Deployment") if deployed_module(d) == CABINET]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert settings.host == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": settings.port}


@pytest.mark.parametrize("deployment", list(of_kind("Deployment")), ids=lambda d: d["metadata"]["name"])
def test_deployments_have_probes_limits_and_run_as_non_root(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        if python_module(container["command"]) == CABINET:  # its own routes, not the services' runtime's
            assert {"/health/ready", "/health/live"} <= {route.path for route in build_cabinet(CabinetSettings()).routes}
        probed = {container["readinessProbe"]["httpGet"]["port"]}
        assert probed <= {p.get("name") for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    if deployed_module(deployment) in SERVICES:
        assert pod["terminationGracePeriodSeconds"] > 30  # the broker client's graceful timeout


@pytest.mark.parametrize("service", ["ledger", "tariff"])
def test_the_service_splits_consuming_and_relaying_into_processes(service: str) -> None:
    """Compose runs consumer instances and a relay; each Kubernetes pod runs one of each. The
    tariff's consumer process closes the days (its billing clock runs where it consumes), the
    relay publishes their charges."""
    services = load_compose()["services"]
    relay = f"{service}-relay"
    assert {name: services[name]["environment"]["BILLING_PROCESS_ROLE"] for name in (service, relay)} == {
        service: "consumer", relay: "relay"}
    deployment = next(d for d in of_kind("Deployment") if d["metadata"]["name"] == service)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    roles = [next(e["value"] for e in c["env"] if e["name"] == "BILLING_PROCESS_ROLE") for c in containers]
    assert roles == ["consumer", "relay"]
    ports = [next(e.get("value", "8080") for e in [*c["env"], {"name": "BILLING_HTTP_PORT"}]
                  if e["name"] == "BILLING_HTTP_PORT") for c in containers]
    assert len(set(ports)) == 2  # one network namespace: each process serves health on a port of its own


def test_the_ledger_has_two_pods_and_a_disruption_budget() -> None:
    ledger = next(d for d in of_kind("Deployment") if d["metadata"]["name"] == "ledger")
    budgets = [b for b in of_kind("PodDisruptionBudget")
               if b["spec"]["selector"]["matchLabels"].items() <= ledger["spec"]["template"]["metadata"]["labels"].items()]
    assert len(budgets) == 1
    assert ledger["spec"]["replicas"] >= 2
    assert 1 <= budgets[0]["spec"]["minAvailable"] < ledger["spec"]["replicas"]


def test_every_referenced_config_and_secret_exists() -> None:
    config_maps = {doc["metadata"]["name"] for doc in of_kind("ConfigMap")}
    secrets = example_secrets()
    for where, pod in pod_specs():
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, where
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["key"] in secrets.get(reference["name"], {}), f"{where}: {reference}"


# --- the image ---------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_image_is_multi_stage_from_the_lock_file_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    arguments = dict(arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg)
    stages = [arg for kind, arg in instructions if kind == "FROM"]
    assert len(stages) >= 2 and arguments["PYTHON_IMAGE"] == "python:3.11-slim"
    syncs = [arg for kind, arg in instructions if kind == "RUN" and "uv sync" in arg]
    assert syncs and all("--locked" in sync and "--no-dev" in sync for sync in syncs)
    final_stage = instructions[max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM"):]
    users = [arg for kind, arg in final_stage if kind == "USER"]
    assert users and users[-1].split(":")[0].replace("${APP_UID}", arguments["APP_UID"]) not in {"0", "root"}
    health = [arg for kind, arg in final_stage if kind == "HEALTHCHECK"]
    assert len(health) == 1 and "probe" in health[0] and "/health/live" in health[0]


def test_image_copies_only_files_that_exist_and_are_not_ignored() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for kind, argument in dockerfile_instructions():
        if kind != "COPY" or argument.startswith("--from"):
            continue
        for source in argument.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not any(source == pattern or source.startswith(f"{pattern}/") for pattern in ignored), source


def build_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (kind, _) in enumerate(instructions) if kind == "FROM"]
    return instructions[starts[0]:starts[1]]


def copy_into(context: Path, argument: str) -> None:
    """COPY from the repository into ``context``, as the build stage's WORKDIR."""
    *sources, destination = argument.split()
    for source in sources:
        origin = ROOT / source
        target = context / destination
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            continue
        if destination.endswith("/") or len(sources) > 1:
            target = target / origin.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target)


@pytest.mark.infrastructure  # installs the image's packages with uv
def test_the_build_stage_installs_every_service_so_it_runs_without_sources(tmp_path: Path) -> None:
    """The build stage's COPY and `uv sync` steps, replayed here without Docker."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to replay the image's build steps"
    context, environment = tmp_path / "src", tmp_path / "venv"
    context.mkdir()
    build_environment = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(environment), "UV_LINK_MODE": "copy",
                         "UV_PYTHON_DOWNLOADS": "never"}
    build_environment.pop("VIRTUAL_ENV", None)
    for kind, argument in build_stage():
        if kind == "COPY":
            copy_into(context, argument)
        elif kind == "RUN" and "uv sync" in argument:
            command = [uv, *shlex.split(argument[argument.index("uv sync") + len("uv "):])]
            result = subprocess.run(command, cwd=context, env=build_environment, capture_output=True, text=True,
                                    timeout=300, check=False)
            assert result.returncode == 0, result.stderr
    shutil.rmtree(context)  # the runtime stage gets the virtual environment only
    python = str(environment / "bin" / "python")

    def runs(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, check=False)

    services = runs("import identity.app, ledger.app, tariff.app, notifier.app, billing_events.admin, billing_cli.main")
    assert services.returncode == 0, services.stderr
    histories = runs("from billing_events import migrations\n"  # packaged beside each store, not only in sources
                     "for service in ('identity', 'ledger', 'tariff', 'notifier'): migrations.head(service)")
    assert histories.returncode == 0, histories.stderr
    assert runs("import pytest").returncode != 0, "the image must not carry the dev dependency group"


# --- the operations guide ----------------------------------------------------------------

GUIDE = (ROOT / "docs" / "operations.md").read_text()


def test_the_guide_lists_every_topic_of_the_catalog() -> None:
    for spec in EVENT_TOPICS:
        assert f"`{spec.name}`" in GUIDE, spec.name


def test_the_guide_recommends_the_postgresql_settings_the_bench_runs_with() -> None:
    section = GUIDE.partition("### PostgreSQL's settings")[2].partition("\n### ")[0]
    recommended = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.MULTILINE))
    assert recommended == PRODUCTION_SETTINGS


def test_the_guide_lists_every_metric() -> None:
    exposed = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    assert exposed
    for metric in exposed:
        name = metric.describe()[0].name
        assert re.search(rf"`{name}(_total)?`", GUIDE), name


def test_every_variable_the_guide_names_is_read_by_a_setting() -> None:
    from billing_cli.config import CliSettings  # the `billing` command's own (who the operator is)

    read = set().union(*(variables_read_by(reader) for reader in [*READERS.values(), CliSettings]))
    named = set(re.findall(r"\bBILLING_[A-Z0-9_]*[A-Z0-9]\b", GUIDE))
    assert named
    assert named - read == set()


def test_every_admin_command_the_guide_names_exists() -> None:
    named = set(re.findall(r"python -m billing_events\.admin ([a-z][a-z-]*)", GUIDE))
    assert named
    for command in named:
        with pytest.raises(SystemExit) as exit_status:
            admin_main([command, "--help"])  # argparse exits 2 for a command it does not know
        assert exit_status.value.code == 0, command


# --- availability, network, re-applying ----------------------------------------------------

@pytest.mark.parametrize("deployment", list(of_kind("Deployment")), ids=lambda d: d["metadata"]["name"])
def test_every_http_service_has_two_pods_a_disruption_budget_and_rolls_without_downtime(
    deployment: dict[str, Any]
) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    budgets = [b for b in of_kind("PodDisruptionBudget") if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert deployment["spec"]["replicas"] >= 2
    assert len(budgets) == 1 and 1 <= budgets[0]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}
    matched = selector.get("matchLabels", {}).items() <= labels.items()
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        matched = matched and labels.get(expression["key"]) in expression["values"]
    return matched


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    return _matches(policy["spec"]["podSelector"], labels)


def _rules(labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    key = "ingress" if direction == "Ingress" else "egress"
    return [rule for policy in of_kind("NetworkPolicy") if _selects(policy, labels)
            and direction in policy["spec"]["policyTypes"] for rule in policy["spec"].get(key, [])]


def _allowed_ports(labels: dict[str, str], direction: str) -> set[int]:
    return {port["port"] for rule in _rules(labels, direction) for port in rule["ports"]}


def test_network_policies_deny_by_default_and_open_only_what_each_pod_uses() -> None:
    policies = list(of_kind("NetworkPolicy"))
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
            and not p["spec"].get("egress")]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for where, pod in pod_specs():
        doc = next(d for d in k8s_resources() if f"{d['kind']}/{d['metadata']['name']}" == where)
        labels = doc["spec"]["template"]["metadata"]["labels"]
        served = {port["containerPort"] for container in pod["containers"] for port in container.get("ports", [])}
        ingress = _allowed_ports(labels, "Ingress")
        if python_module(pod["containers"][0]["command"]) == CABINET:
            assert _allowed_ports(labels, "Egress") == {53, 8080}, where  # DNS, the services' APIs
            assert served == ingress == {8090}, where  # its pages alone
            continue
        gateways = {587, 443} if labels["app.kubernetes.io/name"] == "notifier" else set()
        assert _allowed_ports(labels, "Egress") == {53, 5432, 9093} | gateways, where  # DNS, PostgreSQL, Kafka over TLS
        assert served <= ingress <= {8080, 8081, 9090, 9091}, where  # only the HTTP and metrics ports
    scraped = [rule for policy in policies if "ingress" in policy["spec"] for rule in policy["spec"]["ingress"]
               if {port["port"] for port in rule["ports"]} & {9090, 9091}]
    assert scraped and all(rule.get("from") for rule in scraped)  # the metrics from the scraper only


def test_the_cabinet_reaches_the_services_apis_and_the_ingress_alone_reaches_it() -> None:
    """Its 8080 leads to the four services' pods and nowhere else; its pages take connections
    from the ingress controller's namespace alone, whose X-Forwarded-For the cabinet believes."""
    (cabinet,) = [d for d in of_kind("Deployment") if deployed_module(d) == CABINET]
    labels = cabinet["spec"]["template"]["metadata"]["labels"]
    peers = [peer for rule in _rules(labels, "Egress") if 8080 in {port["port"] for port in rule["ports"]}
             for peer in rule["to"]]
    assert peers and all(set(peer) == {"podSelector"} for peer in peers)  # in this namespace
    reached = {deployed_module(d) for d in of_kind("Deployment") for peer in peers
               if _matches(peer["podSelector"], d["spec"]["template"]["metadata"]["labels"])}
    assert reached == set(SERVICES)
    (pages,) = _rules(labels, "Ingress")
    assert [set(peer) for peer in pages["from"]] == [{"namespaceSelector"}]


def test_the_cabinet_behind_the_ingress_tells_identity_the_browsers_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """identity counts failed logins per address, the one the cabinet forwards: were every
    subscriber the ingress, one's wrong passwords would lock out all; were the header's first
    entry believed (the browser writes it), a script would pick a fresh address for each guess.
    uvicorn, as the cabinet starts it, believes the ingress's X-Forwarded-For and takes the
    address the ingress appended."""
    cabinet = cabinet_container("k8s:")
    for name in [name for name in os.environ if name.upper().startswith("BILLING_")]:
        monkeypatch.delenv(name)
    for name, value in cabinet.resolved().items():
        monkeypatch.setenv(name, value)
    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options, app=app))
    cabinet_main()
    config = uvicorn.Config(**started)
    assert config.proxy_headers
    trusted = cabinet.environment["FORWARDED_ALLOW_IPS"]
    ingress = str(next(ipaddress.ip_network(trusted.split(",")[0].strip()).hosts()))
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    request = {"type": "http", "client": (ingress, 40000),
               "headers": [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7")]}
    asyncio.run(ProxyHeadersMiddleware(app, trusted_hosts=config.forwarded_allow_ips)(request, None, None))
    assert seen == ["203.0.113.7"]


@pytest.mark.parametrize("deployment", service_deployments(), ids=lambda d: d["metadata"]["name"])
def test_prometheus_scrapes_a_metrics_port_the_api_port_is_not(deployment: dict[str, Any]) -> None:
    config = next(d for d in k8s_resources() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "billing-config")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    ports = {port["name"]: port["containerPort"] for container in deployment["spec"]["template"]["spec"]["containers"]
             for port in container["ports"]}
    assert int(annotations["prometheus.io/port"]) == ports["metrics"] == int(config["data"]["BILLING_METRICS_PORT"])
    assert ports["metrics"] != ports["http"]


def test_identity_behind_the_ingress_takes_the_client_address_from_the_proxys_header() -> None:
    """Without it every client is the ingress: one client's wrong logins would lock out all."""
    (identity,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "identity"]
    env = {var["name"]: var.get("value") for var in identity["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BILLING_IDENTITY_CLIENT_ADDRESS_HEADER"] == "X-Forwarded-For"


def test_the_topic_job_can_be_applied_again_with_a_new_image() -> None:
    (job,) = of_kind("Job")
    assert job["spec"]["ttlSecondsAfterFinished"] == 0  # removed once done: the next apply creates it anew


def test_images_are_referenced_by_digest() -> None:
    for image in kustomization()["images"]:
        assert "newTag" not in image and re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"]), image


def test_postgres_is_healthy_only_once_it_takes_tcp_connections() -> None:
    check = load_compose()["services"]["postgres"]["healthcheck"]["test"]
    assert "pg_isready -h 127.0.0.1" in " ".join(check)


# --- migrations --------------------------------------------------------------------------

def test_the_databases_are_migrated_before_the_services_start_in_compose() -> None:
    services = load_compose()["services"]
    migrate = next(service for service in services.values() if service.get("command") == MIGRATE)
    migrated = compose_environment(migrate)
    for container in compose_containers():
        if container.module not in SERVICES:
            continue
        name = container.where.removeprefix("compose:")
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        url = f"BILLING_{container.module.upper()}_DATABASE_URL"
        assert migrated[url] == container.environment[url], f"{name} would start on a database not migrated"
        assert container.environment["BILLING_MIGRATE_ON_START"] == "false"


def test_each_pod_migrates_its_database_before_its_service_starts_in_kubernetes() -> None:
    for doc in service_deployments():
        pod = doc["spec"]["template"]["spec"]
        service = deployed_module(doc)
        (init,) = pod["initContainers"]
        assert init["command"] == [*MIGRATE, "--service", service]
        url = f"BILLING_{service.upper()}_DATABASE_URL"
        (source,) = [variable["valueFrom"] for variable in init["env"] if variable["name"] == url]
        for container in pod["containers"]:
            assert {"name": url, "valueFrom": source} in container["env"]
    for container in k8s_containers():
        if container.module in SERVICES:
            assert container.environment["BILLING_MIGRATE_ON_START"] == "false", container.where


# --- the Kafka ACLs ----------------------------------------------------------------------

ACLS = DEPLOY / "kafka-acls.sh"
# Who may write the topics that are doors in from outside a service (the rest: their owner alone).
DOORS = {
    "billing.ledger.commands": {"ledger"},  # the ledger's HTTP API; who asked comes from the token
    "billing.payments": {"payment-channels", "operations", "ledger"},  # the ledger refills what it keeps
    "billing.replay": {"ledger"},  # the ledger's replays
}


@dataclass(frozen=True)
class Acl:
    principal: str
    operations: frozenset[str]
    resource: str
    name: str
    prefixed: bool


def kafka_acls(tmp_path: Path, prefix: str = "") -> list[Acl]:
    """The ACLs deploy/kafka-acls.sh adds, as it hands them to a stand-in for kafka-acls.sh."""
    calls = tmp_path / "calls"
    stand_in = tmp_path / "kafka-acls.sh"
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls}\n')
    stand_in.chmod(0o755)
    environment = {"PATH": os.environ["PATH"], "KAFKA_BOOTSTRAP": "kafka-1:19092", "KAFKA_ADMIN_CONFIG": "super.properties",
                   "KAFKA_ACLS": str(stand_in), "BILLING_KAFKA__TOPIC_PREFIX": prefix}
    subprocess.run(["sh", str(ACLS)], env=environment, check=True)
    acls = []
    for line in calls.read_text().splitlines():
        words = shlex.split(line)
        assert words[:5] == ["--bootstrap-server", "kafka-1:19092", "--command-config", "super.properties", "--add"]
        options: dict[str, list[str]] = {}
        for flag, value in zip(words[5::2], words[6::2], strict=True):
            options.setdefault(flag, []).append(value)
        [principal], [(resource, [name])] = options["--allow-principal"], [
            (flag, value) for flag, value in options.items() if flag in ("--topic", "--group")]
        acls.append(Acl(principal.removeprefix("User:"), frozenset(options["--operation"]), resource.strip("-"), name,
                        options.get("--resource-pattern-type") == ["prefixed"]))
    return acls


def writers(acls: list[Acl]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for acl in acls:
        if acl.resource == "topic" and "Write" in acl.operations:
            assert not acl.prefixed, f"{acl.principal} writes every topic under {acl.name}"
            found.setdefault(acl.name, set()).add(acl.principal)
    return found


def test_each_topic_is_written_by_its_owner_and_the_doors_alone(tmp_path: Path) -> None:
    found = writers(kafka_acls(tmp_path))
    consumers = ("identity", "ledger", "tariff", "notifier")  # the topic jobs' dead-letter topics
    expected = {spec.name: DOORS.get(spec.name, {spec.owner})
                for spec in [*EVENT_TOPICS, *map(dead_letter_spec, consumers)]}
    assert {spec.name for spec in EVENT_TOPICS if spec.open_to} == set(DOORS)
    assert found == expected


def test_each_service_reads_what_it_consumes_in_its_own_group(tmp_path: Path) -> None:
    from identity.app import CONSUMES as IDENTITY
    from ledger.app import CONSUMES as LEDGER
    from notifier.app import CONSUMES as NOTIFIER
    from tariff.app import CONSUMES as TARIFF

    acls = kafka_acls(tmp_path, prefix="staging.")
    for service, consumed in (("identity", IDENTITY), ("ledger", LEDGER), ("tariff", TARIFF), ("notifier", NOTIFIER)):
        mine = [acl for acl in acls if acl.principal == service and "Read" in acl.operations]
        assert {acl.name for acl in mine if acl.resource == "topic"} == {f"staging.{topic}" for topic in consumed}
        assert {acl.name for acl in mine if acl.resource == "group"} == {f"staging.{service}"}


def test_the_secured_overlay_authorizes_every_principal_the_acls_name(tmp_path: Path) -> None:
    """The brokers refuse whatever no ACL allows, and every principal the ACLs name is a user."""
    overlay = yaml.safe_load(SECURED_OVERLAY.read_text())
    principals = {acl.principal for acl in kafka_acls(tmp_path)}
    for node in ("kafka-1", "kafka-2", "kafka-3"):
        environment = compose_environment(overlay["services"][node])
        assert environment["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert environment["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        users = set(re.findall(r"\buser_([\w-]+)=", environment["KAFKA_LISTENER_NAME_SASL__SSL_PLAIN_SASL_JAAS_CONFIG"]))
        assert principals | {"broker"} == users


def test_nobody_but_the_topic_job_creates_topics(tmp_path: Path) -> None:
    creators = {acl.principal for acl in kafka_acls(tmp_path) if "Create" in acl.operations}
    assert creators == {"admin"}
