"""Listing tables: the listing, every version of its terms, and its search document."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime, utcnow


class Listing(SQLModel, table=True):
    __tablename__ = "listings"

    id: str = Field(primary_key=True, max_length=40)
    asset_id: str = Field(foreign_key="assets.id", index=True, max_length=40)
    provider_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    # The asset while the listing is not delisted, NULL after: one live listing per asset,
    # held by a unique index (NULLs are distinct on both databases).
    live_asset_id: str | None = Field(default=None, unique=True, max_length=40)
    title: str = Field(max_length=200)
    summary: str = Field(default="", max_length=500)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list
    approval_required: bool = False

    status: str = Field(max_length=20, index=True)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # bumped by every move
    frozen: bool = False
    status_reason: str | None = Field(default=None, sa_column=Column(Text))

    # The current terms (a copy of the newest ``listing_terms`` row).
    terms_version: int = 1
    plans: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of plans
    licence: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    terms_sha256: str = Field(max_length=64)

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ListingTerms(SQLModel, table=True):
    """Every version of a listing's terms, kept: an order names the version it accepted."""

    __tablename__ = "listing_terms"

    listing_id: str = Field(foreign_key="listings.id", primary_key=True, max_length=40)
    version: int = Field(primary_key=True)
    plans: str = Field(sa_column=Column(Text, nullable=False))
    licence: str = Field(sa_column=Column(Text, nullable=False))
    terms_sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ListingDoc(SQLModel, table=True):
    """A listing as search sees it (market.listings.search): the filter, facet and sort
    values, and whether it is listed. Kept in the transaction that changes the listing or
    its asset; ``market search reindex`` rebuilds it.

    Only narrow values live here, so that counting and paging many matches reads little.
    The segmented text is the engines' own (written by market.listings.index, made by the
    migrations, invisible to the models): SQLite's FTS5 table ``listing_fts`` (one column
    per field, rowid = ``doc_id``), PostgreSQL's ``tsv`` column (GIN).
    """

    __tablename__ = "listing_docs"
    __table_args__ = (
        # Index-only facets and totals over the visible documents, every filter included
        # (measured: a purpose filter read 100k rows by rowid, 124 ms, 22 ms from this).
        Index("ix_listing_docs_facets", "listed", "has_public_plan", "category", "grade", "models",
              "purposes", "price_key", "currency", "provider_id"),
        # Newest first, and the price sorts, walked in order.
        Index("ix_listing_docs_newest", "listed", "has_public_plan", "listing_id"),
        Index("ix_listing_docs_price", "listed", "has_public_plan", "price_key", "listing_id"),
    )

    doc_id: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(foreign_key="listings.id", unique=True, max_length=40)

    listed: bool = Field(default=False)  # market.listings.access.orderable_clause, stored
    provider_id: str = Field(max_length=40, index=True)
    category: str = Field(max_length=100)
    grade: str = Field(max_length=20)
    models: str = Field(default=",", max_length=60)  # ",free,one_time," : models of the public plans
    purposes: str = Field(default=",", sa_column=Column(Text, nullable=False))  # ",research,statistics,"
    # How the public plans deliver: ",download,sandbox," (docs/usage.md).
    deliveries: str = Field(default=",download,", sa_column=Column(Text, nullable=False,
                                                                    server_default=",download,"))
    private_to: str = Field(default=",", sa_column=Column(Text, nullable=False))  # ",acct_…,": buyers of private plans
    has_public_plan: bool = True
    currency: str = Field(default="CNY", max_length=3)
    # The lowest public price in minor units; PRICE_NONE when no plan is public (sorts last).
    price_key: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
