"""Baseline: the identity schema as the service made it at start before migrations began.

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
    if op.get_context().dialect.name == "postgresql":  # SQLite counts in account_number_counter
        op.execute(sa.schema.CreateSequence(sa.Sequence("identity_account_number_seq", start=1)))
    op.create_table('account_number_counter',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('at', UtcDateTime(), nullable=False),
    sa.Column('act', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('account_number', sa.String(length=12)),
    sa.Column('source', sa.String(length=100)),
    sa.Column('detail', sa.String(length=200)),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('audit_account', 'audit', ['account_number', 'id'])
    op.create_table('pending_passwords',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('issued_at', UtcDateTime(), nullable=False),
    sa.Column('expires_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_table('reset_codes',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('code_hash', sa.Text(), nullable=False),
    sa.Column('issued_at', UtcDateTime(), nullable=False),
    sa.Column('expires_at', UtcDateTime(), nullable=False),
    sa.Column('max_wrong_guesses', sa.Integer(), nullable=False),
    sa.Column('wrong_guesses', sa.Integer(), nullable=False),
    sa.Column('used_at', UtcDateTime()),
    sa.PrimaryKeyConstraint('account_number')
    )
    op.create_table('subscribers',
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('contract_number', sa.String(length=32), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('legal_status', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('passport_hash', sa.String(length=64), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('email_hash', sa.String(length=64)),
    sa.Column('recovery_proof_hash', sa.String(length=64), nullable=False),
    sa.Column('passport_encrypted', sa.Text(), nullable=False),
    sa.Column('personal_encrypted', sa.Text(), nullable=False),
    sa.Column('contact_encrypted', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('password_set_at', UtcDateTime(), nullable=False),
    sa.Column('registered_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_number'),
    sa.UniqueConstraint('contract_number'),
    sa.UniqueConstraint('passport_hash'),
    sa.UniqueConstraint('sequence')
    )
    op.create_index(op.f('ix_subscribers_email_hash'), 'subscribers', ['email_hash'])
    op.create_index(op.f('ix_subscribers_phone_hash'), 'subscribers', ['phone_hash'])
    op.create_table('support_recoveries',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('account_number', sa.String(length=12), nullable=False),
    sa.Column('operator', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('support_recoveries_account', 'support_recoveries', ['account_number', 'id'])
    op.create_table('throttles',
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=False),
    sa.Column('counted', sa.Text(), nullable=False),
    sa.Column('locked_until', UtcDateTime()),
    sa.PrimaryKeyConstraint('scope', 'subject')
    )


def downgrade() -> None:
    op.drop_table('throttles')
    op.drop_index('support_recoveries_account', table_name='support_recoveries')
    op.drop_table('support_recoveries')
    op.drop_index(op.f('ix_subscribers_phone_hash'), table_name='subscribers')
    op.drop_index(op.f('ix_subscribers_email_hash'), table_name='subscribers')
    op.drop_table('subscribers')
    op.drop_table('reset_codes')
    op.drop_table('pending_passwords')
    op.drop_index('audit_account', table_name='audit')
    op.drop_table('audit')
    op.drop_table('account_number_counter')
    drop_plumbing(op)
    if op.get_context().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("identity_account_number_seq")))

