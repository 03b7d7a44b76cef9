"""A subscriber's account closed by the ledger (AccountClosed): it logs in no more and a phone or
passport holding it no longer offers it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from billing_events.schema import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("closed_at", UtcDateTime(), comment="When the ledger closed the account; NULL: open"))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("closed_at")
