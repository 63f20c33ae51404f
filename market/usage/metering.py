"""Metered look-ups by key (docs/API.md "Usage-controlled delivery"): quotas, periods, charges.

A metered order's time is cut into periods of the plan's ``period_days`` from its
settlement. Each look-up returns rows whose ``key`` column equals a value (never a
``hidden`` column) and counts the rows against the period's ``quota``: the count is raised
by one conditional ``UPDATE`` that fails rather than pass the quota, so concurrent calls
can never overrun it. Every call leaves a receipt (hashes of what was asked and
answered); when the period ends, the clock closes it: one confidential ``usage.period``
entry about ``order:<id>`` with the counts, the charge and the Merkle root of the period's
receipts — never one entry per look-up. The charge is the plan's price per 1,000 records,
rounded up to the fen, paid like a bank transfer against the period's reference; a charge
unpaid ``MARKET_POSTPAID_GRACE`` after its period ended stops the order's access.
"""

import hashlib
import json
import math
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle
from ledger.entry import canonical as canonical_entry
from market.accounts.schemas import Role
from market.core import outbox, signing
from market.core.context import Ctx
from market.core.db import table_of
from market.core.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from market.core.money import Money, human
from market.core.types import rfc3339
from market.registry.models import Asset
from market.registry.tables import AssetTable, TableColumn, current
from market.registry.tables import loaded as described_table
from market.sandbox.engine import Column, QueryFailed, json_value
from market.trading import documents
from market.trading.delivery import check_access, delivery_of
from market.trading.models import Order, UsagePeriod
from market.trading.orders import fee_of
from market.trading.states import USAGE_PERIOD, PeriodStatus
from market.usage.models import UsageCall

MAX_LOOKUP = 1000


def _plan(order: Order) -> dict[str, Any]:
    return dict(json.loads(order.plan))


def period_at(order: Order, now: datetime) -> tuple[int, datetime, datetime]:
    """(number, start, end) of the period ``now`` falls in, counted from the order's settlement."""
    start = order.settled_at or order.created_at
    length = timedelta(days=int(_plan(order).get("period_days") or 30))
    number = max(0, int((now - start) / length))
    return number + 1, start + number * length, start + (number + 1) * length


def reference_of(order_id: str, period: int) -> str:
    """What the buyer quotes when paying a period's charge."""
    return f"{order_id.removeprefix('ord_').upper()[:16]}-P{period:03d}"


def charge_of(records: int, price_per_thousand: int) -> int:
    """The plan's price per 1,000 records, rounded up to the fen."""
    return math.ceil(records * price_per_thousand / 1000) if records else 0


async def api_order(session: AsyncSession, ctx: Ctx, order_id: str) -> tuple[Order, Asset, AssetTable]:
    order, asset = await check_access(session, ctx, order_id)
    if delivery_of(order) != "api":
        raise Conflict(f"order {order.id} delivers by {delivery_of(order)}, not by look-ups", kind="wrong-delivery")
    table = await current(session, asset)
    if table is None:
        raise Conflict(f"asset {asset.id} has no table description for its registered content",
                       kind="table-not-described")
    overdue = (await session.execute(
        select(col(UsagePeriod.period)).where(
            col(UsagePeriod.order_id) == order.id, col(UsagePeriod.status) == PeriodStatus.billed,
            col(UsagePeriod.ends_at) <= ctx.now - ctx.settings.postpaid_grace_delta).limit(1))).scalar()
    if overdue is not None:
        raise Conflict(f"the charge of period {overdue} of order {order.id} is unpaid past the grace period; "
                       "access stops until it is paid", kind="charge-overdue")
    return order, asset, table


def _key_filter(table: AssetTable, params: dict[str, str]) -> tuple[TableColumn, str]:
    columns = {c["name"].lower(): TableColumn.model_validate(c) for c in json.loads(table.columns)}
    keys = sorted(c.name for c in columns.values() if c.role == "key")
    if len(params) != 1:
        raise Unprocessable(f"give exactly one key to look up, as ?column=value (key columns: {', '.join(keys)})",
                            kind="bad-lookup", extra={"errors": [{"field": "query", "message": "one key column"}]})
    name, value = next(iter(params.items()))
    column = columns.get(name.lower())
    if column is None or column.role != "key":
        raise Unprocessable(f"{name} is not a key column; look up by {', '.join(keys) or 'none'}", kind="bad-lookup",
                            extra={"errors": [{"field": name, "message": "not a key column"}]})
    return column, value


