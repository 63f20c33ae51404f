"""ledger_leaves.idx as SQLite's rowid; prompt autovacuum of ledger_pending on PostgreSQL

On SQLite an INTEGER PRIMARY KEY is the rowid itself, which saves an index on every
leaf. On PostgreSQL, ledger_pending sees every entry inserted and deleted within about
a second; autovacuum by a fixed row count (not a fraction of the table) lets the
space be reused instead of growing with the log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        with op.batch_alter_table("ledger_leaves", recreate="always") as batch_op:
            batch_op.alter_column("idx", type_=sa.Integer(), existing_type=sa.BigInteger(), autoincrement=False)
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE ledger_pending SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0, "
            "autovacuum_vacuum_insert_threshold = 10000)"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        with op.batch_alter_table("ledger_leaves", recreate="always") as batch_op:
            batch_op.alter_column("idx", type_=sa.BigInteger(), existing_type=sa.Integer(), autoincrement=False)
    elif dialect == "postgresql":
        op.execute(
            "ALTER TABLE ledger_pending RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
            "autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold)"
        )
