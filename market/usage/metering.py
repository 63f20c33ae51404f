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

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle
from ledger.entry import canonical as canonical_entry
from market.accounts.schemas import Role
from market.core import outbox, signing
from market.core.context import Ctx
from market.core.db import table_of
from market.core.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unprocessable
from market.core.money import Money, human
from market.core.types import rfc3339
from market.listings.models import Listing
from market.registry.models import Asset
from market.registry.tables import AssetTable, TableColumn
from market.registry.tables import loaded as described_table
from market.sandbox.engine import Column, QueryFailed, Wanted, json_value
from market.trading import documents
from market.trading.delivery import refusal
from market.trading.models import Order, UsagePeriod
from market.trading.orders import fee_of
from market.trading.states import USAGE_PERIOD, PeriodStatus
from market.usage import batches, counts
from market.usage.models import UsageCall

MAX_LOOKUP = 1000


def _plan(order: Order) -> dict[str, Any]:
    return dict(json.loads(order.plan))


@functools.lru_cache(maxsize=4096)
def _plan_of(text: str) -> dict[str, Any]:
    """A plan's JSON, parsed once per process (the result is shared: read it, never change it)."""
    return dict(json.loads(text))


def _period_at(start: datetime, plan: dict[str, Any], now: datetime) -> tuple[int, datetime, datetime]:
    """(number, start, end) of the period ``now`` falls in, counted from the order's settlement (``start``)."""
    length = timedelta(days=int(plan.get("period_days") or 30))
    number = max(0, int((now - start) / length))
    return number + 1, start + number * length, start + (number + 1) * length


def reference_of(order_id: str, period: int) -> str:
    """What the buyer quotes when paying a period's charge."""
    return f"{order_id.removeprefix('ord_').upper()[:16]}-P{period:03d}"


def charge_of(records: int, price_per_thousand: int) -> int:
    """The plan's price per 1,000 records, rounded up to the fen."""
    return math.ceil(records * price_per_thousand / 1000) if records else 0


# -- a look-up's checks: one statement -----------------------------------------------
#
# Everything a look-up must check is read in one statement built once: the order (who may
# see it, its status and end), its asset and listing (frozen, revoked), the asset's table
# description, the order's latest period (the count so far) and any billed period unpaid
# past the grace. The rules applied to it are those of every delivery (``delivery.refusal``).

_ORDERS, _ASSETS, _LISTINGS, _TABLES = table_of(Order), table_of(Asset), table_of(Listing), table_of(AssetTable)
_PERIODS = table_of(UsagePeriod)
_LATEST = _PERIODS.alias("latest")
_CHECKS = (
    select(_ORDERS.c.id, _ORDERS.c.buyer_id, _ORDERS.c.provider_id, _ORDERS.c.status, _ORDERS.c.expires_at,
           _ORDERS.c.plan, _ORDERS.c.settled_at, _ORDERS.c.created_at, _ORDERS.c.asset_id, _ORDERS.c.listing_id,
           _ORDERS.c.currency,
           _ASSETS.c.status.label("asset_status"), _ASSETS.c.frozen.label("asset_frozen"),
           _ASSETS.c.registered_revision,
           _LISTINGS.c.status.label("listing_status"), _LISTINGS.c.frozen.label("listing_frozen"),
           _TABLES.c.revision.label("table_revision"), _TABLES.c.format.label("table_format"),
           _TABLES.c.columns.label("table_columns"), _TABLES.c.epsilon_budget, _TABLES.c.sha256.label("table_sha256"),
           _LATEST.c.period.label("latest_period"), _LATEST.c.records.label("latest_records"),
           select(_PERIODS.c.period)
           .where(_PERIODS.c.order_id == _ORDERS.c.id, _PERIODS.c.status == PeriodStatus.billed,
                  _PERIODS.c.ends_at <= bindparam("overdue_from"))
           .order_by(_PERIODS.c.period).limit(1).correlate(_ORDERS).scalar_subquery().label("overdue"))
    .select_from(_ORDERS.join(_ASSETS, _ASSETS.c.id == _ORDERS.c.asset_id)
                 .outerjoin(_LISTINGS, _LISTINGS.c.id == _ORDERS.c.listing_id)
                 .outerjoin(_TABLES, _TABLES.c.asset_id == _ORDERS.c.asset_id)
                 .outerjoin(_LATEST, and_(
                     _LATEST.c.order_id == _ORDERS.c.id,
                     _LATEST.c.period == select(func.max(_PERIODS.c.period))
                     .where(_PERIODS.c.order_id == _ORDERS.c.id).correlate(_ORDERS).scalar_subquery())))
    .where(_ORDERS.c.id == bindparam("order_id")))


class _OrderSeen(NamedTuple):
    id: str
    status: str
    expires_at: datetime | None


class _HeldSeen(NamedTuple):  # an asset or a listing
    id: str
    status: str
    frozen: bool


class _TableSeen(NamedTuple):
    revision: int
    format: str
    columns: str
    epsilon_budget: float | None
    sha256: str


@dataclass(frozen=True)
class _Columns:
    """A table description's columns, parsed once per process."""

    by_name: dict[str, TableColumn]  # by lower-case name
    keys: list[str]
    shown: list[str]  # every column but the hidden ones, as described


