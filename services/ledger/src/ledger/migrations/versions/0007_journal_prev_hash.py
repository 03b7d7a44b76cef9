"""Each journal row keeps its predecessor's hash beside its own (``prev_hash``), so a stretch of
the chain can be checked on its own: the verifier splits the journal into ranges checked in
parallel, each from the hash its first row says it follows, and then checks that the ranges join.

Existing rows take the hash of the row before them in ``seq`` order (the first, the genesis
hash): what the ledger wrote them after.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GENESIS_HASH = bytes(32)
FILL = sa.text(
    "UPDATE journal SET prev_hash = COALESCE("
    "(SELECT earlier.hash FROM journal AS earlier WHERE earlier.seq < journal.seq ORDER BY earlier.seq DESC LIMIT 1),"
    " :genesis)"
).bindparams(sa.bindparam("genesis", GENESIS_HASH, type_=sa.LargeBinary()))


def upgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.add_column(sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=True,
                                   comment="The hash of the row before (the genesis hash for the first)"))
    op.execute(FILL)
    with op.batch_alter_table("journal") as batch:
        batch.alter_column("prev_hash", existing_type=sa.LargeBinary(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("prev_hash")
