"""Regulators: enrollments signed by the regulator authority, regulators' signed acts,
and revocable dashboard sessions

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dashboard_sessions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('id_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('csrf', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', ledger._time.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('id_sha256')
    )
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dashboard_sessions_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dashboard_sessions_expires_at'), ['expires_at'], unique=False)

    op.create_table('regulator_acts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('document_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('document_sha256')
    )
    with op.batch_alter_table('regulator_acts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regulator_acts_account_id'), ['account_id'], unique=False)

    op.create_table('regulator_enrollments',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('authority', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('enrollment', sa.Text(), nullable=False),
    sa.Column('enrollment_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', ledger._time.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['key_id'], ['account_keys.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('enrollment_sha256'),
    sa.UniqueConstraint('key_id')
    )
    with op.batch_alter_table('regulator_enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regulator_enrollments_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('regulator_enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regulator_enrollments_account_id'))

    op.drop_table('regulator_enrollments')
    with op.batch_alter_table('regulator_acts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regulator_acts_account_id'))

    op.drop_table('regulator_acts')
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dashboard_sessions_expires_at'))
        batch_op.drop_index(batch_op.f('ix_dashboard_sessions_account_id'))

    op.drop_table('dashboard_sessions')
