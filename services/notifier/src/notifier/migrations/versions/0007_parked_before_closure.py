"""A parked event remembers whether it arrived before the account's closure: it happened while
the account was open and is still told once the profile arrives.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("parked_events") as batch:
        batch.add_column(sa.Column(
            "before_closure", sa.Boolean(), nullable=False, server_default=sa.false(),
            comment="Parked before the closure arrived: decided as for an open account"))


def downgrade() -> None:
    with op.batch_alter_table("parked_events") as batch:
        batch.drop_column("before_closure")
