"""Accounts: the declared controlling entity (``controller_uscc``, docs/API.md sign-up), for
the related-party (self-dealing) checks

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("controller_uscc", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True))
    op.create_index("ix_accounts_controller_uscc", "accounts", ["controller_uscc"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_accounts_controller_uscc", table_name="accounts")
    op.execute("ALTER TABLE accounts DROP COLUMN controller_uscc")
