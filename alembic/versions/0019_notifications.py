"""Notifications: the inbox, webhook endpoints, webhook messages and their delivery
attempts (market.notifications)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from ledger._time import UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("account_id", _S(length=40), nullable=False),
        sa.Column("event_id", _S(length=40), nullable=False),
        sa.Column("event", _S(length=60), nullable=False),
        sa.Column("subject", _S(length=80), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "account_id", name="uq_notifications_event_account"),
    )
    op.create_index("ix_notifications_account_id", "notifications", ["account_id", "id"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("account_id", _S(length=40), nullable=False),
        sa.Column("url", _S(length=2000), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", _S(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_endpoints_account_id", "webhook_endpoints", ["account_id"])
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", _S(length=40), nullable=False),
        sa.Column("endpoint_id", _S(length=40), nullable=False),
        sa.Column("event", _S(length=60), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", _S(length=20), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_messages_event_endpoint"),
    )
    op.create_index("ix_webhook_messages_endpoint_id", "webhook_messages", ["endpoint_id"])
    op.create_index("ix_webhook_messages_due", "webhook_messages", ["status", "next_attempt_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("endpoint_id", _S(length=40), nullable=False),
        sa.Column("event_id", _S(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", _S(length=500), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempts_message_id", "webhook_attempts", ["message_id"])
    op.create_index("ix_webhook_attempts_endpoint", "webhook_attempts", ["endpoint_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_endpoint", table_name="webhook_attempts")
    op.drop_index("ix_webhook_attempts_message_id", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_messages_due", table_name="webhook_messages")
    op.drop_index("ix_webhook_messages_endpoint_id", table_name="webhook_messages")
    op.drop_table("webhook_messages")
    op.drop_index("ix_webhook_endpoints_account_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_notifications_account_id", table_name="notifications")
    op.drop_table("notifications")
