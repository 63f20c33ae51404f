"""Trading: money that goes back for what was not settled (``payment_returns``), and the
PaymentIntent an ended order still has to cancel at the gateway (``orders.intent_to_cancel``)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payment_returns',
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('paid_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('cause', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('refund_reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('refunded_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('order_id', 'paid_reference', name='uq_payment_returns_payment')
    )
    with op.batch_alter_table('payment_returns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_returns_order_id'), ['order_id'], unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intent_to_cancel', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_intent_to_cancel'), ['intent_to_cancel'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_intent_to_cancel'))
        batch_op.drop_column('intent_to_cancel')
    with op.batch_alter_table('payment_returns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_returns_order_id'))
    op.drop_table('payment_returns')