async def _open_period(session: AsyncSession, order: Order, now: datetime) -> None:
    """The row of the order's period at ``now``, made unless made already (two first calls at once: one row)."""
    number, starts, ends = period_at(order, now)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(UsagePeriod).values(
        order_id=order.id, period=number, starts_at=starts, ends_at=ends, calls=0, records=0, status=USAGE_PERIOD.initial, version=0,
        currency=order.currency, charge=0, fee=0, reference=reference_of(order.id, number))
        .on_conflict_do_nothing(index_elements=["order_id", "period"]))


# A call counted into its open period, never past the quota: one statement, built once. The
# version moves, so that a close racing this count loses and tries again on the clock's next round.
_PERIODS = table_of(UsagePeriod)
_COUNT = (update(_PERIODS)
          .where(_PERIODS.c.order_id == bindparam("of_order"), _PERIODS.c.period == bindparam("number"),
                 _PERIODS.c.status == PeriodStatus.open, _PERIODS.c.records + bindparam("n") <= bindparam("quota"))
          .values(calls=_PERIODS.c.calls + 1, records=_PERIODS.c.records + bindparam("n"),
                  version=_PERIODS.c.version + 1)
          .returning(_PERIODS.c.id))
_CALL = insert(table_of(UsageCall))


async def _count(session: AsyncSession, order: Order, number: int, records: int, quota: int) -> int | None:
    """The id of the period a call of ``records`` rows was counted into, or None (no room, or no row yet)."""
    found = await session.execute(_COUNT, {"of_order": order.id, "number": number, "n": records, "quota": quota})
    return found.scalar_one_or_none()


async def lookup(ctx: Ctx, order_id: str, params: dict[str, str], limit: int) -> dict[str, Any]:
    """Rows for one key value, counted against the period's quota.

    The checks and the look-up itself run on a read session; only the count is written,
    in a short transaction of its own, so that no write lock is held while DuckDB works."""
    services = ctx.services
    async with services.read_sessionmaker() as session:
        order, asset, table = await api_order(session, ctx, order_id)
        column, value = _key_filter(table, params)
        number, _, ends = period_at(order, ctx.now)
        used = (await session.execute(select(col(UsagePeriod.records)).where(
            col(UsagePeriod.order_id) == order.id, col(UsagePeriod.period) == number))).scalar() or 0
    quota = int(_plan(order).get("quota") or 0)
    left = quota - used
    if left <= 0:
        raise _quota_used(quota, number, ends, ctx)
    shown = [c["name"] for c in json.loads(table.columns) if c["role"] != "hidden"]
    engine_column = Column(column.name, column.type, column.role)
    async with described_table(ctx, asset, table) as loaded:
        try:
            rows = await anyio.to_thread.run_sync(lambda: loaded.lookup(
                engine_column, value, shown, min(limit, left), ctx.settings.sandbox_timeout_seconds))
        except QueryFailed as exc:
            raise Unprocessable(exc.detail, kind="bad-lookup",
                                extra={"errors": [{"field": column.name, "message": exc.detail}]}) from None
    rows = [[json_value(v) for v in row] for row in rows]
    answer = {"columns": shown, "rows": rows}
    async with services.sessionmaker() as session:
        period_id = await _count(session, order, number, len(rows), quota)
        if period_id is None:  # the period's first call (its row is made), or others used the quota meanwhile
            await _open_period(session, order, ctx.now)
            period_id = await _count(session, order, number, len(rows), quota)
        if period_id is None:
            raise _quota_used(quota, number, ends, ctx)
        await session.execute(_CALL, {
            "period_id": period_id, "at": ctx.now, "column": column.name, "records": len(rows),
            "value_sha256": hashlib.sha256(value.encode()).hexdigest(),
            "result_sha256": hashlib.sha256(signing.canonical(answer)).hexdigest()})
        await session.commit()
    return {"columns": shown, "rows": rows, "period": number, "records_left": quota - used - len(rows)}


def _quota_used(quota: int, period: int, ends: datetime, ctx: Ctx) -> TooManyRequests:
    wait = max(1, math.ceil((ends - ctx.now).total_seconds()))
    return TooManyRequests(f"the quota of {quota} records for period {period} is used up; it renews at "
                           f"{rfc3339(ends)}", kind="quota-exhausted", headers={"Retry-After": str(wait)},
                           extra={"quota": quota, "period_ends_at": rfc3339(ends)})


def call_receipt(order_id: str, period: int, call: UsageCall) -> bytes:
    """A call's leaf in its period's Merkle tree: canonical JSON of what was asked and answered."""
    return signing.canonical({"order": order_id, "period": period, "at": rfc3339(call.at), "column": call.column,
                              "value_sha256": call.value_sha256, "records": call.records,
                              "result_sha256": call.result_sha256})


