"""The background round of notifications: dispatch committed outbox rows, then send due
webhook messages; run by every ``market serve`` process (``market.wiring.tasks``)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlmodel import col, select

from market.core.db import SessionMaker
from market.core.logs import log
from market.core.outbox import OutboxEvent
from market.core.services import Services
from market.notifications import dispatch, sender
from market.notifications.models import WebhookMessage


async def _waiting(reader: SessionMaker, now: datetime) -> tuple[bool, bool]:
    """Whether outbox rows wait for dispatch, and messages are due: read without the
    write lock (on SQLite an idle round then never queues behind, or holds up, writers)."""
    async with reader() as session:
        undispatched = (await session.execute(select(col(OutboxEvent.seq)).where(
            col(OutboxEvent.dispatched_at).is_(None)).limit(1))).first() is not None
        due = (await session.execute(select(col(WebhookMessage.id)).where(
            col(WebhookMessage.status) == "pending", col(WebhookMessage.next_attempt_at) <= now)
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


async def run_notifications(services: Services) -> None:
    """The dispatcher and the sender, each in a loop of its own (a stream of new events
    never starves delivery), every ``MARKET_NOTIFY_INTERVAL`` seconds when idle; until cancelled."""
    settings, now, reader = services.settings, services.clock.now, services.read_sessionmaker
    async with sender.new_client(settings) as client:
        async def dispatching() -> bool:
            if not (await _waiting(reader, now()))[0]:
                return False
            return await dispatch.dispatch_once(services.sessionmaker, now) == dispatch.BATCH

        async def sending() -> bool:
            if not (await _waiting(reader, now()))[1]:
                return False
            return await sender.send_due(services, client) == sender.BATCH

        loops = [asyncio.create_task(_loop("notification dispatch", settings.notify_interval, dispatching)),
                 asyncio.create_task(_loop("webhook sending", settings.notify_interval, sending))]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
