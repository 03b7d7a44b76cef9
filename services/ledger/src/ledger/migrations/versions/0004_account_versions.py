"""Each account counts its changes (``version``), the ``account_version`` its BalanceChanged and
PaymentTypeChanged carry, so the services keeping a view of it apply only what is newer.

Existing accounts start at 0: the count needs only to grow from here on (the events published
before carry no version, and a view that has applied a versioned event ignores them).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column(
            "version", sa.BigInteger(), nullable=False, server_default="0",
            comment="Changes of the account since it was opened (or since migration 0004): the account_version"
                    " of the events announcing them"))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("version")
