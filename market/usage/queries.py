"""Sandbox queries (docs/API.md "Usage-controlled delivery"): aggregates only, receipts on the ledger.

A query goes in three steps, so that no database transaction is held while DuckDB works:

1. :func:`reserve` (a write transaction): the buyer's access, the table description, the
   rules, and the epsilon the query will spend — taken from the order's budget under the
   order's lock, so two queries at once never overspend — kept as a ``running`` query.
2. :func:`execute` (no transaction): the loaded table answers; small groups suppressed,
   noise added under a budget.
3. :func:`finish` (a write transaction): the answer kept for the buyer, and one
   confidential ``usage.query`` entry about ``order:<id>`` whose salted document holds the
   hashes of the query and the result, the rule version and the epsilon spent. A query
   that failed gives its epsilon back and leaves no entry.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import canonical as canonical_entry
from ledger.log import Log
from market.core import signing
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, NotFound, Unprocessable
from market.core.ids import new_id
from market.core.types import rfc3339
from market.registry.certificates import bundle
from market.registry.models import Asset
from market.registry.tables import AssetTable, current
from market.registry.tables import loaded as described_table
from market.sandbox.engine import QueryFailed, Result, json_value
from market.sandbox.noise import add_noise
from market.sandbox.rules import RULE_VERSION, Checked, Columns, QueryNotAllowed, check
from market.trading import documents
from market.trading.delivery import check_access, delivery_of
from market.trading.models import Order
from market.usage.models import SandboxQuery
from market.usage.states import SANDBOX_QUERY, QueryStatus


class BudgetExhausted(Conflict):
    kind, title = "budget-exhausted", "Privacy budget exhausted"


@dataclass
class Reserved:
    query: SandboxQuery
    checked: Checked
    asset: Asset
    table: AssetTable


async def _lock_order(session: AsyncSession, order_id: str) -> None:
    await session.execute(select(col(Order.id)).where(col(Order.id) == order_id).with_for_update())


async def spent(session: AsyncSession, order_id: str) -> float:
    """Epsilon spent by the order's running and answered queries."""
    total = (await session.execute(
        select(func.coalesce(func.sum(col(SandboxQuery.epsilon)), 0.0))
        .where(col(SandboxQuery.order_id) == order_id, col(SandboxQuery.status) != QueryStatus.failed))).scalar_one()
    return float(total)


async def sandbox_order(session: AsyncSession, ctx: Ctx, order_id: str) -> tuple[Order, Asset, AssetTable]:
    """The caller's active sandbox order, its asset and current table description (else 404/403/409)."""
    order, asset = await check_access(session, ctx, order_id)
    if delivery_of(order) != "sandbox":
        raise Conflict(f"order {order.id} delivers by {delivery_of(order)}, not through the sandbox",
                       kind="wrong-delivery")
    table = await current(session, asset)
    if table is None:
        raise Conflict(f"asset {asset.id} has no table description for its registered content",
                       kind="table-not-described")
    return order, asset, table


async def reserve(session: AsyncSession, ctx: Ctx, order_id: str, sql: str, epsilon: float | None) -> Reserved:
    order, asset, table = await sandbox_order(session, ctx, order_id)
    roles = Columns({c["name"].lower(): c["role"] for c in json.loads(table.columns)})
    try:
        checked = check(sql, roles)
    except QueryNotAllowed as refused:
        raise Unprocessable(refused.detail, kind="query-not-allowed",
                            extra={"rule": refused.rule, "rule_version": RULE_VERSION}) from None
    spend = 0.0
    if table.epsilon_budget is not None:
        spend = epsilon if epsilon is not None else ctx.settings.sandbox_epsilon
        await _lock_order(session, order.id)
        left = table.epsilon_budget - await spent(session, order.id)
        if spend > left + 1e-9:
            raise BudgetExhausted(f"the query would spend epsilon {spend:g}; {max(left, 0):g} of the order's "
                                  f"{table.epsilon_budget:g} is left", extra={"epsilon_left": max(left, 0.0)})
    elif epsilon is not None:
        raise Unprocessable("this table has no epsilon budget: its answers are exact, give no epsilon",
                            kind="no-budget", extra={"errors": [{"field": "epsilon", "message": "not allowed"}]})
    query = SandboxQuery(id=new_id("qry"), order_id=order.id, buyer_id=order.buyer_id, sql=sql,
                         query_sha256=hashlib.sha256(sql.encode()).hexdigest(), rule_version=RULE_VERSION,
                         table_sha256=table.sha256, status=SANDBOX_QUERY.initial, epsilon=spend,
                         created_at=ctx.now)
    await SANDBOX_QUERY.create(session, query, ctx, {})
    return Reserved(query, checked, asset, table)


