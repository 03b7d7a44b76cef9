"""Operations commands that run inside the service image, configured like the services.

``python -m billing_events.admin create-topics ledger identity tariff notifier``
    creates the catalog's event topics and the named services' dead-letter topics, with the
    partitions, retention, replication and ``min.insync.replicas`` from the ``BILLING_KAFKA__*``
    variables: the one-shot job of Compose and Kubernetes. Topics that exist are left alone.

``python -m billing_events.admin notifier-keypair``
    prints a new sealing key pair as the two variables identity and the notifier read.

``python -m billing_events.admin token-keypair``
    prints a new API token key pair: the private key for identity (and operators minting
    service tokens), the public key for every service.

``python -m billing_events.admin signing-key ledger``
    prints a new envelope signing key of a publisher (a service, ``cli``, a channel adapter):
    its private key for that publisher alone, and its keyring entry (``owner:public``) for every
    consumer's ``BILLING_SIGNING_PUBLIC_KEYS``.

``python -m billing_events.admin rewind-group ledger --to 2026-11-24T23:00:00+00:00``
    moves a stopped service's consumer group back to the first record of each of its partitions
    written at or after that time (never forward): after a database restore, the service takes
    again from Kafka everything since the backup; its inbox skips what the backup already holds.
    The group is the service's name (with the topic prefix, as the services name it).

``python -m billing_events.admin probe [/health/live]``
    asks the service in the same container for one of its health endpoints and exits 0 only on
    HTTP 200: the image's HEALTHCHECK (the slim image has no curl).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from billing_events.keys import generate_token_keypair
from billing_events.sealing import generate_keypair
from billing_events.signing import generate_signing_key
from billing_events.settings import ServiceSettings
from billing_contracts.topics import EVENT_TOPICS, TopicNames, TopicSpec, dead_letter_spec

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


class AdminSettings(ServiceSettings):
    """The same variables as every service; the admin commands read the Kafka and HTTP ones."""

    service_name: ClassVar[str] = "admin"


def topic_plan(services: Sequence[str]) -> list[TopicSpec]:
    """Every event topic of the catalog, and one dead-letter topic per named service."""
    return [*EVENT_TOPICS, *(dead_letter_spec(service) for service in services)]


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker reports it, after creation or as it already was."""

    name: str
    partitions: int
    replicas: int
    configs: dict[str, str]

    def __str__(self) -> str:
        configs = " ".join(f"{key}={value}" for key, value in sorted(self.configs.items()))
        return f"{self.name} partitions={self.partitions} replicas={self.replicas} {configs}"


REPORTED_CONFIGS = ("retention.ms", "min.insync.replicas")


async def create_topics(settings: AdminSettings, services: Sequence[str]) -> list[TopicState]:
    # Imported here, not at the top: `probe` runs every few seconds and needs no Kafka client.
    from billing_events.kafka import ensure_topics

    names = TopicNames(settings.kafka.topic_prefix)
    plan = topic_plan(services)
    await ensure_topics(settings.kafka, names, plan)
    return await describe_topics(settings, [names(spec.name) for spec in plan])


async def describe_topics(settings: AdminSettings, topics: Sequence[str]) -> list[TopicState]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from billing_events.kafka import client_options

    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        layout = {topic["topic"]: topic["partitions"] for topic in await admin.describe_topics(list(topics))}
        # All configs, filtered below: the embedded broker drops the connection on a named list.
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for _error, _message, _type, topic, entries in response.resources:
            configs[topic] = {entry[0]: entry[1] for entry in entries if entry[0] in REPORTED_CONFIGS}
    return [
        TopicState(topic, len(layout[topic]), len(layout[topic][0]["replicas"]), configs.get(topic, {}))
        for topic in topics
    ]


@dataclass(frozen=True)
class Rewound:
    """One partition of a rewound group: the committed offset before and after."""

    topic: str
    partition: int
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] {self.before} -> {self.after}"


