"""Listings (挂牌): listings, every version of their terms, and their search documents

- ``listings``: one live (not delisted) listing per asset, held by the unique
  ``live_asset_id``; ``version`` for race-safe moves (market.core.statemachine).
- ``listing_terms``: every version of plans and licence an order may name.
- ``listing_docs``: what search reads (market.listings.search). Each database indexes
  its segmented text its own way, created here and invisible to the models:
  SQLite an FTS5 table ``listing_fts`` over the documents (external content, kept by
  triggers in the same transaction); PostgreSQL a ``tsv`` column with a GIN index,
  written by the market with the same tokens and positions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import ledger._time
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_COLUMNS = "title_tokens, keyword_tokens, summary_tokens, description_tokens"
NEW_TEXT = "new.title_tokens, new.keyword_tokens, new.summary_tokens, new.description_tokens"
OLD_TEXT = "old.title_tokens, old.keyword_tokens, old.summary_tokens, old.description_tokens"

SQLITE_FTS = [
    # unicode61 splits on spaces and keeps a run of CJK characters whole: the tokens the
    # market wrote (bigrams, stems) are exactly the tokens indexed.
    f"CREATE VIRTUAL TABLE listing_fts USING fts5({TEXT_COLUMNS}, content='listing_docs', "
    "content_rowid='doc_id', tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER listing_docs_ai AFTER INSERT ON listing_docs BEGIN "
    f"INSERT INTO listing_fts(rowid, {TEXT_COLUMNS}) VALUES (new.doc_id, {NEW_TEXT}); END",
    f"CREATE TRIGGER listing_docs_ad AFTER DELETE ON listing_docs BEGIN "
    f"INSERT INTO listing_fts(listing_fts, rowid, {TEXT_COLUMNS}) VALUES ('delete', old.doc_id, {OLD_TEXT}); END",
    f"CREATE TRIGGER listing_docs_au AFTER UPDATE OF {TEXT_COLUMNS} ON listing_docs BEGIN "
    f"INSERT INTO listing_fts(listing_fts, rowid, {TEXT_COLUMNS}) VALUES ('delete', old.doc_id, {OLD_TEXT}); "
    f"INSERT INTO listing_fts(rowid, {TEXT_COLUMNS}) VALUES (new.doc_id, {NEW_TEXT}); END",
]


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "listings",
        sa.Column("id", _string(40), nullable=False),
        sa.Column("asset_id", _string(40), nullable=False),
        sa.Column("provider_id", _string(40), nullable=False),
        sa.Column("live_asset_id", _string(40), nullable=True),
        sa.Column("title", _string(200), nullable=False),
        sa.Column("summary", _string(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("approval_required", sa.Boolean(), nullable=False),
        sa.Column("status", _string(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("terms_version", sa.Integer(), nullable=False),
        sa.Column("plans", sa.Text(), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("terms_sha256", _string(64), nullable=False),
        sa.Column("created_at", ledger._time.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ledger._time.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"]),
        sa.ForeignKeyConstraint(["provider_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_asset_id"),
    )
    op.create_index("ix_listings_asset_id", "listings", ["asset_id"])
    op.create_index("ix_listings_provider_id", "listings", ["provider_id"])
    op.create_index("ix_listings_status", "listings", ["status"])
    op.create_table(
        "listing_terms",
        sa.Column("listing_id", _string(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("plans", sa.Text(), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("terms_sha256", _string(64), nullable=False),
        sa.Column("created_at", ledger._time.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"]),
        sa.PrimaryKeyConstraint("listing_id", "version"),
    )
    op.create_table(
        "listing_docs",
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("listing_id", _string(40), nullable=False),
        sa.Column("title_tokens", sa.Text(), nullable=False),
        sa.Column("keyword_tokens", sa.Text(), nullable=False),
        sa.Column("summary_tokens", sa.Text(), nullable=False),
        sa.Column("description_tokens", sa.Text(), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("provider_id", _string(40), nullable=False),
        sa.Column("category", _string(100), nullable=False),
        sa.Column("grade", _string(20), nullable=False),
        sa.Column("models", _string(60), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("private_to", sa.Text(), nullable=False),
        sa.Column("has_public_plan", sa.Boolean(), nullable=False),
        sa.Column("currency", _string(3), nullable=False),
        sa.Column("price_key", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["listing_id"], ["listings.id"]),
        sa.PrimaryKeyConstraint("doc_id"),
        sa.UniqueConstraint("listing_id"),
    )
    op.create_index("ix_listing_docs_provider_id", "listing_docs", ["provider_id"])
    op.create_index("ix_listing_docs_facets", "listing_docs", ["listed", "category", "grade", "models"])
    op.create_index("ix_listing_docs_price", "listing_docs", ["listed", "price_key", "listing_id"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute("ALTER TABLE listing_docs ADD COLUMN tsv tsvector NOT NULL DEFAULT ''::tsvector")
        op.execute("CREATE INDEX ix_listing_docs_tsv ON listing_docs USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("listing_docs_ai", "listing_docs_ad", "listing_docs_au"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE listing_fts")
    op.drop_table("listing_docs")
    op.drop_table("listing_terms")
    op.drop_table("listings")
