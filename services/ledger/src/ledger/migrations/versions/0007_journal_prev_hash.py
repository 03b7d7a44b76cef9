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
    """Added in place, not through a copy of the table (SQLite's way of altering a column): the
    postings' foreign key forbids dropping a journal that has rows. The column comes with the
    genesis hash as its default so that it can be NOT NULL at once; PostgreSQL drops the default
    after the fill, SQLite cannot without that copy (the store writes the column on every row)."""
    postgresql = op.get_context().dialect.name == "postgresql"
    genesis = f"'\\x{GENESIS_HASH.hex()}'::bytea" if postgresql else f"x'{GENESIS_HASH.hex()}'"
    op.add_column("journal", sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False,
                                       server_default=sa.text(genesis),
                                       comment="The hash of the row before (the genesis hash for the first)"))
    op.execute(FILL)
    if postgresql:
        op.alter_column("journal", "prev_hash", server_default=None)


def downgrade() -> None:
    op.drop_column("journal", "prev_hash")
