"""The messages the market owes consumers (offers, agreements, events, starts,
suspensions, completions, terminations), sent to ``callbackAddress`` + the protocol's path.

A message is written in the transaction of the step it tells of (``owe``), so a step
is never told unless it committed, and never committed untold. A message written while a
protocol request is being answered is *held* (``hold()``) and released only after the
answer has been sent (``released_after``): a consumer never hears of a process before it
has the ``201`` that names it. The answering process sends what it held itself, right
after the answer; a held message is due for the other senders only after ``HOLD_LIMIT``
(if that process died, or the consumer did not take it). Sending is at least once, retried on
``MARKET_WEBHOOK_RETRY_SCHEDULE`` whatever the consumer answered (a ``4xx`` too: a
consumer may not know the provider's pid yet); loopback and private addresses are
refused as for webhooks (``market.notifications.sender.PublicResolver``).
"""

import asyncio
import contextlib
import json
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from litestar.background_tasks import BackgroundTask
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.db import table_of
from market.core.logs import log
from market.core.services import Services
from market.dsp.models import DspCallback
from market.notifications import sender

BATCH = 200
POLL = 1.0  # seconds at least between the rounds that look for other processes' messages and retries
HOLD_LIMIT = timedelta(seconds=10)
USER_AGENT = "data-element-market-dsp/1"

_held: ContextVar[list[int] | None] = ContextVar("dsp_held_callbacks", default=None)
_wake: dict[int, asyncio.Event] = {}
_waking: "weakref.WeakSet[Any]" = weakref.WeakSet()  # transactions that wake the sender when they commit


def url_of(callback_address: str, path: str) -> str:
    return callback_address.rstrip("/") + path


async def owe(session: AsyncSession, ctx: Ctx, process_id: str, callback_address: str, path: str,
              message: dict[str, Any]) -> None:
    """Write ``message`` to be posted to ``callback_address + path`` once this transaction commits."""
    held = _held.get()
    # A held message is not due for any sender until HOLD_LIMIT: the process that answers
    # sends it itself right after the answer (``released_after``), with no write to claim it.
    row = DspCallback(process_id=process_id, url=url_of(callback_address, path), message_type=message["@type"],
                      payload=json.dumps(message, ensure_ascii=False, separators=(",", ":")),
                      held=held is not None, attempts=0, status="pending",
                      next_attempt_at=ctx.now if held is None else ctx.now + HOLD_LIMIT, created_at=ctx.now)
    session.add(row)
    await session.flush()
    if held is not None:
        assert row.id is not None
        held.append(row.id)
    else:
        # This process's sender goes at once when the step commits; other processes'
        # messages and retries are found by its rounds (``POLL``).
        transaction = session.sync_session.get_transaction()
        if transaction is not None and transaction not in _waking:
            _waking.add(transaction)
            services = ctx.services
            sa_event.listen(session.sync_session, "after_commit", lambda _: wake(services), once=True)


@contextlib.contextmanager
def hold() -> Iterator[list[int]]:
    """Messages owed within are held until ``released_after`` runs (after the answer)."""
    held: list[int] = []
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)


async def send_held(services: Services, ids: list[int]) -> None:
    """Send what an answer held, now that it is sent, in the order it was owed; a message
    that fails (or a process with no sender running) is left to the senders' schedule."""
    client = _clients.get(id(services))
    async with services.read_sessionmaker() as session:
        rows = (await session.execute(select(DspCallback).where(col(DspCallback.id).in_(ids))
                                      .order_by(col(DspCallback.id)))).scalars().all()
    claimed = [_Claimed(r.id, r.process_id, r.url, r.payload) for r in rows if r.id is not None and r.status == "pending"]
    if client is None:
        async with services.sessionmaker() as session:
            await session.execute(update(DspCallback).where(col(DspCallback.id).in_(ids))
                                  .values(next_attempt_at=services.clock.now()).execution_options(synchronize_session=False))
            await session.commit()
        return
    outcomes: list[tuple[_Claimed, int | None, str | None]] = []
    for item in claimed:
        status, error = await _post(client, item)
        outcomes.append((item, status, error))
        if status is None or not 200 <= status < 300:
            break  # the rest wait for this one's retry
    failed = {c.id for c, status, _ in outcomes if status is None or not 200 <= status < 300}
    untried = [c.id for c in claimed if c.id not in {o[0].id for o in outcomes}]
    await _recorder(services).put(outcomes, untried if failed else [])


