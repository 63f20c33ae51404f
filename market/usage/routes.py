"""Usage-controlled delivery (docs/API.md): sandbox queries, metered look-ups, usage per period.

    POST /v1/orders/{id}/queries            the buyer of an active sandbox order → 201
    GET  /v1/orders/{id}/queries/{qry_id}   that buyer: the query, its result and receipt
    GET  /v1/orders/{id}/queries            the buyer, the holder, regulators (SQL and sizes)
    GET  /v1/orders/{id}/records?{key}=     the buyer of an active api order: rows, metered
    GET  /v1/orders/{id}/usage              the buyer, the holder, staff: per period
"""

import json
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from pydantic import Field
from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role, Strict
from market.core import idempotency
from market.core.context import Ctx
from market.core.errors import Forbidden, NotFound
from market.core.money import Money
from market.core.pagination import DEFAULT_LIMIT, check_limit, decode_cursor, encode_cursor
from market.core.services import Services
from market.registry.models import Asset
from market.registry.tables import current
from market.sandbox.engine import QueryFailed
from market.trading import access
from market.trading.models import UsagePeriod
from market.usage import metering, queries
from market.usage.models import SandboxQuery


class QueryCreate(Strict):
    sql: str = Field(min_length=1, max_length=10_000)
    epsilon: float | None = Field(default=None, gt=0, le=10, description="what this query spends of the order's "
                                  "budget (tables with an epsilon budget only; default MARKET_SANDBOX_EPSILON)")


async def _left(db: AsyncSession, order_id: str, budget: float | None) -> float | None:
    return None if budget is None else max(0.0, budget - await queries.spent(db, order_id))


@post("/v1/orders/{order_id:str}/queries", status_code=201, tags=["usage"],
      summary="Run an aggregate query in the sandbox (the buyer of an active sandbox order)")
async def run_query(request: Request, services: Services, db: AsyncSession, ctx: Ctx, order_id: str,
                    data: QueryCreate) -> Response[Any]:
    async def action() -> tuple[int, Any]:
        reserved = await queries.reserve(db, ctx, order_id, data.sql, data.epsilon)
        query_id, budget = reserved.query.id, reserved.table.epsilon_budget
        await db.commit()  # the epsilon is taken before DuckDB runs, outside any transaction
        try:
            rows, result = await queries.execute(ctx, reserved)
        except QueryFailed as exc:
            await queries.fail(db, ctx, query_id, exc.detail)
            await db.commit()
            raise queries.failure_error(exc) from None
        except BaseException:
            await queries.fail(db, ctx, query_id, "the market stopped the query")
            await db.commit()
            raise
        query = await queries.finish(db, ctx, query_id, result.columns, rows, result.suppressed_groups)
        return 201, await queries.view(db, services.ledger, query, await _left(db, order_id, budget),
                                       with_result=True)

    return await idempotency.run(request, db, ctx.user.id, data, action)


@get("/v1/orders/{order_id:str}/queries/{query_id:str}", tags=["usage"],
     summary="One query with its result and receipt (the order's buyer)")
async def get_query(services: Services, db: AsyncSession, ctx: Ctx, order_id: str, query_id: str) -> dict[str, Any]:
    order, query = await queries.load(db, ctx, order_id, query_id)
    table = await current(db, await db.get_one(Asset, order.asset_id))
    budget = table.epsilon_budget if table is not None else None
    return await queries.view(db, services.ledger, query, await _left(db, order_id, budget), with_result=True)


@get("/v1/orders/{order_id:str}/queries", tags=["usage"],
     summary="The queries run on an order (its buyer, the listing's holder, regulators): SQL and sizes")
async def list_queries(services: Services, db: AsyncSession, ctx: Ctx, order_id: str,
                       limit: Annotated[int, Parameter(ge=1, le=500)] = DEFAULT_LIMIT,
                       cursor: str | None = None) -> dict[str, Any]:
    caller = ctx.user
    if caller.has(Role.operator) and not caller.has(Role.regulator):
        raise Forbidden("operators do not see the queries buyers run", kind="forbidden")
    order = await access.load(db, order_id, caller)
    check_limit(limit)
    statement = select(SandboxQuery).where(col(SandboxQuery.order_id) == order.id).order_by(col(SandboxQuery.id))
    if cursor:
        statement = statement.where(col(SandboxQuery.id) > decode_cursor(cursor))
    rows = list((await db.execute(statement.limit(limit + 1))).scalars().all())
    more, rows = len(rows) > limit, rows[:limit]
    items = [await queries.view(db, services.ledger, q, None, with_result=False) for q in rows]
    return {"items": items, "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}


@get("/v1/orders/{order_id:str}/records", tags=["usage"],
     summary="Look records up by a key column (the buyer of an active api order): ?{key}={value}&limit=, metered")
async def records(request: Request, ctx: Ctx, order_id: str,
                  limit: Annotated[int, Parameter(ge=1, le=metering.MAX_LOOKUP)] = 100) -> dict[str, Any]:
    # No ``db``: the checks are one read of their own and the count is written with others'.
    params = {k: v for k, v in request.query_params.items() if k != "limit"}
    return await metering.lookup(ctx, order_id, params, limit)  # a read that is counted: its own sessions


@get("/v1/orders/{order_id:str}/usage", tags=["usage"],
     summary="Usage per period: calls, records, charge (the buyer, the listing's holder, staff)")
async def usage(db: AsyncSession, ctx: Ctx, order_id: str) -> dict[str, Any]:
    order = await access.load(db, order_id, ctx.user)
    plan = json.loads(order.plan)
    if plan.get("delivery", "download") != "api":
        raise NotFound(f"order {order_id} is not metered")
    rows = (await db.execute(select(UsagePeriod).where(col(UsagePeriod.order_id) == order.id)
                             .order_by(col(UsagePeriod.period)))).scalars().all()
    price = int(plan["price"]["amount"])
    items = []
    for period in rows:
        view = metering.period_view(period)
        if period.status == "open":  # what it comes to so far
            view["charge"]["amount"] = metering.charge_of(period.records, price)
        items.append(view)
    return {"order_id": order.id, "quota": plan.get("quota"), "price_per_1000": plan["price"], "items": items}


class ChargePayment(Strict):
    reference: str = Field(min_length=1, max_length=200, description="the bank's reference of the transfer received")
    amount: Money


@post("/v1/orders/{order_id:str}/usage/{period:int}/payment", status_code=200, tags=["usage"],
      summary="A metered period's charge received by bank transfer (operator): the amount must be the charge")
async def pay_charge(db: AsyncSession, ctx: Ctx, order_id: str, period: int, data: ChargePayment) -> dict[str, Any]:
    paid = await metering.pay(db, ctx, order_id, period, data.reference, data.amount)
    await db.commit()
    return metering.period_view(paid)


USAGE_ROUTES = [run_query, get_query, list_queries, records, usage, pay_charge]
