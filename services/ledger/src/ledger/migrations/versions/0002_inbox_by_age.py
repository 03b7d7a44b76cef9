"""The inbox's claims indexed by age: the retention (BILLING_INBOX_RETENTION_DAYS) deletes the oldest.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from billing_events.migrations import drop_inbox_by_age, index_inbox_by_age

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index_inbox_by_age(op)


def downgrade() -> None:
    drop_inbox_by_age(op)
