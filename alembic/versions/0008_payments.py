"""Payments: the Stripe webhook events processed, each once (market.payments.models).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("id", _string(255), nullable=False),
        sa.Column("type", _string(100), nullable=False),
        sa.Column("intent_id", _string(255), nullable=True),
        sa.Column("received_at", ledger._time.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", _string(40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stripe_events_intent_id", "stripe_events", ["intent_id"])


def downgrade() -> None:
    op.drop_index("ix_stripe_events_intent_id", table_name="stripe_events")
    op.drop_table("stripe_events")
