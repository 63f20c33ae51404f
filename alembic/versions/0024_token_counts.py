"""Live API tokens counted per account (the cap is checked on one row)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_counts",
        sa.Column("account_id", sa.String(length=40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("live", sa.Integer(), nullable=False),
    )
    op.execute("INSERT INTO token_counts (account_id, live) "
               "SELECT accounts.id, (SELECT count(*) FROM api_tokens WHERE api_tokens.account_id = accounts.id "
               "AND api_tokens.revoked_at IS NULL) FROM accounts")


def downgrade() -> None:
    op.drop_table("token_counts")
