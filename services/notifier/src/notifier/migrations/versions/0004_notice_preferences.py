"""The notices each subscriber turned off (NoticePreferencesChanged): none for everyone so far;
the ContactChanged each subscriber's contact was last replaced by (0: as registered); and the
contact a notice goes to when it is not the profile's (a change told to the contact replaced).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from billing_events.schema import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_preferences",
        sa.Column("account_number", sa.String(length=12), nullable=False),
        sa.Column("turned_off", sa.JSON(), nullable=False),
        sa.Column("preferences_version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_number"),
    )
    # Plain ADD COLUMN (SQLite has it): a batch would copy and drop deliveries, which the rows of
    # another table refer to.
    op.add_column("subscribers", sa.Column("contact_version", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("deliveries", sa.Column("sealed_contact", sa.Text()))


def downgrade() -> None:
    for table, column in (("deliveries", "sealed_contact"), ("subscribers", "contact_version")):
        _drop_column(table, column)
    op.drop_table("notice_preferences")


def _drop_column(table: str, column: str) -> None:
    """SQLite's own DROP COLUMN (3.35+): Alembic's batch would copy and drop the table, which the
    rows of another table refer to."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)
