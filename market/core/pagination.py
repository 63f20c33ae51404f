"""Cursor pagination over time-ordered ids: ``?limit=`` (1..500, default 50), ``?cursor=``."""

import base64
import binascii
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.sql import Select

from market.core.errors import Unprocessable

# The query's own type comes back (SQLModel's select is a Select that ``session.exec`` takes).
_Query = TypeVar("_Query", bound=Select[Any])

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor") from None
    if not value.isascii() or "_" not in value or len(value) > 64:
        raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor")
    return value


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", kind="bad-limit")
    return limit


def paginate(query: _Query, id_column: Any, limit: int, cursor: str | None) -> _Query:
    """Order by id and fetch one more row than asked, to know whether a next page exists."""
    check_limit(limit)
    if cursor:
        query = query.where(id_column > decode_cursor(cursor))
    return query.order_by(id_column).limit(limit + 1)


def page_of(rows: list[Any], limit: int, convert: Any, id_of: Any = lambda r: r.id) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [convert(r) for r in rows],
        "next_cursor": encode_cursor(id_of(rows[-1])) if more and rows else None,
    }
