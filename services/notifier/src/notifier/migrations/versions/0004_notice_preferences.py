"""The notices each subscriber turned off (NoticePreferencesChanged): none for everyone so far.

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


def downgrade() -> None:
    op.drop_table("notice_preferences")
