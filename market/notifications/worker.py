"""The background round of notifications: dispatch committed outbox rows, then send due
webhook messages; run by every ``market serve`` process (``market.wiring.tasks``)."""

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.config import Settings
from market.core.logs import log
from market.notifications import dispatch, sender
from market.storage import MasterKey


async def notify_round(sessionmaker: async_sessionmaker[AsyncSession], master_key: MasterKey, settings: Settings,
                       now: Callable[[], datetime], client: httpx.AsyncClient) -> tuple[int, int]:
    """Dispatch everything waiting, then send what is due; returns (dispatched, sent)."""
    dispatched = sent = 0
    while count := await dispatch.dispatch_once(sessionmaker, now):
        dispatched += count
    while count := await sender.send_due(sessionmaker, master_key, settings, now, client):
        sent += count
        if count < sender.BATCH:
            break
    return dispatched, sent


async def run_notifications(sessionmaker: async_sessionmaker[AsyncSession], master_key: MasterKey,
                            settings: Settings, now: Callable[[], datetime]) -> None:
    """``notify_round`` every ``MARKET_NOTIFY_INTERVAL`` seconds, until cancelled."""
    async with sender.new_client(settings) as client:
        while True:
            started = time.monotonic()
            try:
                await notify_round(sessionmaker, master_key, settings, now, client)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed round is logged and retried
                log.exception("notification round failed")
            await asyncio.sleep(max(0.0, settings.notify_interval - (time.monotonic() - started)))
