"""Each account counts its changes (``version``), the ``account_version`` its BalanceChanged and
PaymentTypeChanged carry, so the services keeping a view of it apply only what is newer.

Existing accounts start at the journal's length: every change of an account is a journal entry,
so no version the account announced (before a downgrade dropped the count, say) is larger, and
the views of it take what it announces next. Events published before versions carry none.

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
    op.execute("UPDATE accounts SET version = COALESCE((SELECT length FROM chain_head WHERE id = 1), 0)")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("version")
