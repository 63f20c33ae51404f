"""The sorts of listing search: their cursors (opaque, checked on the way back), their
SQL order and "after the cursor" condition, and the same order in Python for merging the
pages of a search's parts (``market.listings.search``)."""

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, literal_column, or_
from sqlalchemy.sql import ColumnElement

from market.core.db import table_of
from market.core.errors import Unprocessable
from market.listings.models import ListingDoc

if TYPE_CHECKING:
    from market.listings.search import Hit, SearchParams

__all__ = ["PRICE_NONE", "SORTS", "comes_after", "decode_cursor", "encode_cursor", "key_of", "merged", "order_and_after",
           "ordered", "sort_of", "value_of"]

# The price_key of a document without a public plan: larger than any price, so it sorts
# last in ascending order (and is put last explicitly in descending order).
PRICE_NONE = 2**62
SORTS = ("relevance", "newest", "price_asc", "price_desc")

D = table_of(ListingDoc).c


def sort_of(p: "SearchParams") -> str:
    sort = p.sort or ("relevance" if p.q is not None else "newest")
    if sort not in SORTS:
        raise Unprocessable(f"sort must be one of {', '.join(SORTS)}", kind="bad-sort")
    if sort == "relevance" and p.q is None:
        raise Unprocessable("sort=relevance needs q", kind="bad-sort")
    return sort


def encode_cursor(sort: str, key: list[Any], pairs: bool = False) -> str:
    # "r": the query's reading, when it is not the phrases (the pages of one search read it alike).
    raw = json.dumps({"s": sort, "k": key, **({"r": "pairs"} if pairs else {})}, separators=(",", ":"),
                     ensure_ascii=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def bad_cursor(detail: str = "cursor is not one this API gave out") -> Unprocessable:
    return Unprocessable(detail, kind="bad-cursor")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= PRICE_NONE


def decode_cursor(cursor: str, sort: str) -> tuple[list[Any], bool]:
    """The cursor's key, and whether its search reads the query as pairs."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_cursor() from None
    if not isinstance(data, dict) or set(data) - {"r"} != {"s", "k"} or not isinstance(data["k"], list):
        raise bad_cursor()
    if data.get("r", "pairs") != "pairs":
        raise bad_cursor()
    if data["s"] != sort:
        raise bad_cursor(f"this cursor pages results sorted by {data['s']!r}, not {sort!r}")
    key = data["k"]
    shape_ok = (
        len(key) == (1 if sort == "newest" else 2)
        and isinstance(key[-1], str) and 0 < len(key[-1]) <= 64
        and all(is_int(v) for v in key[:-1])
    )
    if not shape_ok:
        raise bad_cursor()
    return key, "r" in data


def order_and_after(sort: str, score: Any, key: list[Any] | None) -> tuple[list[Any], list[Any], ColumnElement[bool] | None]:
    """``(columns to select, ORDER BY, rows after the cursor key)`` for ``sort``."""
    lid, price = D.listing_id, D.price_key
    after: ColumnElement[bool] | None = None
    if sort == "relevance":
        if key is not None:
            after = or_(score < key[0], and_(score == key[0], lid < key[1]))
        # Ordered by the selected column's name: the score is computed once per row.
        return [score.label("score"), lid], [literal_column("score").desc(), lid.desc()], after
    if sort == "newest":
        if key is not None:
            after = lid < key[0]
        return [lid], [lid.desc()], after
    if sort == "price_asc":
        if key is not None:
            after = or_(price > key[0], and_(price == key[0], lid > key[1]))
        return [price, lid], [price.asc(), lid.asc()], after
    # price_desc: priced listings from the dearest, then those without a public price.
    unpriced = case((price == PRICE_NONE, 1), else_=0)
    if key is not None:
        if key[0] == PRICE_NONE:
            after = and_(price == PRICE_NONE, lid < key[1])
        else:
            after = or_(price == PRICE_NONE, price < key[0], and_(price == key[0], lid < key[1]))
    return [price, lid], [unpriced.asc(), price.desc(), lid.desc()], after


def value_of(sort: str, row: Any) -> int | None:
    if sort == "relevance":
        return int(row.score)
    if sort == "newest":
        return None
    return int(row.price_key)


def rank(sort: str, value: int | None, listing_id: str) -> tuple[Any, ...]:
    """What the sort orders by (``order_and_after``'s ORDER BY), highest first except
    for ``price_asc``: priced listings before those without a public price."""
    if sort == "newest":
        return (listing_id,)
    if sort == "price_desc":
        return (value != PRICE_NONE, value, listing_id)
    return (value, listing_id)


def ordered(sort: str, hits: list["Hit"]) -> list["Hit"]:
    return sorted(hits, key=lambda h: rank(sort, h.value, h.listing_id), reverse=sort != "price_asc")


def comes_after(sort: str, hit: "Hit", key: list[Any]) -> bool:
    """Whether ``hit`` comes after the cursor ``key`` (``order_and_after``'s condition)."""
    mine, theirs = rank(sort, hit.value, hit.listing_id), rank(sort, key[0] if len(key) == 2 else None, key[-1])
    return mine > theirs if sort == "price_asc" else mine < theirs


def merged(sort: str, pages: list[tuple["Hit", ...]]) -> list["Hit"]:
    """The parts' pages as one, in the order the SQL of ``order_and_after`` gives."""
    if len(pages) == 1:
        return list(pages[0])
    return ordered(sort, [hit for page in pages for hit in page])


def key_of(sort: str, hit: "Hit") -> list[Any]:
    if sort == "newest":
        return [hit.listing_id]
    return [hit.value, hit.listing_id]
