"""What a search asks for (``SearchParams``), what it answers (``SearchResult``), and the
conditions on the search documents: who may find which (``public_docs``, ``extra_docs``,
``visible_docs``) and the filters of a query (prices checked before any SQL).
"""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, false, or_, true
from sqlalchemy.sql import ColumnElement

from market.core.db import table_of
from market.core.errors import Unprocessable
from market.core.money import MAX_AMOUNT
from market.listings.models import ListingDoc
from market.listings.ordering import PRICE_NONE
from market.web.auth import Caller

D = table_of(ListingDoc).c


@dataclass(frozen=True)
class SearchParams:
    q: str | None = None
    category: str | None = None
    grade: str | None = None  # validated by the caller (general|important|core)
    provider: str | None = None
    model: str | None = None  # one_time|subscription|free|metered
    delivery: str | None = None  # download|sandbox|api: listings with a public plan that delivers so
    purpose: str | None = None
    min_price: int | None = None  # minor units, compared to price_key
    max_price: int | None = None
    currency: str | None = None
    sort: str | None = None  # relevance|newest|price_asc|price_desc; relevance with q, else newest
    limit: int = 50
    cursor: str | None = None
    include_all: bool = False  # staff: unlisted documents too; a provider: all of its own


@dataclass(frozen=True)
class SearchResult:
    listing_ids: list[str]
    next_cursor: str | None
    total: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # those of listing_ids that are orderable now
    # Those of listing_ids the caller sees as an anonymous caller does (market.listings.read
    # may present them once for everyone).
    common: set[str] = field(default_factory=set)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _in_list(column: Any, value: str) -> ColumnElement[bool]:
    """``column`` (``",a,b,"``) names ``value``."""
    return column.like(f"%,{_like_escape(value)},%", escape="\\")


def public_docs() -> ColumnElement[bool]:
    """The documents everyone may find: listed, with a public plan."""
    return and_(D.listed == true(), D.has_public_plan == true())


def extra_docs(caller: Caller) -> ColumnElement[bool]:
    """The documents ``caller`` may find besides the public ones: listed without a public
    plan, and its own or with a private plan naming it. Few, whoever the caller is."""
    return and_(D.listed == true(), D.has_public_plan == false(),
                or_(_in_list(D.private_to, caller.id), D.provider_id == caller.id))


def visible_docs(caller: Caller | None, include_all: bool) -> ColumnElement[bool]:
    """The documents ``caller`` may find. ``include_all``: staff see every document; any
    other caller every one of its own (listed or not) and nothing else — whether
    include_all is allowed at all is the route's decision. Search asks the two parts of
    a caller's documents apart (``search``)."""
    if caller is None:
        return public_docs()
    if include_all:
        return true() if caller.is_staff else D.provider_id == caller.id
    return or_(public_docs(), extra_docs(caller))


def check_prices(p: SearchParams) -> None:
    for name in ("min_price", "max_price"):
        value = getattr(p, name)
        if value is not None and not 0 <= value <= MAX_AMOUNT:
            # Before any SQL: a number past 64 bits overflows the database's integers.
            message = f"must be within 0..{MAX_AMOUNT} (minor units)"
            raise Unprocessable(f"{name} {message}", kind="bad-price", extra={"errors": [{"field": name, "message": message}]})
    if p.min_price is not None and p.max_price is not None and p.min_price > p.max_price:
        raise Unprocessable("min_price is above max_price", kind="bad-price")


def common_filters(p: SearchParams) -> list[ColumnElement[bool]]:
    """Every filter but category, grade and model (those the facets vary)."""
    where: list[ColumnElement[bool]] = []
    if p.provider is not None:
        where.append(D.provider_id == p.provider)
    if p.purpose is not None:
        where.append(_in_list(D.purposes, p.purpose))
    if p.delivery is not None:
        where.append(_in_list(D.deliveries, p.delivery))
    if p.min_price is not None or p.max_price is not None:
        where.append(D.price_key != PRICE_NONE)
        if p.min_price is not None:
            where.append(D.price_key >= p.min_price)
        if p.max_price is not None:
            where.append(D.price_key <= p.max_price)
    if p.currency is not None:
        where.append(D.currency == p.currency)
    return where


def facet_filters(p: SearchParams) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if p.category is not None:
        where.append(D.category == p.category)
    if p.grade is not None:
        where.append(D.grade == p.grade)
    if p.model is not None:
        where.append(_in_list(D.models, p.model))
    return where


__all__ = ["SearchParams", "SearchResult", "check_prices", "common_filters", "extra_docs", "facet_filters",
           "public_docs", "visible_docs"]
