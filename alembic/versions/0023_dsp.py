"""The Dataspace Protocol: negotiations, transfers and the callbacks owed to consumers

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from ledger._time import UTCDateTime

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _times() -> list[sa.Column]:
    return [sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
            sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "dsp_negotiations",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("consumer_pid", _S(length=500), nullable=False),
        sa.Column("account_id", _S(length=40), nullable=False),
        sa.Column("listing_id", _S(length=40), nullable=False),
        sa.Column("plan_id", _S(length=40), nullable=False),
        sa.Column("purpose", _S(length=60), nullable=False),
        sa.Column("order_id", _S(length=40), nullable=True),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("callback_address", _S(length=2000), nullable=False),
        sa.Column("code", _S(length=100), nullable=True),
        sa.Column("reason", _S(length=500), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "consumer_pid", name="uq_dsp_negotiations_consumer"),
    )
    op.create_index("ix_dsp_negotiations_account_id", "dsp_negotiations", ["account_id"])
    op.create_index("ix_dsp_negotiations_order_id", "dsp_negotiations", ["order_id"])
    op.create_table(
        "dsp_transfers",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("consumer_pid", _S(length=500), nullable=False),
        sa.Column("account_id", _S(length=40), nullable=False),
        sa.Column("negotiation_id", _S(length=40), nullable=False),
        sa.Column("order_id", _S(length=40), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("suspended_by", _S(length=20), nullable=True),
        sa.Column("token_sha256", _S(length=64), nullable=True),
        sa.Column("callback_address", _S(length=2000), nullable=False),
        sa.Column("code", _S(length=100), nullable=True),
        sa.Column("reason", _S(length=500), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "consumer_pid", name="uq_dsp_transfers_consumer"),
    )
    op.create_index("ix_dsp_transfers_account_id", "dsp_transfers", ["account_id"])
    op.create_index("ix_dsp_transfers_token_sha256", "dsp_transfers", ["token_sha256"])
    op.create_index("ix_dsp_transfers_order", "dsp_transfers", ["order_id", "status"])
    op.create_table(
        "dsp_callbacks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("process_id", _S(length=40), nullable=False),
        sa.Column("url", _S(length=2100), nullable=False),
        sa.Column("message_type", _S(length=60), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", _S(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dsp_callbacks_process_id", "dsp_callbacks", ["process_id"])
    op.create_index("ix_dsp_callbacks_due", "dsp_callbacks", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("dsp_callbacks")
    op.drop_table("dsp_transfers")
    op.drop_table("dsp_negotiations")
