"""Keeping ``listing_docs`` (what search reads) true, in the transaction of each change.

``index_listing`` writes a listing's document after it is published or moves;
``refresh_listed`` re-evaluates ``access.orderable_clause`` for listings whose asset or
holder moved (subscribers of their moves, in ``market.wiring.subscribers``);
``reindex`` rebuilds every document (``market search reindex``, after an upgrade that
changes segmentation).

A document is a narrow ``listing_docs`` row plus its text in the engine's own index,
written here in the same transaction: SQLite's FTS5 table ``listing_fts`` (rowid =
``doc_id``, one column per field), PostgreSQL's ``tsv`` column (``tsvector_literal``).
"""

import json
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.listings import access
from market.listings.models import Listing, ListingDoc
from market.listings.search import PRICE_NONE, tsvector_literal
from market.listings.text import token_string, tokens
from market.registry import categories
from market.registry.models import Asset


def _set(values: list[str]) -> str:
    """``",a,b,"``: a set that ``LIKE '%,a,%'`` can test on both databases."""
    return "," + "".join(f"{v}," for v in sorted(set(values)))


FTS_COLUMNS = ("title_tokens", "keyword_tokens", "summary_tokens", "description_tokens")
_FTS_DELETE = text("DELETE FROM listing_fts WHERE rowid = :id")
_FTS_INSERT = text(f"INSERT INTO listing_fts(rowid, {', '.join(FTS_COLUMNS)}) VALUES (:id, :t, :k, :s, :d)")
_TSV_UPDATE = text("UPDATE listing_docs SET tsv = CAST(:lit AS tsvector) WHERE doc_id = :id")


def document(listing: Listing, asset: Asset) -> tuple[dict[str, Any], list[list[str]]]:
    """The document's ``listing_docs`` columns, and its four token lists (title,
    keywords, summary, description) for the engine (``text_rows``)."""
    plans = json.loads(listing.plans)
    licence = json.loads(listing.licence)
    public = [p for p in plans if not p.get("private_to")]
    # The keywords: the tags, and the category's id and both names (q=交通 finds transport).
    keywords = " ".join([*json.loads(listing.tags), categories.search_text(asset.category)])
    fields = [tokens(listing.title), tokens(keywords),
              tokens(listing.summary), tokens(listing.description)]
    values = {
        "listing_id": listing.id,
        "provider_id": listing.provider_id, "category": asset.category, "grade": asset.grade,
        "models": _set([p["model"] for p in public]),
        "deliveries": _set([p.get("delivery") or "download" for p in public]),
        "purposes": _set(licence["purposes"]),
        "private_to": _set([buyer for p in plans for buyer in p.get("private_to") or []]),
        "has_public_plan": bool(public),
        "currency": plans[0]["price"]["currency"],
        "price_key": min((p["price"]["amount"] for p in public), default=PRICE_NONE),
    }
    return values, fields


def text_rows(dialect: str, doc_id: int, fields: list[list[str]]) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters that store a document's text in the engine's index
    (SQLite: after ``delete_text``; executemany-able)."""
    if dialect == "sqlite":
        t, k, s, d = (token_string(f) for f in fields)
        return _FTS_INSERT, {"id": doc_id, "t": t, "k": k, "s": s, "d": d}
    return _TSV_UPDATE, {"lit": tsvector_literal(*fields), "id": doc_id}


async def write_text(session: AsyncSession, doc_id: int, fields: list[list[str]]) -> None:
    """Store (or replace) the text of document ``doc_id`` in the engine's index."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        await session.execute(_FTS_DELETE, {"id": doc_id})
    statement, params = text_rows(dialect, doc_id, fields)
    await session.execute(statement, params)


async def index_listing(session: AsyncSession, listing: Listing, asset: Asset | None = None) -> None:
    if asset is None:
        asset = await session.get_one(Asset, listing.asset_id)
    values, fields = document(listing, asset)
    doc_id = (await session.execute(select(col(ListingDoc.doc_id)).where(col(ListingDoc.listing_id) == listing.id))).scalar()
    if doc_id is None:
        doc = ListingDoc(**values)
        session.add(doc)
        await session.flush()
        assert doc.doc_id is not None  # the flush gave it one
        doc_id = doc.doc_id
    else:
        await session.execute(update(ListingDoc).where(ListingDoc.doc_id == doc_id).values(**values))
    await write_text(session, doc_id, fields)
    await refresh_listed(session, Listing.id == listing.id)


async def refresh_listed(session: AsyncSession, which: Any) -> None:
    """Store ``orderable_clause`` in the documents of the listings ``which`` selects."""
    await session.execute(
        update(ListingDoc)
        .where(col(ListingDoc.listing_id).in_(select(col(Listing.id)).where(which)))
        .values(listed=exists().where(col(Listing.id) == col(ListingDoc.listing_id), access.orderable_clause()))
        .execution_options(synchronize_session=False)
    )


async def reindex(session: AsyncSession, batch: int = 500) -> int:
    """Rewrite every listing's document; returns how many. Documents of listings that
    no longer exist are removed (and on SQLite any text without a document). Runs in the
    caller's transaction; on SQLite it ends by refreshing the planner's statistics."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    await session.execute(delete(ListingDoc).where(~col(ListingDoc.listing_id).in_(select(col(Listing.id)))))
    if sqlite:
        await session.execute(text("DELETE FROM listing_fts WHERE rowid NOT IN (SELECT doc_id FROM listing_docs)"))
    count, after = 0, ""
    while True:
        rows = (await session.execute(
            select(Listing, Asset).join(Asset, col(Asset.id) == col(Listing.asset_id))
            .where(col(Listing.id) > after).order_by(col(Listing.id)).limit(batch))).all()
        if not rows:
            if sqlite:
                await analyze(session)
            return count
        for listing, asset in rows:
            await index_listing(session, listing, asset)
        count += len(rows)
        after = rows[-1][0].id


async def analyze(session: AsyncSession) -> None:
    """SQLite: gather the planner's statistics (``ANALYZE``, sampling at most 400 rows
    of each index). PostgreSQL's autovacuum does this by itself."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("PRAGMA analysis_limit=400"))
        await session.execute(text("ANALYZE"))


async def documents(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(ListingDoc))).scalar_one()
