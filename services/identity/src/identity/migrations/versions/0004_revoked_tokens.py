"""Identity's revocation list of service and operator tokens (TokenRevoked), checked on every
request made with such a token.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
from billing_events.migrations import create_revoked_tokens, drop_revoked_tokens

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_revoked_tokens(op)


def downgrade() -> None:
    drop_revoked_tokens(op)
