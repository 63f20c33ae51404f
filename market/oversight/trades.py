"""Trade search and refused attempts for the regulator (docs/API.md "Oversight"). Services
take ``(session, ctx, …)`` and never write.

Trade search (``GET /v1/oversight/trades``): orders in any status, newest last, keyset
on the order id (ids are time-ordered). Filters, all optional and combined with AND:

- ``from`` / ``to``: UTC dates ``YYYY-MM-DD`` on the order's ``created_at`` (when it was
  placed), ``from`` inclusive, ``to`` exclusive; a malformed date is 422 ``bad-date``.
- ``provider``, ``buyer``: account ids; ``category``, ``grade``: the asset's (as it is
  now); ``status``: one order status (else 422 ``bad-status``); ``alerted``:
  ``true`` (named by an alert in ``alerted_orders``) or ``false`` (else 422).

A row: id, status, buyer and provider (id and name), listing, asset (id and title),
category, grade, price and fee (amount and currency), purpose, payment method, created,
settled and refunded times, alerted.

The CSV (``Accept: text/csv``) has the same columns flattened (``COLUMNS``; the amounts
titled ``price_fen`` and ``fee_fen``, minor units), a header row, then every matching row: UTF-8 with a BOM (so spreadsheet programs read the Chinese
text right), streamed in batches of ``CSV_BATCH`` rows, each batch read by keyset in a
read session of its own, so memory stays constant and no transaction (or SQLite read
snapshot) stays open for the whole download. Text a party wrote (a name, a title) that
a spreadsheet would run as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) is written with a leading ``'`` (OWASP, CSV injection); the
amounts are integers of at least 0 and stay numbers.

Refusals (``GET /v1/oversight/refusals``): the ordering attempts refused by a gate the
regulator watches (``refusals``: export, self-dealing, …) with who (account id and
name), what (listing, asset, detail) and when; ``?kind=`` filters, keyset on its id.
"""

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, exists, select, type_coerce
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.errors import Unprocessable
from market.core.events import AttemptRefused
from market.core.pagination import check_limit, decode_cursor, page_of, paginate
from market.oversight.models import AlertedOrder, Refusal
from market.oversight.stats import moment, parse_day
from market.registry import categories
from market.registry.models import Asset
from market.trading.models import Order
from market.trading.states import OrderStatus

CSV_BATCH = 2000
BOM = "\ufeff"

Buyer = aliased(Account, name="buyer")
Provider = aliased(Account, name="provider")

# The amounts are integers of minor units of ``currency`` (fen for CNY), and their column
# titles say so: a reader of the spreadsheet must not take 50000 for yuan.
COLUMNS = ("id", "status", "buyer", "buyer_name", "provider", "provider_name", "listing", "asset", "asset_title",
           "category", "grade", "currency", "price_fen", "fee_fen", "purpose", "payment_method", "created_at",
           "settled_at", "refunded_at", "alerted")


GRADES = ("general", "important", "core")


class TradeFilters:
    """The search's parsed filters (422 for a bad one, before anything is read)."""

    def __init__(self, start: str | None = None, end: str | None = None, provider: str | None = None,
                 buyer: str | None = None, category: str | None = None, grade: str | None = None,
                 status: str | None = None, alerted: str | None = None) -> None:
        since, to = parse_day(start, "from"), parse_day(end, "to")
        if since is not None and to is not None and since >= to:
            raise Unprocessable(f"from ({since}) must be before to ({to}); to is exclusive", kind="bad-period")
        self.since = moment(since) if since else None
        self.to = moment(to) if to else None
        if status and status not in {s.value for s in OrderStatus}:
            raise Unprocessable(f"status must be one of {', '.join(s.value for s in OrderStatus)}, got {status!r}",
                                kind="bad-status")
        categories.check(category or None)
        if grade and grade not in GRADES:
            raise Unprocessable(f"grade must be one of {', '.join(GRADES)}, got {grade!r}", kind="bad-filter",
                                extra={"errors": [{"field": "grade", "message": "unknown grade"}]})
        if alerted not in (None, "", "true", "false"):
            raise Unprocessable(f"alerted must be true or false, got {alerted!r}", kind="bad-filter")
        self.provider, self.buyer = provider or None, buyer or None
        self.category, self.grade, self.status = category or None, grade or None, status or None
        self.alerted = None if alerted in (None, "") else alerted == "true"

    def clauses(self) -> list[Any]:
        out: list[Any] = []
        if self.since is not None:
            out.append(col(Order.created_at) >= self.since)
        if self.to is not None:
            out.append(col(Order.created_at) < self.to)
        for column, value in ((Order.provider_id, self.provider), (Order.buyer_id, self.buyer),
                              (Asset.category, self.category), (Asset.grade, self.grade),
                              (Order.status, self.status)):
            if value is not None:
                out.append(column == value)
        if self.alerted is not None:
            flagged = exists().where(col(AlertedOrder.order_id) == col(Order.id))
            out.append(flagged if self.alerted else ~flagged)
        return out


def _times(dialect: str) -> list[Any]:
    """The three times; on SQLite as the stored text (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``),
    which ``_time`` rewrites in RFC 3339 far faster than parsing each into a datetime."""
    columns = {"created_at": col(Order.created_at), "settled_at": col(Order.settled_at),
               "refunded_at": col(Order.refunded_at)}
    if dialect == "sqlite":
        return [type_coerce(c, String).label(name) for name, c in columns.items()]
    return list(columns.values())


