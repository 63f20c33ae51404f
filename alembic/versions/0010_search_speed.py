"""Search speed: narrow search documents, indexes that answer filters, facets and sorts
by themselves, statistics for SQLite's planner

- ``listing_docs`` keeps only what filters, facets, sorts and visibility read; the four
  token-text columns go. SQLite's ``listing_fts`` becomes an FTS5 table holding its own
  text (rowid = ``listing_docs.doc_id``, written by market.listings.index in the same
  transaction, no triggers), filled here from the old columns; PostgreSQL keeps ``tsv``.
- Indexes: facets ``(listed, has_public_plan, category, grade, models, purposes,
  price_key, currency, provider_id)`` (every filter, so that counting needs no row), newest
  ``(listed, has_public_plan, listing_id)``, price ``(listed, has_public_plan, price_key,
  listing_id)``.
- SQLite: ``ANALYZE`` (``analysis_limit`` 400), so that its planner has statistics.

Downgrade restores the token columns from the engines' text (SQLite's FTS5 columns;
PostgreSQL's ``tsv`` by weight and position, tokens past position 16383 lost, as they
were never indexed) and 0007's external-content FTS5 table and triggers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = ("title_tokens", "keyword_tokens", "summary_tokens", "description_tokens")
TEXT_COLUMNS = ", ".join(FIELDS)
TOKENIZE = "tokenize='unicode61 remove_diacritics 0'"
OLD_TRIGGERS = ("listing_docs_ai", "listing_docs_ad", "listing_docs_au")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        for trigger in OLD_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE listing_fts")
        op.execute(f"CREATE VIRTUAL TABLE listing_fts USING fts5({TEXT_COLUMNS}, {TOKENIZE})")
        op.execute(f"INSERT INTO listing_fts(rowid, {TEXT_COLUMNS}) SELECT doc_id, {TEXT_COLUMNS} FROM listing_docs")
    op.drop_index("ix_listing_docs_facets", table_name="listing_docs")
    op.drop_index("ix_listing_docs_price", table_name="listing_docs")
    for column in FIELDS:
        op.drop_column("listing_docs", column)
    op.create_index("ix_listing_docs_facets", "listing_docs", ["listed", "has_public_plan", "category", "grade", "models",
                                                              "purposes", "price_key", "currency", "provider_id"])
    op.create_index("ix_listing_docs_newest", "listing_docs", ["listed", "has_public_plan", "listing_id"])
    op.create_index("ix_listing_docs_price", "listing_docs", ["listed", "has_public_plan", "price_key", "listing_id"])
    if _sqlite():
        op.execute("PRAGMA analysis_limit=400")
        op.execute("ANALYZE")


def downgrade() -> None:
    op.drop_index("ix_listing_docs_price", table_name="listing_docs")
    op.drop_index("ix_listing_docs_newest", table_name="listing_docs")
    op.drop_index("ix_listing_docs_facets", table_name="listing_docs")
    for column in FIELDS:
        op.add_column("listing_docs", sa.Column(column, sa.Text(), nullable=False, server_default=" "))
    if _sqlite():
        for column in FIELDS:
            op.execute(f"UPDATE listing_docs SET {column} = coalesce("
                       f"(SELECT f.{column} FROM listing_fts f WHERE f.rowid = listing_docs.doc_id), ' ')")
        op.execute("DROP TABLE listing_fts")
        new_text = ", ".join(f"new.{c}" for c in FIELDS)
        old_text = ", ".join(f"old.{c}" for c in FIELDS)
        for statement in (
            f"CREATE VIRTUAL TABLE listing_fts USING fts5({TEXT_COLUMNS}, content='listing_docs', "
            f"content_rowid='doc_id', {TOKENIZE})",
            f"CREATE TRIGGER listing_docs_ai AFTER INSERT ON listing_docs BEGIN "
            f"INSERT INTO listing_fts(rowid, {TEXT_COLUMNS}) VALUES (new.doc_id, {new_text}); END",
            f"CREATE TRIGGER listing_docs_ad AFTER DELETE ON listing_docs BEGIN "
            f"INSERT INTO listing_fts(listing_fts, rowid, {TEXT_COLUMNS}) VALUES ('delete', old.doc_id, {old_text}); END",
            f"CREATE TRIGGER listing_docs_au AFTER UPDATE OF {TEXT_COLUMNS} ON listing_docs BEGIN "
            f"INSERT INTO listing_fts(listing_fts, rowid, {TEXT_COLUMNS}) VALUES ('delete', old.doc_id, {old_text}); "
            f"INSERT INTO listing_fts(rowid, {TEXT_COLUMNS}) VALUES (new.doc_id, {new_text}); END",
            "INSERT INTO listing_fts(listing_fts) VALUES ('rebuild')",
        ):
            op.execute(statement)
    else:
        # tsvector_literal wrote the fields in order with weights A-D: read them back.
        for column, weight in zip(FIELDS, "ABCD", strict=True):
            op.execute(
                f"UPDATE listing_docs SET {column} = coalesce((SELECT ' ' || string_agg(u.lexeme, ' ' ORDER BY p.pos) "
                f"|| ' ' FROM unnest(listing_docs.tsv) AS u, unnest(u.positions, u.weights) AS p(pos, w) "
                f"WHERE p.w = '{weight}'), ' ')")
            op.alter_column("listing_docs", column, server_default=None)
    op.create_index("ix_listing_docs_facets", "listing_docs", ["listed", "category", "grade", "models"])
    op.create_index("ix_listing_docs_price", "listing_docs", ["listed", "price_key", "listing_id"])
