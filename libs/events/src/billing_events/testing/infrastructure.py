"""Where the tests' broker and PostgreSQL come from, in this order of preference:

1. named by the environment: ``KAFKA_BOOTSTRAP_SERVERS`` and ``BILLING_TEST_POSTGRES_URL``;
2. testcontainers (Apache Kafka and PostgreSQL containers) when a Docker engine answers;
3. this machine: the embedded Tansu broker and the PostgreSQL server on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from billing_events.embedded import EmbeddedBroker

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Infrastructure:
    bootstrap_servers: str
    postgres_url: str
    broker_source: str
    postgres_source: str


def docker_engine_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # any failure means: no engine to start containers with
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return None


def provide(stack: ExitStack, say: Callable[[str], None]) -> Infrastructure:
    """Start (or find) a broker and a PostgreSQL server; ``stack`` stops what was started."""
    broker_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    postgres_env = os.environ.get("BILLING_TEST_POSTGRES_URL")
    engine_problem = None if (broker_env and postgres_env) else docker_engine_problem()
    if engine_problem:
        say(f"testcontainers: no Docker engine ({engine_problem}); using local services")

    if broker_env:
        bootstrap, broker_source = broker_env, f"KAFKA_BOOTSTRAP_SERVERS={broker_env}"
    elif engine_problem is None:
        from testcontainers.kafka import KafkaContainer

        kafka = stack.enter_context(KafkaContainer().with_kraft())
        bootstrap, broker_source = kafka.get_bootstrap_server(), "testcontainers Apache Kafka"
    else:
        embedded = stack.enter_context(EmbeddedBroker())
        bootstrap, broker_source = embedded.bootstrap_servers, "embedded Tansu broker (local process)"

    if postgres_env:
        postgres, postgres_source = postgres_env, "BILLING_TEST_POSTGRES_URL"
    elif engine_problem is None:
        from testcontainers.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer("postgres:16-alpine", driver="asyncpg"))
        postgres, postgres_source = container.get_connection_url(), "testcontainers PostgreSQL"
    else:
        postgres, postgres_source = LOCAL_POSTGRES, "local PostgreSQL 127.0.0.1:5432"

    say(f"broker: {broker_source} at {bootstrap}; postgres: {postgres_source}")
    return Infrastructure(bootstrap, postgres, broker_source, postgres_source)
