"""The subscriber's cabinet: sign-in sessions and their refresh tokens, notice preferences, a
new contact waiting for its code, and a passport that may hold several contracts (its index no
longer unique).

Revision ID: 0003
Revises: 0002

Going down fails while a passport holds several accounts (the unique constraint comes back).
"""

import sqlalchemy as sa
from alembic import op
from billing_events.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite names no constraint: the batch copy names the reflected one by this convention.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_passport_name() -> str:
    return "subscribers_passport_hash_key" if op.get_bind().dialect.name == "postgresql" else "uq_subscribers_passport_hash"


def upgrade() -> None:
    with op.batch_alter_table("subscribers", naming_convention=_NAMING) as batch:
        batch.drop_constraint(_unique_passport_name(), type_="unique")
        batch.create_index("ix_subscribers_passport_hash", ["passport_hash"])
        batch.add_column(sa.Column("notices_off", sa.Text()))
        batch.add_column(sa.Column("preferences_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("contact_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_number", sa.String(length=12), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime()),
        sa.Column("revoked_why", sa.String(length=32)),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sessions_account_number", "sessions", ["account_number"])
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_table(
        "contact_changes",
        sa.Column("account_number", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("contact_encrypted", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.Text(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("max_wrong_guesses", sa.Integer(), nullable=False),
        sa.Column("wrong_guesses", sa.Integer(), nullable=False),
        sa.Column("used_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("account_number"),
    )


def downgrade() -> None:
    op.drop_table("contact_changes")
    op.drop_index("ix_refresh_tokens_session_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_sessions_account_number", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("subscribers", naming_convention=_NAMING) as batch:
        batch.drop_column("contact_version")
        batch.drop_column("preferences_version")
        batch.drop_column("notices_off")
        batch.drop_index("ix_subscribers_passport_hash")
        batch.create_unique_constraint(_unique_passport_name(), ["passport_hash"])