def _query(filters: TradeFilters, dialect: str = "postgresql") -> Any:
    alerted = exists().where(col(AlertedOrder.order_id) == col(Order.id)).label("alerted")
    return (select(col(Order.id), col(Order.status), col(Order.buyer_id), col(Buyer.name).label("buyer_name"),
                   col(Order.provider_id), col(Provider.name).label("provider_name"),
                   col(Order.listing_id), col(Order.asset_id), col(Asset.title).label("asset_title"),
                   col(Asset.category), col(Asset.grade), col(Order.currency), col(Order.price), col(Order.fee), col(Order.purpose),
                   col(Order.payment_method), *_times(dialect), alerted)
            .join(Asset, and_(col(Asset.id) == col(Order.asset_id)))
            .join(Buyer, col(Buyer.id) == col(Order.buyer_id))
            .join(Provider, col(Provider.id) == col(Order.provider_id))
            .where(*filters.clauses()))


def _time(value: datetime | str | None) -> str | None:
    """RFC 3339 UTC with microseconds and a ``Z`` (as ``market.core.types.rfc3339``)."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's stored text
        if len(value) == 19:
            value += ".000000"
        return f"{value[:10]}T{value[11:26]}Z"
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def trade_read(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status,
        "buyer": {"id": row.buyer_id, "name": row.buyer_name},
        "provider": {"id": row.provider_id, "name": row.provider_name},
        "listing": row.listing_id, "asset": {"id": row.asset_id, "title": row.asset_title},
        "category": row.category, "grade": row.grade,
        "price": {"amount": row.price, "currency": row.currency}, "fee": {"amount": row.fee, "currency": row.currency},
        "purpose": row.purpose, "payment_method": row.payment_method, "created_at": _time(row.created_at),
        "settled_at": _time(row.settled_at), "refunded_at": _time(row.refunded_at), "alerted": bool(row.alerted),
    }


# A cell a spreadsheet program would read as a formula (OWASP "CSV injection"): text
# beginning with one of these. Numbers are written as numbers; no column holds a
# negative one (price and fee are never below 0), and a number is never text here.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(cell: Any) -> Any:
    """``cell`` as a spreadsheet shows it, never as a formula: text beginning with a
    formula character gets a leading ``'`` (OWASP); anything else is unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_row(row: Any) -> list[Any]:
    """A row of ``_query`` (its columns are in ``COLUMNS`` order) as CSV fields, no text
    readable as a formula (names and titles come from parties)."""
    out = list(row)
    out[16], out[17], out[18] = _time(out[16]), _time(out[17]), _time(out[18])
    out[19] = "true" if out[19] else "false"
    return [neutral(cell) for cell in out]


async def search(session: AsyncSession, ctx: Ctx, filters: TradeFilters, limit: int,
                 cursor: str | None) -> dict[str, Any]:
    """One page of matching trades (``{"items", "next_cursor"}``)."""
    ctx.user.require(Role.regulator, Role.operator)
    query = _query(filters, session.get_bind().dialect.name)
    rows = (await session.execute(paginate(query, Order.id, limit, cursor))).all()
    return page_of(list(rows), limit, trade_read)


async def csv_chunks(sessionmaker: Callable[[], Any], filters: TradeFilters,
                     batch: int = CSV_BATCH) -> AsyncIterator[bytes]:
    """The CSV, BOM and header first, then every matching row, one batch per read
    session (the caller checked the role: nothing here raises for a bad request)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield (BOM + out.getvalue()).encode()
    after: str | None = None
    while True:
        async with sessionmaker() as session:
            query = _query(filters, session.get_bind().dialect.name)
            if after is not None:
                query = query.where(col(Order.id) > after)
            conn = await session.connection()  # Core rows: no ORM loading per row
            rows = (await conn.execute(query.order_by(Order.id).limit(batch))).all()
            await session.rollback()
        if not rows:
            return
        out.seek(0)
        out.truncate()
        writer.writerows(csv_row(r) for r in rows)
        yield out.getvalue().encode()
        if len(rows) < batch:
            return
        after = rows[-1][0]


# -- refusals ------------------------------------------------------------------------------

_REFUSAL_PREFIX = "rfs_"


def _refusal_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    value = decode_cursor(cursor)
    if not value.startswith(_REFUSAL_PREFIX) or not value[len(_REFUSAL_PREFIX):].isdigit():
        raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor")
    return int(value[len(_REFUSAL_PREFIX):])


async def keep_refusal(session: AsyncSession, ctx: Ctx, refused: AttemptRefused) -> None:
    """Keep a refused attempt for the regulator (subscriber of ``AttemptRefused``)."""
    session.add(Refusal(kind=refused.kind, account_id=refused.account_id, listing_id=refused.listing_id,
                        asset_id=refused.asset_id, detail=refused.detail, created_at=ctx.now))


async def refusals(session: AsyncSession, ctx: Ctx, kind: str | None, limit: int,
                   cursor: str | None) -> dict[str, Any]:
    """One page of refused attempts, oldest first."""
    ctx.user.require(Role.regulator, Role.operator)
    check_limit(limit)
    query = (select(Refusal, col(Account.name)).join(Account, col(Account.id) == col(Refusal.account_id))
             .order_by(col(Refusal.id)))
    if kind:
        query = query.where(col(Refusal.kind) == kind)
    after = _refusal_cursor(cursor)
    if after is not None:
        query = query.where(col(Refusal.id) > after)
    rows = (await session.execute(query.limit(limit + 1))).all()

    def read(row: Any) -> dict[str, Any]:
        refusal, name = row
        return {"id": refusal.id, "kind": refusal.kind, "account": {"id": refusal.account_id, "name": name},
                "listing": refusal.listing_id, "asset": refusal.asset_id, "detail": refusal.detail,
                "created_at": _time(refusal.created_at)}

    return page_of(list(rows), limit, read, id_of=lambda r: f"{_REFUSAL_PREFIX}{r[0].id}")


__all__ = ["COLUMNS", "CSV_BATCH", "TradeFilters", "csv_chunks", "refusals", "search"]