async def close(session: AsyncSession, ctx: Ctx, period: UsagePeriod) -> None:
    """Bill an ended period: its charge and one ``usage.period`` entry. Does not commit."""
    order = await session.get_one(Order, period.order_id)
    assert period.id is not None
    calls = (await session.execute(select(UsageCall).where(col(UsageCall.period_id) == period.id)
                                   .order_by(col(UsageCall.id)))).scalars().all()
    leaves = [call_receipt(order.id, period.period, c) for c in calls]
    root = merkle.root([merkle.leaf_hash(leaf) for leaf in leaves]).hex() if leaves else None
    price = int(_plan(order)["price"]["amount"])
    period.charge = charge_of(period.records, price)
    period.fee = fee_of(period.charge, ctx.settings.fee_bps)
    period.receipts_root = root
    await USAGE_PERIOD.move(session, period, "bill" if period.charge else "close_free", ctx, closed_at=ctx.now)
    document = {"order": order.id, "period": period.period, "starts_at": rfc3339(period.starts_at),
                "ends_at": rfc3339(period.ends_at), "calls": period.calls, "records": period.records,
                "charge": {"amount": period.charge, "currency": period.currency}, "reference": period.reference,
                "merkle_root": root}
    entry, full = await documents.record(session, ctx, "usage.period", f"order:{order.id}", document)
    period.document = signing.canonical(full).decode()
    period.leaf = canonical_entry(entry)
    await session.flush()
    told = {"order": order.id, "period": period.period, "calls": period.calls, "records": period.records,
            "charge": {"amount": period.charge, "currency": period.currency}}
    if period.charge:  # the buyer pays it like a bank transfer, quoting the period's reference
        await outbox.to_account(session, ctx, "usage.charge_due", order.buyer_id, order.id, **told,
                                instructions={"account": ctx.settings.bank_account, "reference": period.reference},
                                due_by=rfc3339(period.ends_at + ctx.settings.postpaid_grace_delta))
    await outbox.to_account(session, ctx, "usage.period_billed", order.provider_id, order.id, **told)


async def close_due(session: AsyncSession, ctx: Ctx, limit: int = 500) -> int:
    """Close every open period that has ended (the clock task). Does not commit."""
    due = (await session.execute(
        select(col(UsagePeriod.id)).where(col(UsagePeriod.status) == PeriodStatus.open,
                                          col(UsagePeriod.ends_at) <= ctx.now)
        .order_by(col(UsagePeriod.ends_at)).limit(limit))).scalars().all()
    closed = 0
    for period_id in due:
        period = (await session.execute(select(UsagePeriod).where(col(UsagePeriod.id) == period_id)
                                        .with_for_update().execution_options(populate_existing=True))).scalar_one()
        if period.status == PeriodStatus.open:
            await close(session, ctx, period)
            closed += 1
    return closed


async def pay(session: AsyncSession, ctx: Ctx, order_id: str, number: int, reference: str,
              amount: Money) -> UsagePeriod:
    """The operator saw a period's charge arrive by bank transfer: it must be the charge, exactly."""
    ctx.user.require(Role.operator)
    order = await session.get(Order, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    period = (await session.execute(
        select(UsagePeriod).where(col(UsagePeriod.order_id) == order.id, col(UsagePeriod.period) == number)
        .with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    if period is None:
        raise NotFound(f"order {order_id} has no usage period {number}")
    if (amount.amount, amount.currency) != (period.charge, period.currency):
        raise Unprocessable(f"the transfer of {amount.human()} does not equal the charge "
                            f"{human(period.charge, period.currency)}", kind="amount-mismatch")
    await USAGE_PERIOD.move(session, period, "pay", ctx, paid_at=ctx.now, payment_reference=reference)
    await documents.record(session, ctx, "usage.charge_paid", f"order:{order.id}", {
        "order": order.id, "period": period.period, "reference": period.reference, "bank_reference": reference,
        "charge": {"amount": period.charge, "currency": period.currency},
        "fee": {"amount": period.fee, "currency": period.currency}, "paid_at": rfc3339(ctx.now)})
    await session.flush()
    return period


def period_view(period: UsagePeriod) -> dict[str, Any]:
    return {"period": period.period, "starts_at": rfc3339(period.starts_at), "ends_at": rfc3339(period.ends_at),
            "calls": period.calls, "records": period.records, "status": period.status,
            "charge": {"amount": period.charge, "currency": period.currency}, "reference": period.reference,
            "merkle_root": period.receipts_root, "paid_at": rfc3339(period.paid_at) if period.paid_at else None}
