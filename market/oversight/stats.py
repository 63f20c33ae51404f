"""Trade statistics for the regulator (docs/API.md "Oversight"): ``trade_stats`` and
``trade_parties`` kept in the transaction that settles or refunds an order, and the
overview read from them alone — never from ``orders``, so it costs the same however
many trades there are.

Counting (``count_settled``, ``count_refunded``; services, never commit):

- A settlement adds 1 to ``orders`` and the price to ``value`` on the UTC day of
  ``settled_at``, and records its buyer and provider in ``trade_parties`` for that day
  and currency.
- A refund adds 1 to ``refunds`` and the price to ``refunded_value`` on the UTC day of
  ``refunded_at``: refunds count when they happen, as in the provider statements, so a
  closed day never changes. The settlement stays counted on its own day.
- The dimensions are those of the contract (交易凭证) written at settlement: the
  asset's category and grade then, and the provider's region — the 行政区划 code,
  characters 3–8 of its USCC (``uscc[2:8]``; ``""`` for a provider without one). A
  refund is counted under the same dimensions as the settlement it undoes.
- ``stat_key`` is the one keying function (the bench seeds with it too). Every write is
  an upsert (``INSERT … ON CONFLICT``), so concurrent settlements of the same key add up.
- The counters of a key are kept in shard rows (``market.oversight.models.SHARDS``): on
  PostgreSQL a settlement adds to the row of its connection's shard, so settlements at
  the same moment (every one of a day adds to that day's total) do not queue on one
  row's lock until each commits. Every read sums a key's shards.
- Each count also goes to the day totals (``trade_days``) and to the monthly rollups
  (``trade_stats_monthly``, ``trade_parties_monthly``). A period reads its whole months
  from the rollups and only its partial months at the edges from the day rows
  (``split``), so the rows read grow with the number of months, not of days.

The overview (``overview``), for ``from`` ≤ day < ``to`` (UTC dates, ``to`` exclusive):

.. code-block:: text

    {"from": "2026-03-01", "to": "2026-04-01", "currency": null,
     "totals": {"registrations": 12,                     # assets registered in the period
                "by_currency": {"CNY": {"orders": 40, "value": 3520000, "refunds": 2,
                                        "refunded_value": 176000, "buyers": 17, "providers": 9}}},
     "series": {"day":      {"CNY": [{"key": "2026-03-01", "orders": …, "value": …,
                                      "refunds": …, "refunded_value": …}, …]},
                "category": {"CNY": [{"key": "transport", …}, …]},
                "grade":    {"CNY": [{"key": "general", …}, …]},
                "provider": {"CNY": [{"key": "acct_…", …}, …]},
                "region":   {"CNY": [{"key": "440300", "name_zh": "深圳市", …}, …]}}}

Money is in minor units and never summed across currencies: every total and series is
per currency (``?currency=`` keeps one). Days are in date order and only days with
activity appear; the other series are by ``value`` descending, then key. ``buyers`` and
``providers`` are distinct accounts over the whole period (not summed over days).
Registrations are not money and are counted once for the period. Each ``region`` entry
also names its division (``name_zh``, from ``market.registry.regions``; null for ``""``
and for a code the market does not know).

Categories are ids of the closed list (``market.registry.categories``). A contract
written before the list was closed may name another value: it is counted under
``categories.canonical`` of it, as migration 0020 re-keyed the counts made before.
"""

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, func, literal_column, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core import memo
from market.core.context import Ctx
from market.core.db import run, table_of
from market.core.errors import Unprocessable
from market.oversight.models import SHARDS, TradeDay, TradeParty, TradePartyMonth, TradeStat, TradeStatMonth
from market.registry import categories, regions
from market.registry.models import Asset
from market.trading.models import Order, UsagePeriod
from market.usage.models import SandboxQuery

KEY_COLUMNS = ("day", "currency", "category", "grade", "provider_id", "region")
MEASURES = ("orders", "value", "refunds", "refunded_value")
DIMENSIONS = ("category", "grade", "provider", "region")
DEFAULT_DAYS = 30
MAX_DAYS = 3700  # about ten years


# -- keys ----------------------------------------------------------------------------------


