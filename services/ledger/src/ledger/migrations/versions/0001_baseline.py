"""Baseline: the ledger schema as the service made it at start before migrations began.

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


def currency_is_a_code(table: str) -> sa.CheckConstraint:
    """Three capital letters: PostgreSQL says it with a regular expression, SQLite with GLOB."""
    name = f"{table}_currency_code"
    if op.get_context().dialect.name == "postgresql":
        return sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=name)
    return sa.CheckConstraint("length(currency) = 3 AND currency NOT GLOB '*[^A-Z]*'", name=name)


# A journal transaction whose postings do not sum to zero cannot be committed, whatever wrote it:
# checked at COMMIT (deferred), so the rows of one transaction may arrive in any order.
BALANCED_AT_COMMIT = """
CREATE FUNCTION journal_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.txn_id ELSE NEW.txn_id END;
    total numeric;
BEGIN
    SELECT sum(amount) INTO total FROM postings WHERE txn_id = txn;
    IF total IS NOT NULL AND total <> 0 THEN
        RAISE EXCEPTION 'journal transaction % postings do not sum to zero (%)', txn, total
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.txn_id <> NEW.txn_id THEN
        SELECT sum(amount) INTO total FROM postings WHERE txn_id = OLD.txn_id;
        IF total IS NOT NULL AND total <> 0 THEN
            RAISE EXCEPTION 'journal transaction % postings do not sum to zero (%)', OLD.txn_id, total
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NULL;
END $$""", """
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT OR UPDATE OR DELETE ON postings
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_transaction_balanced()"""


def upgrade() -> None:
    create_plumbing(op)
    op.create_table('accounts',
    sa.Column('number', sa.String(length=12), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('main', sa.BigInteger(), nullable=False),
    sa.Column('bonus', sa.BigInteger(), nullable=False),
    sa.Column('payment_type', sa.String(length=16), nullable=False),
    sa.Column('credit_limit', sa.BigInteger(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('opened_at', UtcDateTime(), nullable=False),
    currency_is_a_code('accounts'),
    sa.CheckConstraint("payment_type IN ('prepaid', 'credit')", name='accounts_payment_type_known'),
    sa.CheckConstraint('credit_limit >= 0', name='accounts_credit_limit_not_negative'),
    sa.PrimaryKeyConstraint('number')
    )
    op.create_table('chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('idempotency_keys',
    sa.Column('family', sa.String(length=24), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=300), nullable=False),
    sa.Column('fate', sa.String(length=16), nullable=False),
    sa.Column('refusal', sa.String(length=40)),
    sa.Column('transaction_ids', sa.Text(), nullable=False),
    sa.Column('cause_event_id', sa.Uuid()),
    sa.Column('answer', sa.Text()),
    sa.Column('recorded_at', UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('family', 'key')
    )
    op.create_table('journal',
    sa.Column('seq', BigId, autoincrement=True, nullable=False),
    sa.Column('txn_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('business_key', sa.String(length=200), nullable=False),
    sa.Column('cause_event_id', sa.Uuid()),
    sa.Column('cause_type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', UtcDateTime(), nullable=False),
    sa.Column('recorded_at', UtcDateTime(), nullable=False),
    sa.Column('reverses', sa.Uuid()),
    sa.Column('operator', sa.String(length=100)),
    sa.Column('operator_reason', sa.Text()),
    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('account_settings', sa.Text(), comment="An account fact's settings (canonical JSON); null on money"),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('reverses'),
    sa.UniqueConstraint('txn_id')
    )
    op.create_table('operator_balances',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('code', 'currency')
    )
    op.create_table('suspense',
    sa.Column('transaction_id', sa.Uuid(), nullable=False),
    sa.Column('typed_account', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('received_at', UtcDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('settled_by', sa.Uuid()),
    currency_is_a_code('suspense'),
    sa.CheckConstraint('amount > 0', name='suspense_amount_positive'),
    sa.PrimaryKeyConstraint('transaction_id')
    )
    op.create_index('suspense_by_status', 'suspense', ['status'])
    op.create_table('postings',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('txn_id', sa.Uuid(), nullable=False),
    sa.Column('account', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    currency_is_a_code('postings'),
    sa.CheckConstraint('amount <> 0', name='postings_amount_not_zero'),
    sa.ForeignKeyConstraint(['txn_id'], ['journal.txn_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('postings_by_account', 'postings', ['account', 'id'])
    op.create_index('postings_by_txn', 'postings', ['txn_id'])
    if op.get_context().dialect.name == "postgresql":
        for statement in BALANCED_AT_COMMIT:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER postings_balanced ON postings")
        op.execute("DROP FUNCTION journal_transaction_balanced()")
    op.drop_index('postings_by_txn', table_name='postings')
    op.drop_index('postings_by_account', table_name='postings')
    op.drop_table('postings')
    op.drop_index('suspense_by_status', table_name='suspense')
    op.drop_table('suspense')
    op.drop_table('operator_balances')
    op.drop_table('journal')
    op.drop_table('idempotency_keys')
    op.drop_table('chain_head')
    op.drop_table('accounts')
    drop_plumbing(op)