async def rewind_group(settings: AdminSettings, service: str, to: datetime, *,
                       wait_seconds: float = 60.0) -> list[Rewound]:
    """Commit, for every partition ``service``'s consumer group has an offset in, the offset of
    the first record written at or after ``to`` when that is earlier than the committed one.

    Run it while every instance of the service is stopped: a running member's next commit would
    move the group forward again (and this command, joining the group, would take their
    partitions for a moment). It waits at most ``wait_seconds`` to be given every partition.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from billing_events.kafka import client_options

    if to.tzinfo is None:
        raise ValueError(f"{to.isoformat()} has no time zone: give one, e.g. {to.isoformat()}+00:00")
    prefix = settings.kafka.topic_prefix
    consumer = AIOKafkaConsumer(**client_options(settings.kafka), group_id=f"{prefix}{service}",
                                enable_auto_commit=False, session_timeout_ms=settings.kafka.session_timeout_ms,
                                heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms)
    await consumer.start()
    try:
        # The group's offsets read partition by partition: the embedded broker answers the admin
        # client's "all offsets of a group" request in a shape aiokafka cannot decode.
        partitions = [TopicPartition(topic, p) for topic in sorted(await consumer.topics()) if topic.startswith(prefix)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = {tp: offset for tp in partitions if (offset := await consumer.committed(tp)) is not None}
        if not committed:
            return []
        found = await consumer.offsets_for_times({tp: int(to.timestamp() * 1000) for tp in committed})
        targets = {tp: min(offset, found[tp].offset) if found[tp] is not None else offset
                   for tp, offset in committed.items()}
        await _commit_as_member(consumer, targets, group=f"{prefix}{service}", wait_seconds=wait_seconds)
    finally:
        await consumer.stop()
    return [Rewound(tp.topic, tp.partition, committed[tp], targets[tp])
            for tp in sorted(targets, key=lambda tp: (tp.topic, tp.partition))]


async def _commit_as_member(consumer: Any, offsets: dict[Any, int], *, group: str, wait_seconds: float) -> None:
    """Join the group (alone: the service is stopped) and commit as its member: brokers refuse a
    commit from outside a group that has had members."""
    consumer.subscribe(topics=sorted({tp.topic for tp in offsets}))
    deadline = time.monotonic() + wait_seconds
    while not set(offsets) <= consumer.assignment():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"could not take every partition of the consumer group {group} within"
                               f" {wait_seconds:.0f} s: stop every instance of the service first")
        await asyncio.sleep(0.2)
    await consumer.commit(offsets)


def probe(settings: AdminSettings, path: str, timeout: float = 3.0) -> str | None:
    """None when the endpoint answers 200, else what went wrong."""
    if settings.http_port is None:
        return "BILLING_HTTP_PORT is not set: the service serves no health endpoint"
    host = "127.0.0.1" if settings.http_host in WILDCARD_HOSTS else settings.http_host
    url = f"http://{host}:{settings.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} unreachable: {exc}"


def notifier_keypair() -> dict[str, str]:
    public, private = generate_keypair()
    return {"BILLING_NOTIFIER_PUBLIC_KEY": public, "BILLING_NOTIFIER_PRIVATE_KEY": private}


def token_keypair() -> dict[str, str]:
    public, private = generate_token_keypair()
    return {"BILLING_TOKEN_PUBLIC_KEYS": public, "BILLING_TOKEN_PRIVATE_KEY": private}


def signing_key(owner: str) -> dict[str, str]:
    entry, private = generate_signing_key(owner)
    return {f"BILLING_{owner.upper().replace('-', '_')}_SIGNING_PRIVATE_KEY": private,
            "BILLING_SIGNING_PUBLIC_KEYS": entry}


def _aware_time(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value} has no time zone: give one, e.g. {value}+00:00")
    return at


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m billing_events.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-topics", help="create the catalog's topics (idempotent)")
    create.add_argument("services", nargs="+", help="services whose dead-letter topics to create")
    commands.add_parser("notifier-keypair", help="print a new sealing key pair as environment variables")
    commands.add_parser("token-keypair", help="print a new API token key pair as environment variables")
    signing = commands.add_parser("signing-key", help="print a new envelope signing key of a publisher")
    signing.add_argument("owner", help="the publisher its envelopes name as producer (ledger, cli, payments...)")
    rewind = commands.add_parser("rewind-group", help="move a stopped service's consumer group back to a time")
    rewind.add_argument("service", help="the service whose group to move (ledger, identity, tariff, notifier)")
    rewind.add_argument("--to", required=True, type=_aware_time,
                        help="ISO 8601 time with its zone, e.g. 2026-11-24T23:00:00+00:00")
    check = commands.add_parser("probe", help="exit 0 when a health endpoint of this container answers 200")
    check.add_argument("path", nargs="?", default="/health/live")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command in ("notifier-keypair", "token-keypair", "signing-key"):
        pair = (notifier_keypair() if arguments.command == "notifier-keypair" else
                token_keypair() if arguments.command == "token-keypair" else signing_key(arguments.owner))
        for name, value in pair.items():
            print(f"{name}={value}")
        return 0
    settings = AdminSettings()
    if arguments.command == "create-topics":
        for topic in asyncio.run(create_topics(settings, arguments.services)):
            print(f"topic ready: {topic}")
        return 0
    if arguments.command == "rewind-group":
        for rewound in asyncio.run(rewind_group(settings, arguments.service, arguments.to)):
            print(f"rewound: {rewound}")
        return 0
    problem = probe(settings, arguments.path)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
