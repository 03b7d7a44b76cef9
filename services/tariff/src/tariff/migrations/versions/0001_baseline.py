"""Baseline: the tariff schema as the service made it at start before migrations began.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from billing_events.migrations import create_plumbing, drop_plumbing
from billing_events.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing(op)
    op.create_table('catalog_versions',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=500), nullable=False),
    sa.Column('loaded_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('closed_days',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('charges', sa.Integer(), nullable=False, comment='ChargeApplied events published for it'),
    sa.Column('charged_minor', sa.BigInteger(), nullable=False, comment='Their sum, in minor units'),
    sa.Column('closed_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number', 'day')
    )
    op.create_table('early_balances',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('balance', sa.JSON(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_table('subscriptions',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('plan', sa.String(length=40), comment='The planned plan (after scheduled changes)'),
    sa.Column('debt_blocked', sa.Boolean(), nullable=False),
    sa.Column('next_close_day', sa.Date(), comment='First billing day not closed yet; NULL: no plan'),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_index(op.f('ix_subscriptions_plan'), 'subscriptions', ['plan'])
    op.create_index(op.f('ix_subscriptions_region'), 'subscriptions', ['region'])
    op.create_index('subscriptions_due', 'subscriptions', ['next_close_day', 'account_number'])


def downgrade() -> None:
    op.drop_index('subscriptions_due', table_name='subscriptions')
    op.drop_index(op.f('ix_subscriptions_region'), table_name='subscriptions')
    op.drop_index(op.f('ix_subscriptions_plan'), table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_table('early_balances')
    op.drop_table('closed_days')
    op.drop_table('catalog_versions')
    drop_plumbing(op)

