"""Metered look-ups' counts, written together (group commit).

Each look-up is answered only once its count and receipt are committed, as before; but
the look-ups that finish while a transaction is being written wait for the next one and
go in it together: one transaction, one ``UPDATE`` per order and period, one insert of
all their receipts. The count never passes the quota: the ``UPDATE`` adds a group's
records only where they all fit, and when they do not, each call is tried alone, in the
order they came, so those that fit are counted and the rest refused.
"""

import asyncio
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from market.core.db import table_of
from market.trading.models import UsagePeriod
from market.trading.states import USAGE_PERIOD, PeriodStatus
from market.usage.models import UsageCall

_PERIODS = table_of(UsagePeriod)

# Calls counted into their open period, never past the quota: one statement, built once.
# The version moves, so that a close racing this count loses and tries again on the
# clock's next round.
_COUNT = (update(_PERIODS)
          .where(_PERIODS.c.order_id == bindparam("of_order"), _PERIODS.c.period == bindparam("number"),
                 _PERIODS.c.status == PeriodStatus.open, _PERIODS.c.records + bindparam("n") <= bindparam("quota"))
          .values(calls=_PERIODS.c.calls + bindparam("k"), records=_PERIODS.c.records + bindparam("n"),
                  version=_PERIODS.c.version + 1)
          .returning(_PERIODS.c.id, _PERIODS.c.records))
_RECEIPTS = insert(table_of(UsageCall))


@dataclass(frozen=True)
class Period:
    """The period a call falls in, and what its row is made with if it is the first."""

    order_id: str
    number: int
    starts_at: datetime
    ends_at: datetime
    currency: str
    reference: str
    quota: int


@dataclass
class Call:
    """One look-up to count: its period, its records and its receipt's fields."""

    period: Period
    records: int
    receipt: dict[str, Any]  # at, column, records, value_sha256, result_sha256
    counted: "asyncio.Future[int | None]" = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Counts:
    """The counts of one engine's look-ups, written by one task, a transaction at a time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = weakref.ref(engine)  # (kept in a dictionary keyed weakly by the engine)
        self._waiting: list[Call] = []
        self._writer: asyncio.Task[None] | None = None

    async def count(self, call: Call) -> int | None:
        """The period's records once ``call`` is counted and committed, or None (past the quota)."""
        self._waiting.append(call)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return await call.counted

    async def _write_all(self) -> None:
        calls: list[Call] = []
        try:
            while self._waiting:
                calls, self._waiting = self._waiting, []
                engine = self._engine()
                try:
                    if engine is None:  # (cannot happen while requests use it)
                        raise RuntimeError("the database engine was disposed")
                    async with engine.begin() as conn:
                        answers = await _write(conn, calls)
                except Exception as exc:  # noqa: BLE001 - each waiting request raises it
                    fail((call.counted for call in calls), exc)
                    continue
                for call, answer in zip(calls, answers, strict=True):
                    if not call.counted.done():
                        call.counted.set_result(answer)
                calls = []
        except BaseException as exc:  # cancelled (the loop is closing): nobody is left to answer them
            fail((call.counted for call in calls + self._waiting), exc)
            self._waiting = []
            raise


def fail(waiting: Iterable["asyncio.Future[Any]"], exc: BaseException) -> None:
    """Answer every future still waiting with ``exc`` (cancelled, when that is what ``exc`` is)."""
    for future in waiting:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)


_COUNTS: "weakref.WeakKeyDictionary[AsyncEngine, Counts]" = weakref.WeakKeyDictionary()


def counts_of(engine: AsyncEngine) -> Counts:
    if engine not in _COUNTS:
        _COUNTS[engine] = Counts(engine)
    return _COUNTS[engine]


async def _write(conn: AsyncConnection, calls: list[Call]) -> list[int | None]:
    """Count ``calls`` (in one transaction, not committed here): each one's period records after it, or None."""
    answers: dict[int, int | None] = {}
    receipts = []
    by_period: dict[Period, list[int]] = defaultdict(list)
    for i, call in enumerate(calls):
        by_period[call.period].append(i)
    # Periods in one order whoever writes (several processes, the clock closing periods), so
    # that two transactions never wait for each other's rows.
    for period, indexes in sorted(by_period.items(), key=lambda item: (item[0].order_id, item[0].number)):
        group = [calls[i] for i in indexes]
        counted = await _count(conn, period, group)
        if counted is None:  # the period's first calls: its row is made
            await _open(conn, period)
            counted = await _count(conn, period, group)
        if counted is not None:
            period_id, after = counted
            running = after - sum(call.records for call in group)
            for i, call in zip(indexes, group, strict=True):
                running += call.records
                answers[i] = running
                receipts.append({**call.receipt, "period_id": period_id})
            continue
        for i, call in zip(indexes, group, strict=True):  # not all fit: each alone, in order
            alone = await _count(conn, period, [call])
            answers[i] = None if alone is None else alone[1]
            if alone is not None:
                receipts.append({**call.receipt, "period_id": alone[0]})
    if receipts:
        await conn.execute(_RECEIPTS, receipts)
    return [answers[i] for i in range(len(calls))]


async def _count(conn: AsyncConnection, period: Period, calls: list[Call]) -> tuple[int, int] | None:
    """(period id, records after) once ``calls`` are counted, or None (no room, or no row yet)."""
    found = (await conn.execute(_COUNT, {"of_order": period.order_id, "number": period.number, "k": len(calls),
                                         "n": sum(call.records for call in calls), "quota": period.quota})).first()
    return None if found is None else (found[0], found[1])


async def _open(conn: AsyncConnection, period: Period) -> None:
    """The period's row, made unless made already (two processes' first calls at once: one row)."""
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(insert_(_PERIODS).values(
        order_id=period.order_id, period=period.number, starts_at=period.starts_at, ends_at=period.ends_at,
        calls=0, records=0, status=USAGE_PERIOD.initial, version=0, currency=period.currency, charge=0, fee=0,
        reference=period.reference).on_conflict_do_nothing(index_elements=["order_id", "period"]))
