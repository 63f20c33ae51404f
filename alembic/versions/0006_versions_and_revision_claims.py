"""Row versions for race-safe moves; ownership claims kept per content revision

- ``version`` on accounts, assets, objections and asset_transfers: every state machine
  move updates ``WHERE version = :seen`` (market.core.statemachine), so a row changed since
  it was read loses cleanly on PostgreSQL under READ COMMITTED as on SQLite.
- The claim (rights, signed bytes, key, signature) moves from ``assets`` to
  ``asset_revisions``: a change under review is kept apart from the registered
  revision, and a rejected change leaves the registration exactly as it was.
- ``assets.change`` is dropped: a submission is a change exactly when a registration
  stands (``registered_revision > 0``), so the flag could only drift from the truth.
- ``asset_transfers.status`` is indexed (pending proposals are voided by asset and key).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_COLUMNS = ("rights", "claim", "claim_key_id", "claim_signature")


# Plain ALTER TABLE ADD/DROP COLUMN (SQLite >= 3.35 and PostgreSQL alike): a batch
# rebuild of a table other tables reference would trip SQLite's foreign keys.


def _drop(table: str, column: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def _version(table: str) -> None:
    op.add_column(table, sa.Column("version", sa.Integer(), nullable=False, server_default="0"))


def upgrade() -> None:
    for table in ("accounts", "assets", "objections", "asset_transfers"):
        _version(table)
    for column in (
        sa.Column("rights", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("claim", sa.Text(), nullable=True),
        sa.Column("claim_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("claim_signature", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("claimed_at", ledger._time.UTCDateTime(timezone=True), nullable=True),
    ):
        op.add_column("asset_revisions", column)
    # An asset's last claim belongs to its newest revision (or the registered one, if a
    # change was rejected and the newest revision is the registered one again).
    op.execute(
        "UPDATE asset_revisions SET rights = a.rights, claim = a.claim, claim_key_id = a.claim_key_id, "
        "claim_signature = a.claim_signature, claimed_at = a.submitted_at "
        "FROM assets AS a WHERE a.id = asset_revisions.asset_id AND a.content_revision = asset_revisions.revision "
        "AND a.claim IS NOT NULL"
    )
    for column in (*CLAIM_COLUMNS, "change"):
        _drop("assets", column)
    op.create_index("ix_asset_transfers_status", "asset_transfers", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_asset_transfers_status", table_name="asset_transfers")
    op.add_column("assets", sa.Column("change", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE assets SET change = (registered_revision > 0 AND status IN ('submitted', 'public_notice'))")
    for column in (
        sa.Column("rights", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False, server_default="[]"),
        sa.Column("claim", sa.Text(), nullable=True),
        sa.Column("claim_key_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("claim_signature", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    ):
        op.add_column("assets", column)
    op.execute(
        "UPDATE assets SET rights = COALESCE(r.rights, '[]'), claim = r.claim, claim_key_id = r.claim_key_id, "
        "claim_signature = r.claim_signature FROM asset_revisions AS r "
        "WHERE r.asset_id = assets.id AND r.revision = assets.content_revision"
    )
    for column in (*CLAIM_COLUMNS, "claimed_at"):
        _drop("asset_revisions", column)
    for table in ("accounts", "assets", "objections", "asset_transfers"):
        _drop(table, "version")
