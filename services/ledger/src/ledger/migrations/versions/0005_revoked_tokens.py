"""Identity's revocation list of service and operator tokens (TokenRevoked), checked on every
request made with such a token.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
from billing_events.migrations import create_revoked_tokens, drop_revoked_tokens

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_revoked_tokens(op)


def downgrade() -> None:
    drop_revoked_tokens(op)
