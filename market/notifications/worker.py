"""The background round of notifications: dispatch committed outbox rows, then send due
webhook messages; run by every ``market serve`` process (``market.wiring.tasks``)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.config import Settings
from market.core.logs import log
from market.core.outbox import OutboxEvent
from market.notifications import dispatch, sender
from market.notifications.models import WebhookMessage
from market.storage import MasterKey


async def _waiting(reader: async_sessionmaker[AsyncSession], now: datetime) -> tuple[bool, bool]:
    """Whether outbox rows wait for dispatch, and messages are due: read without the
    write lock (on SQLite an idle round then never queues behind, or holds up, writers)."""
    async with reader() as session:
        undispatched = (await session.execute(select(OutboxEvent.seq).where(
            OutboxEvent.dispatched_at.is_(None)).limit(1))).first() is not None  # type: ignore[union-attr]
        due = (await session.execute(select(WebhookMessage.id).where(
            WebhookMessage.status == "pending", WebhookMessage.next_attempt_at <= now)  # type: ignore[operator]
            .limit(1))).first() is not None
    return undispatched, due


async def _loop(name: str, interval: float, work: Callable[[], Awaitable[bool]]) -> None:
    """Run ``work`` again at once while it says there is more, else every ``interval`` seconds."""
    while True:
        started = time.monotonic()
        more = False
        try:
            more = await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed round is logged and retried
            log.exception(f"{name} round failed")
        if more:
            await asyncio.sleep(0)
            continue
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def run_notifications(sessionmaker: async_sessionmaker[AsyncSession], master_key: MasterKey,
                            settings: Settings, now: Callable[[], datetime],
                            reader: async_sessionmaker[AsyncSession] | None = None) -> None:
    """The dispatcher and the sender, each in a loop of its own (a stream of new events
    never starves delivery), every ``MARKET_NOTIFY_INTERVAL`` seconds when idle; until cancelled."""
    async with sender.new_client(settings) as client:
        async def dispatching() -> bool:
            if reader is not None and not (await _waiting(reader, now()))[0]:
                return False
            return await dispatch.dispatch_once(sessionmaker, now) == dispatch.BATCH

        async def sending() -> bool:
            if reader is not None and not (await _waiting(reader, now()))[1]:
                return False
            return await sender.send_due(sessionmaker, master_key, settings, now, client) == sender.BATCH

        loops = [asyncio.create_task(_loop("notification dispatch", settings.notify_interval, dispatching)),
                 asyncio.create_task(_loop("webhook sending", settings.notify_interval, sending))]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
