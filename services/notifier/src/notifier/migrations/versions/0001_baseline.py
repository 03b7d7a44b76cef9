"""Baseline: the notifier schema as the service made it at start before migrations began.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from billing_events.migrations import create_plumbing, drop_plumbing
from billing_events.schema import BigId, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing(op)
    op.create_table('deliveries',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('about_event_id', sa.Uuid(), nullable=False),
    sa.Column('about_event_type', sa.String(length=64), nullable=False),
    sa.Column('correlation_id', sa.Uuid(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('masked_destination', sa.String(length=64), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('sealed_secret', sa.Text()),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UtcDateTime(), nullable=False),
    sa.Column('last_error', sa.String(length=500)),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('about_event_id', 'template', 'channel', name='deliveries_once_per_event')
    )
    op.create_index('deliveries_by_account', 'deliveries', ['account_number', 'id'])
    op.create_index('deliveries_due', 'deliveries', ['status', 'next_attempt_at'])
    op.create_table('low_balance_alarms',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('armed', sa.Boolean(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_table('parked_events',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('account_number', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.Column('parked_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index(op.f('ix_parked_events_account_number'), 'parked_events', ['account_number'])
    op.create_table('subscribers',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('notify_by', sa.String(length=8), nullable=False),
    sa.Column('masked_phone', sa.String(length=64), nullable=False),
    sa.Column('masked_email', sa.String(length=64)),
    sa.Column('sealed_contact', sa.Text(), nullable=False),
    sa.Column('registered_event_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', UtcDateTime(), nullable=False),
    sa.Column('updated_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_table('delivery_attempts',
    sa.Column('delivery_id', BigId, nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', UtcDateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=500)),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.PrimaryKeyConstraint('delivery_id', 'attempt')
    )


def downgrade() -> None:
    op.drop_table('delivery_attempts')
    op.drop_table('subscribers')
    op.drop_index(op.f('ix_parked_events_account_number'), table_name='parked_events')
    op.drop_table('parked_events')
    op.drop_table('low_balance_alarms')
    op.drop_index('deliveries_due', table_name='deliveries')
    op.drop_index('deliveries_by_account', table_name='deliveries')
    op.drop_table('deliveries')
    drop_plumbing(op)