def day_of(moment: datetime) -> str:
    """The UTC calendar day of ``moment``: ``YYYY-MM-DD``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def region_of(uscc: str | None) -> str:
    """The 行政区划 code in a USCC: characters 3–8 (GB 32100-2015); ``""`` without one."""
    return uscc[2:8] if uscc and len(uscc) == 18 else ""


@dataclass(frozen=True)
class Dimensions:
    """What a trade is counted under, apart from the day."""

    currency: str
    category: str
    grade: str
    provider_id: str
    region: str


def stat_key(day: str, dims: Dimensions) -> dict[str, str]:
    """The ``trade_stats`` key of a trade counted on ``day``."""
    return {"day": day, "currency": dims.currency, "category": dims.category, "grade": dims.grade,
            "provider_id": dims.provider_id, "region": dims.region}


async def dimensions(session: AsyncSession, order: Order) -> Dimensions:
    """The order's dimensions as its contract recorded them at settlement (the asset and
    the provider as they were then); the live rows for an order without a contract."""
    if order.contract:
        contract = json.loads(order.contract)
        asset, provider = contract["asset"], contract["provider"]
        uscc = provider.get("uscc")
        if uscc is None and provider.get("kind") != "individual":
            account = await session.get(Account, order.provider_id)
            uscc = account.uscc if account else None
        return Dimensions(order.currency, categories.canonical(asset["category"]), asset["grade"], order.provider_id,
                          region_of(uscc))
    row = await session.get_one(Asset, order.asset_id)
    account = await session.get(Account, order.provider_id)
    return Dimensions(order.currency, row.category, row.grade, order.provider_id,
                      region_of(account.uscc if account else None))


# -- counting (in the settling and refunding transactions) ---------------------------------


@functools.cache
def _upsert_statement(dialect: str, table: Table, conflict: tuple[str, ...], added: tuple[str, ...]) -> Any:
    """``INSERT … ON CONFLICT (conflict, shard) DO UPDATE`` adding the ``added`` measures,
    with a bound parameter per column: built once per shape, so each call is a cached
    statement and a dict of values (building the statement anew per call cost more than
    running it). The shard: on PostgreSQL the connection's own (``SHARDS``: concurrent
    settlements do not queue on one row), on SQLite 0, the column's default."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values: dict[str, Any] = {c.name: bindparam(c.name, type_=c.type) for c in table.c if c.name not in ("id", "shard")}
    if dialect == "postgresql":
        values["shard"] = func.pg_backend_pid() % SHARDS
    stmt = insert(table).values(values)
    return stmt.on_conflict_do_update(index_elements=[*conflict, "shard"],
                                      set_={m: table.c[m] + stmt.excluded[m] for m in added})


