"""The alert evaluator's gaps: ids it read past before their transactions committed

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("evaluator_marks", sa.Column("gaps", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("evaluator_marks", "gaps")
