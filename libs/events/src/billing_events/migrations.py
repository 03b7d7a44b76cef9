"""Each service's schema history, kept with Alembic beside its store.

A service's history lives in ``<service>/migrations``: an ``env.py`` that calls
:func:`run_environment` with the service's tables, and ``versions/`` with one file per step. A
history covers the service's own tables and the shared ones every service's database has
(outbox, inbox, dead letters): their steps are written once, below, and each service's
revisions call them, so the four databases stay alike.

``billing migrate`` and ``python -m <service> migrate`` upgrade a database to the head of its
history; the embedded suite's services do it at start (``migrate_on_start``). In production a
one-shot step runs it before the services start, and a service whose database is behind its
code refuses to start (:class:`SchemaBehind`).

Alembic is imported only to migrate: a service that starts without migrating checks its
revision with a query and reads the head from the revision files, since alembic's modules are
memory every process of a service would otherwise keep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

from billing_events.db import SCHEMA_LOCK_KEY, Database
from billing_events.logging import get_logger
from billing_events.schema import BigId, UtcDateTime, plumbing_metadata
from billing_events.settings import ServiceSettings

if TYPE_CHECKING:
    from alembic.config import Config

log = get_logger(__name__)

VERSION_TABLE = "alembic_version"

BASELINE = "0001"
"""Every service's first revision: the schema the suite had when migrations began. A database
made before then (its tables made at start, no version recorded) is taken as being there."""


class SchemaBehind(RuntimeError):
    """The database is not at the head of the service's history: someone has to migrate it."""


@dataclass(frozen=True)
class Migrated:
    service: str
    before: str | None
    after: str | None


def config(service: str) -> Config:
    """The Alembic configuration of ``service``'s history (no alembic.ini: nothing to keep in sync)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", f"{service}:migrations")
    return cfg


def head(service: str) -> str:
    """The revision no other revision of ``service``'s history revises, read from the files'
    ``revision`` and ``down_revision`` (each history is one line of steps)."""
    revises: dict[str, str | None] = {}
    for path in (files(service) / "migrations" / "versions").iterdir():
        if path.name.endswith(".py"):
            names = _assignments(path.read_text(), "revision", "down_revision")
            revises[names["revision"]] = names["down_revision"]
    heads = set(revises) - set(revises.values())
    assert len(heads) == 1, f"{service}'s history has heads {sorted(heads)}, not one"
    return heads.pop()


def _assignments(source: str, *wanted: str) -> dict[str, Any]:
    found = {target.id: ast.literal_eval(node.value) for node in ast.parse(source).body
             if isinstance(node, ast.Assign) for target in node.targets
             if isinstance(target, ast.Name) and target.id in wanted}
    assert set(found) == set(wanted), f"a revision file without {sorted(set(wanted) - set(found))}"
    return found


def current(sync_conn: Connection) -> str | None:
    """The revision recorded in the database (None: nothing recorded)."""
    if not inspect(sync_conn).has_table(VERSION_TABLE):
        return None
    return sync_conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one_or_none()


async def revision_of(db: Database) -> str | None:
    async with db.connect() as conn:
        return await conn.run_sync(current)


async def upgrade(db: Database, service: str, revision: str = "head") -> Migrated:
    """Bring ``db`` to ``revision`` of ``service``'s history, one transaction per step. Processes
    migrating one database at once take turns (the advisory lock ``create_schema`` took before)."""
    return await _migrate(db, service, lambda command, cfg: command.upgrade(cfg, revision))


async def downgrade(db: Database, service: str, revision: str) -> Migrated:
    """Undo steps down to ``revision`` (``-1``: the last step), where the steps can be undone."""
    return await _migrate(db, service, lambda command, cfg: command.downgrade(cfg, revision))


async def _migrate(db: Database, service: str, step: Any) -> Migrated:
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            await conn.commit()  # a session lock: each step then commits on its own
        try:
            before = await conn.run_sync(current)
            if before is None and await conn.run_sync(_made_before_migrations):
                log.warning("database made before migrations: recorded at the baseline", service=service)
                await conn.run_sync(_run, service, lambda command, cfg: command.stamp(cfg, BASELINE))
                before = BASELINE
            await conn.run_sync(_run, service, step)
            after = await conn.run_sync(current)
            await conn.commit()
        finally:
            if db.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                await conn.commit()
    if before != after:
        log.info("database migrated", service=service, before=before, after=after)
    return Migrated(service, before, after)


def _made_before_migrations(sync_conn: Connection) -> bool:
    return inspect(sync_conn).has_table("outbox")


def _run(sync_conn: Connection, service: str, step: Any) -> None:
    """Run ``step(command, cfg)``, ``command`` being alembic's commands, on ``sync_conn``."""
    from alembic import command

    cfg = config(service)
    cfg.attributes["connection"] = sync_conn
    step(command, cfg)


