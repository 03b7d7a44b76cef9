"""The accounts closed (by the tariff's SubscriptionClosed or the ledger's AccountClosed): nothing
more is told about them.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from billing_events.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "closed_accounts",
        sa.Column("account_number", sa.String(12), primary_key=True),
        sa.Column("closed_by", sa.String(64), nullable=False,
                  comment="The event that told the notifier first: SubscriptionClosed or AccountClosed"),
        sa.Column("closed_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("closed_accounts")
