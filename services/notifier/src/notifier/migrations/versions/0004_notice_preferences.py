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
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("contact_version", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("sealed_contact", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sealed_contact")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("contact_version")
    op.drop_table("notice_preferences")