class _Recorder:
    """Outcomes of messages sent after answers, written together: whoever comes while a
    write is under way is written by the next one (one transaction for many answers)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.outcomes: list[tuple[_Claimed, int | None, str | None]] = []
        self.due_now: list[int] = []
        self.lock = asyncio.Lock()

    async def put(self, outcomes: list[tuple["_Claimed", int | None, str | None]], due_now: list[int]) -> None:
        self.outcomes.extend(outcomes)
        self.due_now.extend(due_now)
        async with self.lock:
            outcomes, self.outcomes = self.outcomes, []
            due, self.due_now = self.due_now, []
            if outcomes:
                await _record(self.services, self.services.clock.now(), outcomes)
            if due:
                async with self.services.sessionmaker() as session:
                    await session.execute(update(DspCallback).where(col(DspCallback.id).in_(due))
                                          .values(next_attempt_at=self.services.clock.now())
                                          .execution_options(synchronize_session=False))
                    await session.commit()


_recorders: dict[int, _Recorder] = {}
_clients: dict[int, aiohttp.ClientSession] = {}


def _recorder(services: Services) -> _Recorder:
    return _recorders.setdefault(id(services), _Recorder(services))


def released_after(services: Services, held: list[int]) -> BackgroundTask | None:
    """The background task of a protocol answer: send what it held, after it is sent."""
    return BackgroundTask(send_held, services, list(held)) if held else None


def wake(services: Services) -> None:
    event = _wake.get(id(services))
    if event is not None:
        event.set()


@dataclass(frozen=True)
class _Claimed:
    id: int
    process_id: str
    url: str
    payload: str


async def _due(services: Services, now: datetime) -> bool:
    """Whether any message is due: read without the write lock, so that an idle round
    never queues behind, or holds up, the writers (SQLite has one)."""
    async with services.read_sessionmaker() as session:
        return (await session.execute(select(col(DspCallback.id)).where(
            col(DspCallback.status) == "pending", col(DspCallback.next_attempt_at) <= now).limit(1))).first() is not None


async def _claim(services: Services, now: datetime) -> list[_Claimed]:
    if not await _due(services, now):
        return []
    async with services.sessionmaker() as session:
        query = (select(DspCallback).where(
            col(DspCallback.status) == "pending", col(DspCallback.next_attempt_at) <= now)
            .order_by(col(DspCallback.id)).limit(BATCH))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=table_of(DspCallback))
        rows = (await session.execute(query)).scalars().all()
        if not rows:
            return []
        until = now + sender.lease_of(services.settings)
        await session.execute(update(DspCallback).where(col(DspCallback.id).in_([r.id for r in rows]))
                              .values(next_attempt_at=until).execution_options(synchronize_session=False))
        claimed = [_Claimed(r.id, r.process_id, r.url, r.payload) for r in rows if r.id is not None]
        await session.commit()
        return claimed


async def _post(client: aiohttp.ClientSession, item: _Claimed) -> tuple[int | None, str | None]:
    try:
        async with client.post(item.url, data=item.payload.encode(), allow_redirects=False,
                               headers={"content-type": "application/json", "user-agent": USER_AGENT}) as response:
            return response.status, None
    except TimeoutError:
        return None, "timeout"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


async def _record(services: Services, now: datetime, outcomes: list[tuple[_Claimed, int | None, str | None]]) -> None:
    schedule = services.settings.webhook_retry_delays
    async with services.sessionmaker() as session:
        rows = {r.id: r for r in (await session.execute(select(DspCallback).where(
            col(DspCallback.id).in_([c.id for c, _, _ in outcomes])))).scalars().all()}
        for claimed, status, error in outcomes:
            row = rows.get(claimed.id)
            if row is None or row.status != "pending":
                continue
            row.attempts += 1
            row.last_status, row.last_error = status, error
            if status is not None and 200 <= status < 300:
                row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
            elif row.attempts > len(schedule):
                row.status, row.next_attempt_at = "failed", None
            else:
                row.next_attempt_at = now + schedule[row.attempts - 1]
            session.add(row)
        await session.commit()


async def send_due(services: Services, client: aiohttp.ClientSession) -> int:
    """Post one batch of due messages concurrently; returns how many were tried. A
    process's messages go out in the order they were owed (one at a time per process)."""
    now = services.clock.now
    claimed = await _claim(services, now())
    if not claimed:
        return 0
    by_process: dict[str, list[_Claimed]] = {}
    for item in claimed:
        by_process.setdefault(item.process_id, []).append(item)
    outcomes: list[tuple[_Claimed, int | None, str | None]] = []

    async def in_order(items: list[_Claimed]) -> None:
        for item in items:
            status, error = await _post(client, item)
            outcomes.append((item, status, error))
            if error is not None or status is None or not 200 <= status < 300:
                break  # what follows waits for this one's retry

    await asyncio.gather(*(in_order(items) for items in by_process.values()))
    await _record(services, now(), outcomes)
    tried = {c.id for c, _, _ in outcomes}
    untried = [c.id for c in claimed if c.id not in tried]
    if untried:  # held back behind a failed message: due again with it
        async with services.sessionmaker() as session:
            await session.execute(update(DspCallback).where(col(DspCallback.id).in_(untried))
                                  .values(next_attempt_at=now()).execution_options(synchronize_session=False))
            await session.commit()
    return len(claimed)


async def run_callbacks(services: Services) -> None:
    """Send owed messages every ``MARKET_NOTIFY_INTERVAL`` seconds, or at once when woken; until cancelled."""
    event = _wake.setdefault(id(services), asyncio.Event())
    interval = max(POLL, services.settings.notify_interval)
    try:
        async with sender.new_client(services.settings) as client:
            _clients[id(services)] = client
            async def round_() -> bool:
                event.clear()
                return await send_due(services, client) == BATCH

            async def waiting() -> None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), interval)

            while True:
                await repeat_once(round_)
                await waiting()
    finally:
        _wake.pop(id(services), None)
        _clients.pop(id(services), None)
        _recorders.pop(id(services), None)


async def repeat_once(work: Any) -> None:
    """One round of ``work`` as ``market.core.loops.repeat`` runs it (a failure logged, not raised)."""
    task = asyncio.current_task()
    try:
        while await work() is True:
            await asyncio.sleep(0)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - logged; the next round retries
        if task is not None and task.cancelling():
            raise asyncio.CancelledError from None
        log.exception("dsp callbacks round failed")


__all__ = ["hold", "owe", "released_after", "send_held", "run_callbacks", "send_due", "url_of", "wake"]
