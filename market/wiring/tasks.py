"""Background work of ``market serve``: ledger integration and housekeeping.

Every API process runs these loops; they are safe to run in many processes at once
(the ledger integrator takes an advisory lock on PostgreSQL, and SQLite serialises
writers), so integration survives the loss of any process.
"""

import asyncio
import contextlib
import time
from typing import Any

from market.core import idempotency
from market.core.audit import LEDGER_KEY
from market.core.context import Ctx
from market.oversight import alerts
from market.registry import review
from market.trading import checkout, receipts, settlement
from market.core.logs import log
from market.notifications.worker import run_notifications

PURGE_EVERY = 3600.0


async def integrate_once(state: Any) -> int:
    async with state.sessionmaker() as session:
        return await state.ledger.integrate(session)


async def refresh_checkpoint(state: Any) -> None:
    """Read the latest checkpoint into memory: integrations and cosignatures made by
    other processes reach this process's readers within one round."""
    async with state.read_sessionmaker() as session:
        await state.ledger.checkpoint(session)


async def close_notices_once(state: Any) -> list[str]:
    async with state.sessionmaker() as session:
        session.info[LEDGER_KEY] = state.ledger
        done = await review.close_notice_periods(session, Ctx.system(state))
        await session.commit()
    if done:
        log.info("registered after public notice", assets=done)
    return done


async def _system_round(state: Any, work: Any, done: str, unit: str) -> int:
    """One transaction of the market's own work (``work(session, ctx)`` returns how many
    things it did), committed; logged as ``done`` when it did any."""
    async with state.sessionmaker() as session:
        session.info[LEDGER_KEY] = state.ledger
        count = await work(session, Ctx.system(state))
        await session.commit()
    if count:
        log.info(done, **{unit: count})
    return int(count)


async def expire_orders_once(state: Any) -> int:
    """Active orders whose access period ended become ``expired`` (access ends)."""
    return await _system_round(state, settlement.expire_due, "orders expired", "count")


async def close_receipts_once(state: Any) -> int:
    """Batches of delivery receipts whose window passed go on the ledger (one entry each)."""
    return await _system_round(state, receipts.close_due, "delivery receipts recorded", "batches")


async def clock_once(state: Any) -> None:
    """The market's clock: notice periods that ended, access periods that ended, batches
    of delivery receipts due, card payments of ended orders to stop or give back, alert rules."""
    await close_notices_once(state)
    await expire_orders_once(state)
    await close_receipts_once(state)
    await checkout.settle_gateway_work(state)
    await alerts.evaluate_once(state)


async def run_clock(state: Any) -> None:
    """The clock (notice periods, access periods, alert rules) every ``MARKET_CLOCK_INTERVAL``
    seconds, in a task of its own: however long a round takes, ledger integration does not
    wait for it."""
    while True:
        started = time.monotonic()
        try:
            await clock_once(state)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed round is logged and retried
            log.exception("clock round failed")
        await asyncio.sleep(max(0.0, state.settings.clock_interval - (time.monotonic() - started)))


async def run_background(state: Any) -> None:
    settings = state.settings
    last_purge = 0.0
    async with state.sessionmaker() as session:
        await state.ledger.ensure_started(session)
    async with state.sessionmaker() as session:
        tiles = await state.ledger.warm(session)
    log.info("ledger tiles loaded for proofs", tiles=tiles)
    clock = asyncio.create_task(run_clock(state))
    # Notifications: the outbox dispatcher and the webhook sender (market.notifications.worker).
    notifications = asyncio.create_task(run_notifications(state.sessionmaker, state.master_key, state.settings,
                                                          state.clock.now, state.read_sessionmaker))
    try:
        while True:
            try:
                while await integrate_once(state):
                    pass
                await refresh_checkpoint(state)
                if time.monotonic() - last_purge > PURGE_EVERY:
                    async with state.sessionmaker() as session:
                        purged = await idempotency.purge_expired(session)
                    last_purge = time.monotonic()
                    if purged:
                        log.info("purged idempotency records", count=purged)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed round is logged and retried
                log.exception("background round failed")
            await asyncio.sleep(settings.ledger_integrate_interval)
    finally:
        clock.cancel()
        notifications.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock
        with contextlib.suppress(asyncio.CancelledError):
            await notifications
