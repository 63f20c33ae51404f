"""Oversight statistics and trade search (docs/API.md "Oversight"): regulators and operators;
providers and buyers 403, anonymous 401.

    GET /v1/oversight/overview   ?from=&to=&currency=   totals and series (market.oversight.stats)
    GET /v1/oversight/trades     filters, paged JSON; Accept: text/csv streams every row
    GET /v1/oversight/refusals   ?kind=                 refused ordering attempts
"""

from datetime import date
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import Parameter
from litestar.response import Stream
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from market.core.services import Services
from market.oversight import stats, trades

DateParam = Parameter(description="a UTC date YYYY-MM-DD")
CSV = "text/csv"


@get("/v1/oversight/overview", tags=["oversight"],
     summary="Trade totals and series by day, category, grade, provider and region (regulator, operator)")
async def oversight_overview(
        db: AsyncSession, ctx: Ctx,
        start: Annotated[date | None, Parameter(query="from", description="UTC date YYYY-MM-DD, inclusive; "
                                                                          "default 30 days before to")] = None,
        end: Annotated[date | None, Parameter(query="to", description="UTC date YYYY-MM-DD, exclusive; "
                                                                      "default tomorrow (today included)")] = None,
        currency: Annotated[str | None, Parameter(pattern=r"^[A-Z]{3}$",
                                                  description="keep one currency (ISO 4217)")] = None,
) -> dict[str, Any]:
    # Typed here, so that every bad one of them is named in one answer (market.web.params).
    return await stats.overview(db, ctx, start.isoformat() if start else None, end.isoformat() if end else None,
                                currency)


@get("/v1/oversight/trades", tags=["oversight"],
     summary="Search trades (regulator, operator): paged JSON, or every row as CSV with Accept: text/csv")
async def oversight_trades(
        request: Request, services: Services, db: AsyncSession, ctx: Ctx,
        start: Annotated[str | None, Parameter(query="from", description="UTC date YYYY-MM-DD on created_at, "
                                                                         "inclusive")] = None,
        end: Annotated[str | None, Parameter(query="to", description="UTC date YYYY-MM-DD, exclusive")] = None,
        provider: str | None = None, buyer: str | None = None, category: str | None = None,
        grade: str | None = None, status: str | None = None,
        alerted: Annotated[str | None, Parameter(description="true or false")] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT, cursor: str | None = None,
) -> Any:
    ctx.user.require(Role.regulator, Role.operator)
    filters = trades.TradeFilters(start, end, provider, buyer, category, grade, status, alerted)
    if CSV in request.headers.get("accept", "").lower():
        return Stream(trades.csv_chunks(services.read_sessionmaker, filters, trades.CSV_BATCH),
                      headers={"content-type": "text/csv; charset=utf-8",
                               "content-disposition": 'attachment; filename="trades.csv"'})
    return Response(await trades.search(db, ctx, filters, limit, cursor))


@get("/v1/oversight/refusals", tags=["oversight"],
     summary="Refused ordering attempts: export, core data, self-dealing (regulator, operator)")
async def oversight_refusals(db: AsyncSession, ctx: Ctx, kind: str | None = None,
                             limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                             cursor: str | None = None) -> dict[str, Any]:
    return await trades.refusals(db, ctx, kind, limit, cursor)


STATS_ROUTES = [oversight_overview, oversight_trades, oversight_refusals]

__all__ = ["STATS_ROUTES"]
