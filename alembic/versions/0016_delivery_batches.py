"""Delivery receipts in batches: one confidential ``delivery.sent`` entry per order per
period, holding the Merkle root of that period's receipts (kept in ``deliveries``)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delivery_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('opened_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.Column('receipts', sa.Integer(), nullable=False),
    sa.Column('bytes_sent', sa.BigInteger(), nullable=False),
    sa.Column('merkle_root', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('document', sa.Text(), nullable=True),
    sa.Column('leaf', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_batches_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_delivery_batches_open', ['closed_at', 'opened_at'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('receipt', sa.Text(), nullable=True))
        batch_op.create_foreign_key('fk_deliveries_batch_id', 'delivery_batches', ['batch_id'], ['id'])
        batch_op.create_index('ix_deliveries_batch_position', ['batch_id', 'position'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_batch_position')
        batch_op.drop_constraint('fk_deliveries_batch_id', type_='foreignkey')
        batch_op.drop_column('receipt')
        batch_op.drop_column('position')
        batch_op.drop_column('batch_id')
    with op.batch_alter_table('delivery_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_batches_open')
        batch_op.drop_index(batch_op.f('ix_delivery_batches_order_id'))
    op.drop_table('delivery_batches')
