"""Usage-controlled delivery: table descriptions, sandbox queries, metered periods and calls

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from ledger._time import UTCDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "asset_tables",
        sa.Column("asset_id", _S(length=40), sa.ForeignKey("assets.id"), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("format", _S(length=10), nullable=False),
        sa.Column("columns", sa.Text(), nullable=False),
        sa.Column("min_group", sa.Integer(), nullable=False),
        sa.Column("epsilon_budget", sa.Float(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("sha256", _S(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id"),
    )
    op.create_table(
        "sandbox_queries",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("order_id", _S(length=40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("buyer_id", _S(length=40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("query_sha256", _S(length=64), nullable=False),
        sa.Column("rule_version", _S(length=40), nullable=False),
        sa.Column("table_sha256", _S(length=64), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("columns", sa.Text(), nullable=True),
        sa.Column("rows", sa.Text(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("suppressed_groups", sa.Integer(), nullable=False),
        sa.Column("result_sha256", _S(length=64), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("leaf", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sandbox_queries_order", "sandbox_queries", ["order_id", "id"])
    op.create_table(
        "usage_periods",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("order_id", _S(length=40), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("currency", _S(length=3), nullable=False),
        sa.Column("charge", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("reference", _S(length=60), nullable=False),
        sa.Column("receipts_root", _S(length=64), nullable=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("leaf", sa.LargeBinary(), nullable=True),
        sa.Column("closed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("payment_reference", _S(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "period", name="uq_usage_periods_order_period"),
    )
    op.create_index("ix_usage_periods_status_ends", "usage_periods", ["status", "ends_at"])
    op.create_table(
        "usage_calls",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("period_id", sa.BigInteger(), sa.ForeignKey("usage_periods.id"), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("column", _S(length=100), nullable=False),
        sa.Column("value_sha256", _S(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("result_sha256", _S(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_usage_calls_period", "usage_calls", ["period_id", "id"])
    # How each listing's public plans deliver (search filter ``delivery``); every listing so far downloads.
    # (A plain ALTER on SQLite too: a batch copy would drop the full-text triggers of listing_docs.)
    op.add_column("listing_docs", sa.Column("deliveries", sa.Text(), nullable=False, server_default=",download,"))


def downgrade() -> None:
    op.drop_column("listing_docs", "deliveries")
    op.drop_index("ix_usage_calls_period", table_name="usage_calls")
    op.drop_table("usage_calls")
    op.drop_index("ix_usage_periods_status_ends", table_name="usage_periods")
    op.drop_table("usage_periods")
    op.drop_index("ix_sandbox_queries_order", table_name="sandbox_queries")
    op.drop_table("sandbox_queries")
    op.drop_table("asset_tables")
