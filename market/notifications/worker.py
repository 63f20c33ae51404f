"""The background round of notifications: dispatch committed outbox rows, then send due
webhook messages; run by every ``market serve`` process (``market.wiring.tasks``)."""

import asyncio
from datetime import datetime

from sqlmodel import col, select

from market.core.db import SessionMaker
from market.core.loops import repeat
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


async def run_notifications(services: Services) -> None:
    """The dispatcher and the sender, each in a loop of its own (a stream of new events
    never starves delivery), every ``MARKET_NOTIFY_INTERVAL`` seconds when idle; until cancelled."""
    settings, now, reader = services.settings, services.clock.now, services.read_sessionmaker
    async with sender.new_client(settings) as client:
        async def dispatching() -> bool:
            if not (await _waiting(reader, now()))[0]:
                return False
            return await dispatch.dispatch_once(services.sessionmaker, now, reader=reader) == dispatch.BATCH

        async def sending() -> bool:
            if not (await _waiting(reader, now()))[1]:
                return False
            return await sender.send_due(services, client) == sender.BATCH

        loops = [asyncio.create_task(repeat("notification dispatch", settings.notify_interval, dispatching)),
                 asyncio.create_task(repeat("webhook sending", settings.notify_interval, sending))]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
