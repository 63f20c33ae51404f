"""Orders by buyer and time of placement (the order_burst rule reads a window of them)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_buyer_created_at", "orders", ["buyer_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_buyer_created_at", table_name="orders")
