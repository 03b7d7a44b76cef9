"""Accounts pages keep a fifth free, so a balance update stays on its page (a HOT update: no new
index entry). Every movement updates an account; among a million accounts, full pages made each
update a new row version on another page with a new primary-key entry.

Pages written before this keep their rows until rewritten (VACUUM FULL, or as rows move); new
accounts and rows moved by updates get the room.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts RESET (fillfactor)")
