"""ledger_pending slimmer: no index on subject, no created_at (rows live about a second;
the entry holds its time)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa

import ledger._time
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_pending", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_pending_subject"))
        batch_op.drop_column("created_at")


def downgrade() -> None:
    with op.batch_alter_table("ledger_pending", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_at", ledger._time.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_ledger_pending_subject"), ["subject"], unique=False)
