"""Card payments from the cabinet: the intents the cabinet opens and the acquirer's callback
settles (paid, with the acquirer's reference, or declined).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from billing_events.schema import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        currency = sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="card_intents_currency_code")
    else:
        currency = sa.CheckConstraint("length(currency) = 3 AND currency NOT GLOB '*[^A-Z]*'",
                                      name="card_intents_currency_code")
    op.create_table(
        "card_intents",
        sa.Column("intent_id", sa.Uuid(), nullable=False),
        sa.Column("account", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("acquirer_reference", sa.String(length=64),
                  comment="The acquirer's reference of the approved payment"),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("amount > 0", name="card_intents_amount_positive"),
        sa.CheckConstraint("status IN ('open', 'paid', 'declined')", name="card_intents_status_known"),
        currency,
        sa.PrimaryKeyConstraint("intent_id"),
    )
    op.create_index("card_intents_by_account", "card_intents", ["account", "created_at"])


def downgrade() -> None:
    op.drop_index("card_intents_by_account", table_name="card_intents")
    op.drop_table("card_intents")
