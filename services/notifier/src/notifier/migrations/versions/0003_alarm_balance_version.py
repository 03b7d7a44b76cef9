"""The low-balance alarm keeps the account_version of the BalanceChanged it last observed, so an
older one delivered again (a rewind, a refill after the inbox forgot it) decides nothing.

Existing alarms hold none (NULL): the next BalanceChanged is observed as before and sets it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("low_balance_alarms") as batch:
        batch.add_column(sa.Column(
            "balance_version", sa.BigInteger(),
            comment="account_version of the BalanceChanged last observed; NULL: none, or from before versions"))


def downgrade() -> None:
    with op.batch_alter_table("low_balance_alarms") as batch:
        batch.drop_column("balance_version")