async def execute(ctx: Ctx, reserved: Reserved) -> tuple[list[list[Any]], Result]:
    """The answer: DuckDB's rows, suppressed and (under a budget) noised."""
    timeout = ctx.settings.sandbox_timeout_seconds
    async with described_table(ctx, reserved.asset.id, reserved.table) as loaded:
        result = await anyio.to_thread.run_sync(
            lambda: loaded.run(reserved.checked, reserved.table.min_group, timeout), abandon_on_cancel=False)
    rows = result.rows
    if reserved.table.epsilon_budget is not None:
        bounds = {c["name"].lower(): (c["bounds"][0], c["bounds"][1])
                  for c in json.loads(reserved.table.columns) if c.get("bounds")}
        rows = add_noise(result, reserved.checked, reserved.query.epsilon, bounds)
    return [[json_value(v) for v in row] for row in rows], result


async def finish(session: AsyncSession, ctx: Ctx, query_id: str, columns: list[str], rows: list[list[Any]],
                 suppressed: int) -> SandboxQuery:
    query = await session.get_one(SandboxQuery, query_id, populate_existing=True)
    answer = {"columns": columns, "rows": rows, "suppressed_groups": suppressed}
    query.result_sha256 = hashlib.sha256(signing.canonical(answer)).hexdigest()
    query.columns, query.rows = json.dumps(columns, ensure_ascii=False), json.dumps(rows, ensure_ascii=False)
    query.row_count, query.suppressed_groups = len(rows), suppressed
    await session.flush()
    await SANDBOX_QUERY.move(session, query, "answer", ctx, answered_at=ctx.now)
    document = {"order": query.order_id, "query": query.id, "query_sha256": query.query_sha256,
                "rule_version": query.rule_version, "table_sha256": query.table_sha256,
                "result_sha256": query.result_sha256, "epsilon": query.epsilon}
    entry, full = await documents.record(session, ctx, "usage.query", f"order:{query.order_id}", document)
    query.document = signing.canonical(full).decode()
    query.leaf = canonical_entry(entry)
    await session.flush()
    return query


async def fail(session: AsyncSession, ctx: Ctx, query_id: str, failure: str) -> None:
    """The query was not answered: its epsilon is given back."""
    query = await session.get_one(SandboxQuery, query_id, populate_existing=True)
    await SANDBOX_QUERY.move(session, query, "fail", ctx, failure=failure, epsilon=0.0)


def failure_error(exc: QueryFailed) -> DomainError:
    if exc.reason == "too-many-rows":
        return Unprocessable(exc.detail, kind="query-not-allowed", extra={"rule": "result-rows",
                                                                          "rule_version": RULE_VERSION})
    return Unprocessable(exc.detail, kind="query-failed", extra={"reason": exc.reason})


# -- reading ------------------------------------------------------------------------


async def load(session: AsyncSession, ctx: Ctx, order_id: str, query_id: str) -> tuple[Order, SandboxQuery]:
    """A query of the caller's order (the buyer's own; anyone else: 404)."""
    query = await session.get(SandboxQuery, query_id)
    caller = ctx.user
    if query is None or query.order_id != order_id or query.buyer_id != caller.id:
        raise NotFound(f"no query {query_id} of order {order_id}")
    order = await session.get_one(Order, order_id)
    return order, query


async def view(session: AsyncSession, log: Log, query: SandboxQuery,
               budget_left: float | None, *, with_result: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": query.id, "order_id": query.order_id, "sql": query.sql, "status": query.status,
        "rule_version": query.rule_version, "created_at": rfc3339(query.created_at),
        "row_count": query.row_count, "suppressed_groups": query.suppressed_groups,
        "epsilon_spent": query.epsilon, "failure": query.failure,
    }
    if with_result:
        shown["columns"] = json.loads(query.columns) if query.columns else None
        shown["rows"] = json.loads(query.rows) if query.rows else None
        shown["epsilon_left"] = budget_left
        shown["receipt"] = None
        if query.document is not None and query.leaf is not None:
            shown["receipt"] = await bundle(session, log, f"order:{query.order_id}", query.document, bytes(query.leaf))
    return shown



async def fail_stale(session: AsyncSession, ctx: Ctx) -> int:
    """Queries left ``running`` by a process that stopped mid-query give their epsilon back (the clock)."""
    before = ctx.now - timedelta(seconds=2 * ctx.settings.sandbox_timeout_seconds + 60)
    stale = (await session.execute(select(SandboxQuery).where(
        col(SandboxQuery.status) == QueryStatus.running, col(SandboxQuery.created_at) < before).limit(500))).scalars().all()
    for query in stale:
        await SANDBOX_QUERY.move(session, query, "fail", ctx, epsilon=0.0,
                                 failure="the market stopped before the query was answered")
    return len(stale)
