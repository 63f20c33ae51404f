"""Oversight (监管): trade statistics kept at settlement, alerts and the orders they name,
the regulator's actions, and the alert evaluator's position

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subject_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('window', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subjects', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('opened_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule', 'subject_key', 'window', name='uq_alerts_once')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_rule'), ['rule'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_status'), ['status'], unique=False)

    op.create_table('evaluator_marks',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )
    op.create_table('trade_parties',
    sa.Column('day', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('day', 'currency', 'role', 'account_id')
    )
    op.create_table('trade_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('grade', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('refunded_value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('day', 'currency', 'category', 'grade', 'provider_id', 'region', name='uq_trade_stats_key')
    )
    with op.batch_alter_table('trade_stats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trade_stats_day'), ['day'], unique=False)

    op.create_table('oversight_actions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entry_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('oversight_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oversight_actions_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_oversight_actions_target', ['target'], unique=False)

    op.create_table('alerted_orders',
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], ),
    sa.PrimaryKeyConstraint('alert_id', 'order_id')
    )
    with op.batch_alter_table('alerted_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerted_orders_order_id'), ['order_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('alerted_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerted_orders_order_id'))

    op.drop_table('alerted_orders')
    with op.batch_alter_table('oversight_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_oversight_actions_target')
        batch_op.drop_index(batch_op.f('ix_oversight_actions_created_at'))

    op.drop_table('oversight_actions')
    with op.batch_alter_table('trade_stats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trade_stats_day'))

    op.drop_table('trade_stats')
    op.drop_table('trade_parties')
    op.drop_table('evaluator_marks')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_status'))
        batch_op.drop_index(batch_op.f('ix_alerts_rule'))
        batch_op.drop_index(batch_op.f('ix_alerts_opened_at'))

    op.drop_table('alerts')