@functools.cache
def _party_statement(dialect: str, table: Table, first: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values({c.name: bindparam(c.name, type_=c.type) for c in table.c if c.name != "id"})
    return stmt.on_conflict_do_nothing(index_elements=[first, "currency", "role", "account_id"])


async def _upsert(session: AsyncSession, table: Table, key: dict[str, str], conflict: list[str],
                  amounts: dict[str, int]) -> None:
    stmt = _upsert_statement(session.get_bind().dialect.name, table, tuple(conflict), tuple(amounts))
    await run(session, stmt, {**key, **{m: 0 for m in MEASURES}, **amounts})


async def _add(session: AsyncSession, key: dict[str, str], **amounts: int) -> None:
    """Add ``amounts`` under ``key`` to the day rows, the day totals and the month rollup."""
    await _upsert(session, table_of(TradeStat), key, list(KEY_COLUMNS), amounts)
    await _upsert(session, table_of(TradeDay), {"day": key["day"], "currency": key["currency"]},
                  ["day", "currency"], amounts)
    monthly = {**{k: v for k, v in key.items() if k != "day"}, "month": key["day"][:7]}
    await _upsert(session, table_of(TradeStatMonth), monthly, ["month", *KEY_COLUMNS[1:]], amounts)


async def _parties(session: AsyncSession, day: str, currency: str, accounts: dict[str, str]) -> None:
    """Name each of ``accounts`` (role → account id) among the day's and the month's parties."""
    dialect = session.get_bind().dialect.name
    for table, when, first in ((table_of(TradeParty), day, "day"), (table_of(TradePartyMonth), day[:7], "month")):
        await run(session, _party_statement(dialect, table, first), [
            {first: when, "currency": currency, "role": role, "account_id": account}
            for role, account in accounts.items()])


@functools.cache
def _settled_at_once() -> tuple[Any, tuple[Any, ...]]:
    """PostgreSQL: a settlement's statistics writes (``_add``'s three upserts, the day's
    and the month's parties) as one statement of data-modifying CTEs: one round trip, not
    five. The upserts share the key's and the measures' parameters by name (they write the
    same values); returns the statement and its seven inserts."""
    added = ("orders", "value")
    stat = _upsert_statement("postgresql", table_of(TradeStat), tuple(KEY_COLUMNS), added)
    day = _upsert_statement("postgresql", table_of(TradeDay), ("day", "currency"), added)
    month = _upsert_statement("postgresql", table_of(TradeStatMonth), ("month", *KEY_COLUMNS[1:]), added)
    # One single-row insert per party and table: SQLAlchemy never caches a multi-row
    # VALUES statement, and compiling this one anew cost more than running it.
    parties = [postgresql.insert(table).values({
        first: bindparam(first, type_=table.c[first].type), "currency": bindparam("currency", type_=table.c.currency.type),
        "role": role, "account_id": bindparam(f"{role}_account", type_=table.c.account_id.type),
    }).on_conflict_do_nothing(index_elements=[first, "currency", "role", "account_id"])
        for table, first in ((table_of(TradeParty), "day"), (table_of(TradePartyMonth), "month"))
        for role in ("buyer", "provider")]
    inserts = (stat, day, month, *parties)
    ctes = [insert.returning(literal_column("1")).cte(f"w{i}") for i, insert in enumerate(inserts)]
    return select(literal_column("1")).add_cte(*ctes), inserts


async def count_settled(session: AsyncSession, order: Order) -> None:
    """Count the settlement of ``order`` (just made ``active``, ``settled_at`` set)."""
    assert order.settled_at is not None
    day = day_of(order.settled_at)
    dims = await dimensions(session, order)
    key = stat_key(day, dims)
    if session.get_bind().dialect.name != "postgresql":
        await _add(session, key, orders=1, value=order.price)
        await _parties(session, day, order.currency, {"buyer": order.buyer_id, "provider": order.provider_id})
        return
    statement, inserts = _settled_at_once()
    for insert in inserts:  # what db.run notes of a DML statement, for the memos
        memo.note_statement(session.sync_session, insert)
    await run(session, statement, {**key, "month": day[:7], **{m: 0 for m in MEASURES}, "orders": 1,
                                   "value": order.price, "buyer_account": order.buyer_id,
                                   "provider_account": order.provider_id})


async def count_refunded(session: AsyncSession, order: Order) -> None:
    """Count the refund of ``order`` (just made ``refunded``, ``refunded_at`` set)."""
    assert order.refunded_at is not None
    dims = await dimensions(session, order)
    await _add(session, stat_key(day_of(order.refunded_at), dims), refunds=1, refunded_value=order.price)


async def rebuild_rollups(session: AsyncSession) -> None:
    """Rewrite the day totals and monthly rollups from the day rows (after a bulk load)."""
    from sqlalchemy import delete, text

    for model in (TradeDay, TradeStatMonth, TradePartyMonth):
        await session.execute(delete(model))
    await session.execute(text(
        "INSERT INTO trade_days (day, currency, orders, value, refunds, refunded_value) "
        "SELECT day, currency, SUM(orders), SUM(value), SUM(refunds), SUM(refunded_value) FROM trade_stats "
        "GROUP BY day, currency"))
    await session.execute(text(
        "INSERT INTO trade_stats_monthly (month, currency, category, grade, provider_id, region, orders, value, "
        "refunds, refunded_value) SELECT SUBSTR(day, 1, 7), currency, category, grade, provider_id, region, "
        "SUM(orders), SUM(value), SUM(refunds), SUM(refunded_value) FROM trade_stats "
        "GROUP BY SUBSTR(day, 1, 7), currency, category, grade, provider_id, region"))
    await session.execute(text(
        "INSERT INTO trade_parties_monthly (month, currency, role, account_id) "
        "SELECT DISTINCT SUBSTR(day, 1, 7), currency, role, account_id FROM trade_parties"))


def split(since: date, to: date) -> tuple[list[tuple[date, date]], tuple[str, str] | None]:
    """``[since, to)`` as day ranges at its edges (partial months) and a range of whole
    months ``[first, last)`` as ``YYYY-MM`` (None when no month is whole)."""
    first = since if since.day == 1 else (since.replace(day=1) + timedelta(days=32)).replace(day=1)
    last = to.replace(day=1)
    if first >= last:
        return [(since, to)], None
    edges = [(a, b) for a, b in ((since, first), (last, to)) if a < b]
    return edges, (first.strftime("%Y-%m"), last.strftime("%Y-%m"))


# -- the overview --------------------------------------------------------------------------


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{name} must be a date YYYY-MM-DD (UTC), got {value!r}", kind="bad-date") from None


def period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """``from`` (inclusive) and ``to`` (exclusive) as dates. Defaults: ``to`` the day after
    ``today`` (so today is in), ``from`` 30 days before ``to``."""
    to = parse_day(end, "to") or today + timedelta(days=1)
    since = parse_day(start, "from") or to - timedelta(days=DEFAULT_DAYS)
    if since >= to:
        raise Unprocessable(f"from ({since}) must be before to ({to}); to is exclusive", kind="bad-period")
    if (to - since).days > MAX_DAYS:
        raise Unprocessable(f"a period is at most {MAX_DAYS} days", kind="bad-period")
    return since, to


def check_currency(currency: str | None) -> str | None:
    if currency is None or currency == "":
        return None
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha() or not currency.isupper():
        raise Unprocessable(f"currency must be an ISO 4217 code like CNY, got {currency!r}", kind="bad-currency")
    return currency


def moment(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _measures(row: Any) -> dict[str, int]:
    return {m: int(getattr(row, m) or 0) for m in MEASURES}


async def overview(session: AsyncSession, ctx: Ctx, start: str | None = None, end: str | None = None,
                   currency: str | None = None) -> dict[str, Any]:
    """Totals and series for the period (shape in the module docstring). Regulators and
    operators only. Three range scans of the pre-aggregated tables and one count of
    assets: the day series (by day and currency), everything else (by the non-day key,
    days summed in the database, then folded per dimension here), the distinct parties."""
    ctx.user.require(Role.regulator, Role.operator)
    since, to = period(start, end, ctx.now.astimezone(UTC).date())
    currency = check_currency(currency)
    lo, hi = since.isoformat(), to.isoformat()
    edges, months = split(since, to)

    def where(model: Any, column: Any, ranges: list[tuple[str, str]]) -> list[Any]:
        found = [or_(*(and_(column >= a, column < b) for a, b in ranges))]
        return found + ([model.currency == currency] if currency is not None else [])

    day_ranges = [(a.isoformat(), b.isoformat()) for a, b in edges]
    day_sums = [func.sum(getattr(TradeDay, m)).label(m) for m in MEASURES]
    by_day = (await session.execute(select(col(TradeDay.day), col(TradeDay.currency), *day_sums)
                                    .where(*where(TradeDay, col(TradeDay.day), [(lo, hi)]))
                                    .group_by(col(TradeDay.day), col(TradeDay.currency))
                                    .order_by(col(TradeDay.day), col(TradeDay.currency)))).all()
    # Whole months from the rollup, the partial months at the edges from the day rows.
    parts = []
    if day_ranges:
        parts.append(select(col(TradeStat.currency), col(TradeStat.category), col(TradeStat.grade), col(TradeStat.provider_id),
                            col(TradeStat.region), *(getattr(TradeStat, m) for m in MEASURES))
                     .where(*where(TradeStat, col(TradeStat.day), day_ranges)))
    if months is not None:
        parts.append(select(col(TradeStatMonth.currency), col(TradeStatMonth.category), col(TradeStatMonth.grade),
                            col(TradeStatMonth.provider_id), col(TradeStatMonth.region),
                            *(getattr(TradeStatMonth, m) for m in MEASURES))
                     .where(*where(TradeStatMonth, col(TradeStatMonth.month), [months])))
    rows = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    by_key = (await session.execute(select(rows.c.currency, rows.c.category, rows.c.grade, rows.c.provider_id,
                                           rows.c.region, *(func.sum(rows.c[m]).label(m) for m in MEASURES))
                                    .group_by(rows.c.currency, rows.c.category, rows.c.grade, rows.c.provider_id,
                                              rows.c.region))).all()
    who = []
    if day_ranges:
        who.append(select(col(TradeParty.currency), col(TradeParty.role), col(TradeParty.account_id))
                   .where(*where(TradeParty, col(TradeParty.day), day_ranges)))
    if months is not None:
        who.append(select(col(TradePartyMonth.currency), col(TradePartyMonth.role), col(TradePartyMonth.account_id))
                   .where(*where(TradePartyMonth, col(TradePartyMonth.month), [months])))
    people = union_all(*who).subquery() if len(who) > 1 else who[0].subquery()
    parties = (await session.execute(select(people.c.currency, people.c.role,
                                            func.count(func.distinct(people.c.account_id)))
                                     .group_by(people.c.currency, people.c.role))).all()
    registrations = (await session.execute(select(func.count()).select_from(Asset).where(
        col(Asset.registered_at) >= moment(since), col(Asset.registered_at) < moment(to)))).scalar_one()

    totals: dict[str, dict[str, int]] = {}
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in by_day:
        values = _measures(row)
        days[row.currency].append({"key": row.day, **values})
        total = totals.setdefault(row.currency, {**{m: 0 for m in MEASURES}, "buyers": 0, "providers": 0})
        for m in MEASURES:
            total[m] += values[m]
    folded: dict[str, dict[str, dict[str, dict[str, int]]]] = {d: defaultdict(dict) for d in DIMENSIONS}
    for row in by_key:
        values = _measures(row)
        for dim, key in (("category", row.category), ("grade", row.grade), ("provider", row.provider_id),
                         ("region", row.region)):
            slot = folded[dim][row.currency].setdefault(key, {m: 0 for m in MEASURES})
            for m in MEASURES:
                slot[m] += values[m]
    for cur, role, count in parties:
        total = totals.setdefault(cur, {**{m: 0 for m in MEASURES}, "buyers": 0, "providers": 0})
        total["buyers" if role == "buyer" else "providers"] = int(count)
    series: dict[str, Any] = {"day": dict(days)}
    for dim in DIMENSIONS:
        series[dim] = {cur: [{"key": k, **v} for k, v in sorted(keys.items(), key=lambda kv: (-kv[1]["value"], kv[0]))]
                       for cur, keys in folded[dim].items()}
    for entries in series["region"].values():
        for entry in entries:
            entry["name_zh"] = regions.name(entry["key"])
    return {"from": lo, "to": hi, "currency": currency,
            "totals": {"registrations": int(registrations), "by_currency": totals}, "series": series,
            "usage": await _usage(session, moment(since), moment(to), currency)}


async def _usage(session: AsyncSession, since: Any, to: Any, currency: str | None) -> dict[str, Any]:
    """Usage-controlled delivery in the period (read directly: small tables, not rolled up): sandbox
    queries answered and epsilon spent; metered periods ended in it, their look-ups, records and charges."""
    queries = (await session.execute(
        select(func.count(), func.coalesce(func.sum(col(SandboxQuery.epsilon)), 0.0))
        .where(col(SandboxQuery.status) == "answered", col(SandboxQuery.answered_at) >= since,
               col(SandboxQuery.answered_at) < to))).one()
    ended = [col(UsagePeriod.status) != "open", col(UsagePeriod.ends_at) >= since, col(UsagePeriod.ends_at) < to]
    if currency is not None:
        ended.append(col(UsagePeriod.currency) == currency)
    periods = (await session.execute(
        select(col(UsagePeriod.currency), func.count(), func.sum(col(UsagePeriod.calls)),
               func.sum(col(UsagePeriod.records)), func.sum(col(UsagePeriod.charge)),
               func.sum(case((col(UsagePeriod.status) == "paid", col(UsagePeriod.charge)), else_=0)))
        .where(*ended).group_by(col(UsagePeriod.currency)))).all()
    return {"sandbox_queries": int(queries[0]), "epsilon_spent": float(queries[1]),
            "metered": {cur: {"periods": int(n), "lookups": int(calls or 0), "records": int(records or 0),
                              "charged": int(charged or 0), "paid": int(paid or 0)}
                        for cur, n, calls, records, charged, paid in periods}}


__all__ = ["Dimensions", "count_refunded", "count_settled", "day_of", "dimensions", "overview", "period",
           "rebuild_rollups", "region_of", "split", "stat_key"]
