"""Trading (交易): orders, the documents behind confidential trade entries, deliveries,
disputes, payouts, and refused attempts kept for the regulator

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('trade_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('document_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_sha256')
    )
    with op.batch_alter_table('trade_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trade_documents_subject'), ['subject'], unique=False)

    op.create_table('payouts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['recorded_by'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_provider_id'), ['provider_id'], unique=False)

    op.create_table('refusals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('listing_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('asset_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('refusals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refusals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refusals_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_refusals_kind'), ['kind'], unique=False)

    op.create_table('orders',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('listing_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('asset_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('buyer_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('terms_version', sa.Integer(), nullable=False),
    sa.Column('terms_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('plan_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('plan', sa.Text(), nullable=False),
    sa.Column('licence', sa.Text(), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('payment_method', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('provider_share', sa.BigInteger(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('needs_holder_approval', sa.Boolean(), nullable=False),
    sa.Column('needs_regulator_approval', sa.Boolean(), nullable=False),
    sa.Column('holder_decision', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('regulator_decision', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('order_document', sa.Text(), nullable=True),
    sa.Column('buyer_key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('buyer_signature', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('payment_attempt', sa.Integer(), nullable=False),
    sa.Column('intent_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('client_secret', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('payment_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('failure_code', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('asset_revision', sa.Integer(), nullable=True),
    sa.Column('contract', sa.Text(), nullable=True),
    sa.Column('contract_leaf', sa.LargeBinary(), nullable=True),
    sa.Column('settled_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refunded_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.Column('refund_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], ),
    sa.ForeignKeyConstraint(['buyer_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ),
    sa.ForeignKeyConstraint(['provider_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('intent_id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_buyer_created', ['buyer_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_listing_id'), ['listing_id'], unique=False)
        batch_op.create_index('ix_orders_provider_created', ['provider_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_settled_at'), ['settled_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_status'), ['status'], unique=False)
        batch_op.create_index('ix_orders_status_expires', ['status', 'expires_at'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('first_byte', sa.BigInteger(), nullable=False),
    sa.Column('last_byte', sa.BigInteger(), nullable=False),
    sa.Column('bytes_sent', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_order_id'), ['order_id'], unique=False)

    op.create_table('disputes',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('buyer_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('resolution_reason', sa.Text(), nullable=True),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['buyer_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_disputes_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_status'))
        batch_op.drop_index(batch_op.f('ix_disputes_order_id'))

    op.drop_table('disputes')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_order_id'))

    op.drop_table('deliveries')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_expires')
        batch_op.drop_index(batch_op.f('ix_orders_status'))
        batch_op.drop_index(batch_op.f('ix_orders_settled_at'))
        batch_op.drop_index('ix_orders_provider_created')
        batch_op.drop_index(batch_op.f('ix_orders_listing_id'))
        batch_op.drop_index('ix_orders_buyer_created')

    op.drop_table('orders')
    with op.batch_alter_table('refusals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refusals_kind'))
        batch_op.drop_index(batch_op.f('ix_refusals_created_at'))
        batch_op.drop_index(batch_op.f('ix_refusals_account_id'))

    op.drop_table('refusals')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_provider_id'))

    op.drop_table('payouts')
    with op.batch_alter_table('trade_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trade_documents_subject'))

    op.drop_table('trade_documents')