@functools.lru_cache(maxsize=1024)
def _columns_of(text: str) -> _Columns:
    described = [TableColumn.model_validate(c) for c in json.loads(text)]
    return _Columns(by_name={c.name.lower(): c for c in described},
                    keys=sorted(c.name for c in described if c.role == "key"),
                    shown=[c.name for c in described if c.role != "hidden"])


@dataclass(frozen=True)
class _Metered:
    """A metered order a look-up may use now, with its table and the period's count so far."""

    order_id: str
    asset_id: str
    currency: str
    start: datetime
    plan: dict[str, Any]
    table: _TableSeen
    latest_period: int | None
    latest_records: int


async def _checked(ctx: Ctx, order_id: str) -> _Metered:
    """The api order ``order_id`` if the caller may look records up in it now (else 404/403/409)."""
    caller = ctx.user
    row = await ctx.services.point_reads.one(_CHECKS, {
        "order_id": order_id, "overdue_from": ctx.now - ctx.settings.postpaid_grace_delta})
    if row is None or not (caller.is_staff or caller.id in (row.buyer_id, row.provider_id)):
        raise NotFound(f"no order {order_id}")
    if row.buyer_id != caller.id:
        raise Forbidden("only the order's buyer receives its content", kind="not-buyer")
    listing = None if row.listing_status is None else _HeldSeen(row.listing_id, row.listing_status,
                                                                  row.listing_frozen)
    refused = refusal(_OrderSeen(row.id, row.status, row.expires_at),
                      _HeldSeen(row.asset_id, row.asset_status, row.asset_frozen), listing,
                      caller.account.suspended, ctx.now)
    if refused is not None:
        raise refused
    plan = _plan_of(row.plan)
    delivery = str(plan.get("delivery") or "download")
    if delivery != "api":
        raise Conflict(f"order {row.id} delivers by {delivery}, not by look-ups", kind="wrong-delivery")
    if row.table_revision is None or row.table_revision != row.registered_revision:
        raise Conflict(f"asset {row.asset_id} has no table description for its registered content",
                       kind="table-not-described")
    if row.overdue is not None:
        raise Conflict(f"the charge of period {row.overdue} of order {row.id} is unpaid past the grace period; "
                       "access stops until it is paid", kind="charge-overdue")
    table = _TableSeen(row.table_revision, row.table_format, row.table_columns, row.epsilon_budget, row.table_sha256)
    return _Metered(order_id=row.id, asset_id=row.asset_id, currency=row.currency,
                    start=row.settled_at or row.created_at, plan=plan, table=table,
                    latest_period=row.latest_period, latest_records=row.latest_records or 0)


def _key_filter(columns: _Columns, params: dict[str, str]) -> tuple[TableColumn, str]:
    keys = columns.keys
    if len(params) != 1:
        raise Unprocessable(f"give exactly one key to look up, as ?column=value (key columns: {', '.join(keys)})",
                            kind="bad-lookup", extra={"errors": [{"field": "query", "message": "one key column"}]})
    name, value = next(iter(params.items()))
    column = columns.by_name.get(name.lower())
    if column is None or column.role != "key":
        raise Unprocessable(f"{name} is not a key column; look up by {', '.join(keys) or 'none'}", kind="bad-lookup",
                            extra={"errors": [{"field": name, "message": "not a key column"}]})
    return column, value


async def lookup(ctx: Ctx, order_id: str, params: dict[str, str], limit: int) -> dict[str, Any]:
    """Rows for one key value, counted against the period's quota.

    The checks are one read; only the count is written, after DuckDB answered (so that no
    write lock is held while DuckDB works), together with the counts of the look-ups that
    finish at about the same time (``market.usage.counts``)."""
    metered = await _checked(ctx, order_id)
    columns = _columns_of(metered.table.columns)
    column, value = _key_filter(columns, params)
    number, starts, ends = _period_at(metered.start, metered.plan, ctx.now)
    used = metered.latest_records if metered.latest_period == number else 0
    quota = int(metered.plan.get("quota") or 0)
    left = quota - used
    if left <= 0:
        raise _quota_used(quota, number, ends, ctx)
    shown = columns.shown
    wanted = Wanted(Column(column.name, column.type, column.role), value, tuple(shown), min(limit, left))
    async with described_table(ctx, metered.asset_id, metered.table) as loaded:
        try:
            rows = await batches.lookup(loaded, wanted, ctx.settings.sandbox_timeout_seconds)
        except QueryFailed as exc:
            raise Unprocessable(exc.detail, kind="bad-lookup",
                                extra={"errors": [{"field": column.name, "message": exc.detail}]}) from None
    rows = [[json_value(v) for v in row] for row in rows]
    answer = {"columns": shown, "rows": rows}
    period = counts.Period(metered.order_id, number, starts, ends, metered.currency,
                           reference_of(metered.order_id, number), quota)
    counted = await counts.counts_of(ctx.services.engine).count(counts.Call(period, len(rows), {
        "at": ctx.now, "column": column.name, "records": len(rows),
        "value_sha256": hashlib.sha256(value.encode()).hexdigest(),
        "result_sha256": hashlib.sha256(signing.canonical(answer)).hexdigest()}))
    if counted is None:  # others used the quota meanwhile
        raise _quota_used(quota, number, ends, ctx)
    return {"columns": shown, "rows": rows, "period": number, "records_left": quota - counted}


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
