"""Change counters: ``change_epochs`` holds, per memo topic, how many committed
transactions changed it; on PostgreSQL a request reads the credentials counter before
trusting its process's memory of tokens, so a revocation acts on the very next
request in every process (the NOTIFY alone could arrive after it)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "change_epochs",
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("topic"),
    )
    op.bulk_insert(table, [{"topic": "credentials", "epoch": 0}])


def downgrade() -> None:
    op.drop_table("change_epochs")