async def ensure_current(db: Database, service: str) -> None:
    """Refuse a database that is not at the head of ``service``'s history."""
    found, wanted = await revision_of(db), head(service)
    if found != wanted:
        raise SchemaBehind(
            f"the {service} database is at revision {found or 'none (empty)'}, this version needs {wanted}: "
            f"run `python -m {service} migrate` (or `billing migrate --service {service}`) before starting it"
        )


def database_of(service: str) -> Database:
    """``service``'s database as the service finds it (``BILLING_<SERVICE>_DATABASE_URL``, or
    its SQLite file in the data folder), without the rest of its settings (its secrets)."""

    class Settings(ServiceSettings):
        service_name: ClassVar[str] = service
        database_url: str | None = Field(default=None, validation_alias=f"BILLING_{service.upper()}_DATABASE_URL")

    return Database(Settings().resolved_database_url())


def run_environment(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: migrate the connection the caller handed over.
    ``metadata`` (the service's tables and the shared ones) is what autogenerate compares with."""
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=[plumbing_metadata, metadata],
        transaction_per_migration=True,
        transactional_ddl=True,  # SQLite's DDL is transactional too: a failed step leaves nothing behind
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


# --- steps of the shared tables, called from each service's revisions ----------------------------
# Written once here so the four histories make the same plumbing. Like any revision, a step is
# never edited once released: a change is a new step.

def create_plumbing(op: Any) -> None:
    """The outbox, the inbox and the dead letters as they were at the baseline."""
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime()),
        sa.Column("error", sa.Text(),
                  comment="Why the broker refused it for good (then published_at marks it set aside)"),
    )
    op.create_index("outbox_unpublished", "outbox", ["id"], postgresql_where=text("published_at IS NULL"),
                    sqlite_where=text("published_at IS NULL"))
    op.create_index("outbox_by_key", "outbox", ["key", "id"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.Column("fingerprint", sa.String(64),
                  comment="sha256 of the event's type, version and payload when first taken: a reused id with "
                          "another payload is a conflict, not a redelivery (NULL: claimed without one, compared "
                          "with nothing)"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text()),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("event_id", sa.Uuid()),
        sa.Column("event_type", sa.String(100)),
        sa.Column("code", sa.String(64), nullable=False,
                  comment="Machine code of the refusal: wrong_topic, unknown_account..."),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retried_at", UtcDateTime()),
    )


def drop_plumbing(op: Any) -> None:
    for table in ("dead_letters", "inbox", "outbox"):
        op.drop_table(table)


def index_inbox_by_age(op: Any) -> None:
    """The inbox's retention deletes by ``processed_at``. ``if_not_exists``: a database whose
    tables were made at start by a version with this index already has it."""
    op.create_index("inbox_by_age", "inbox", ["processed_at"], if_not_exists=True)


def drop_inbox_by_age(op: Any) -> None:
    op.drop_index("inbox_by_age", table_name="inbox")


def create_revoked_tokens(op: Any) -> None:
    """Identity's revocation list, kept by every service (:mod:`billing_events.revocations`)."""
    op.create_table(
        "revoked_tokens",
        sa.Column("kind", sa.String(length=16), nullable=False,
                  comment="token (a jti) or operator (every token of that operator)"),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("revoked_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value"),
    )


def drop_revoked_tokens(op: Any) -> None:
    op.drop_table("revoked_tokens")
