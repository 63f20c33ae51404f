"""Oversight: the overview's day totals and monthly rollups of the trade statistics and
parties, so a period reads its whole months from a few rows (filled from the day rows)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('trade_days',
    sa.Column('day', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('refunded_value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'currency')
    )
    op.create_table('trade_parties_monthly',
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.PrimaryKeyConstraint('month', 'currency', 'role', 'account_id')
    )
    op.create_table('trade_stats_monthly',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
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
    sa.UniqueConstraint('month', 'currency', 'category', 'grade', 'provider_id', 'region', name='uq_trade_stats_monthly_key')
    )
    with op.batch_alter_table('trade_stats_monthly', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trade_stats_monthly_month'), ['month'], unique=False)



    # What was counted before this revision, rolled up.
    op.execute("INSERT INTO trade_days (day, currency, orders, value, refunds, refunded_value) "
               "SELECT day, currency, SUM(orders), SUM(value), SUM(refunds), SUM(refunded_value) "
               "FROM trade_stats GROUP BY day, currency")
    op.execute("INSERT INTO trade_stats_monthly (month, currency, category, grade, provider_id, region, orders, value, "
               "refunds, refunded_value) SELECT SUBSTR(day, 1, 7), currency, category, grade, provider_id, region, "
               "SUM(orders), SUM(value), SUM(refunds), SUM(refunded_value) FROM trade_stats "
               "GROUP BY SUBSTR(day, 1, 7), currency, category, grade, provider_id, region")
    op.execute("INSERT INTO trade_parties_monthly (month, currency, role, account_id) "
               "SELECT DISTINCT SUBSTR(day, 1, 7), currency, role, account_id FROM trade_parties")


def downgrade() -> None:
    with op.batch_alter_table('trade_stats_monthly', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trade_stats_monthly_month'))

    op.drop_table('trade_stats_monthly')
    op.drop_table('trade_parties_monthly')
    op.drop_table('trade_days')
