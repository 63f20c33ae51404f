"""Background work: the market's own work (``run_background``: ledger integration, the
clock, notifications, DSP callbacks, housekeeping) and an API process's view of the
ledger (``run_refresh``).

``market serve`` runs the market's own work in one process of its own (``market work``,
``market.wiring.worker``); its API processes run ``run_refresh``. The loops are also safe
to run in many processes at once (``MARKET_WORKER=inline``: the ledger integrator takes
an advisory lock on PostgreSQL, and SQLite serialises writers), so integration survives
the loss of any process.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.log import MAX_BATCH
from market.core import idempotency
from market.core.context import Ctx
from market.core.logs import log
from market.core.loops import repeat
from market.core.services import Services
from market.dsp import callbacks
from market.notifications.worker import run_notifications
from market.oversight import alerts
from market.registry import review
from market.trading import checkout, receipts, settlement
from market.usage import metering, queries

PURGE_EVERY = 3600.0
INTEGRATE_BATCH = MAX_BATCH  # entries a round's integration takes at most


async def integrate_once(services: Services) -> int:
    async with services.sessionmaker() as session:
        return await services.ledger.integrate(session, max_batch=INTEGRATE_BATCH)


async def integrate_round(services: Services) -> int:
    """A round of ledger integration: all that waits, in one transaction, and another at
    once only when that one was full. Integrating again whenever the last integration
    found anything made, under steady appends, an integration for every few entries
    that arrived meanwhile (~18 a second at 250 entries/s), each with its own signed
    checkpoint, tiles rewritten and commit; entries that arrive during a round wait for
    the next (``MARKET_LEDGER_INTEGRATE_INTERVAL``). Returns the entries integrated."""
    total = 0
    while True:
        got = await integrate_once(services)
        total += got
        if got < INTEGRATE_BATCH:
            return total


async def refresh_checkpoint(services: Services) -> None:
    """Read the latest checkpoint into memory: integrations and cosignatures made by
    other processes reach this process's readers within one round."""
    async with services.read_sessionmaker() as session:
        await services.ledger.checkpoint(session)


async def close_notices_once(services: Services) -> list[str]:
    async with services.sessionmaker() as session:
        done = await review.close_notice_periods(session, Ctx.system(services))
        await session.commit()
    if done:
        log.info("registered after public notice", assets=done)
    return done


async def _system_round(services: Services, work: Callable[[AsyncSession, Ctx], Awaitable[int]], done: str,
                        unit: str) -> int:
    """One transaction of the market's own work (``work(session, ctx)`` returns how many
    things it did), committed; logged as ``done`` when it did any."""
    async with services.sessionmaker() as session:
        count = await work(session, Ctx.system(services))
        await session.commit()
    if count:
        log.info(done, **{unit: count})
    return int(count)


async def expire_orders_once(services: Services) -> int:
    """Active orders whose access period ended become ``expired`` (access ends)."""
    return await _system_round(services, settlement.expire_due, "orders expired", "count")


async def close_receipts_once(services: Services) -> int:
    """Batches of delivery receipts whose window passed go on the ledger (one entry each)."""
    return await _system_round(services, receipts.close_due, "delivery receipts recorded", "batches")


async def close_usage_once(services: Services) -> int:
    """Metered periods that ended are billed (one ``usage.period`` entry each); sandbox queries
    a stopped process left running give their epsilon back."""
    async def work(session: AsyncSession, ctx: Ctx) -> int:
        return await metering.close_due(session, ctx) + await queries.fail_stale(session, ctx)

    return await _system_round(services, work, "usage periods billed", "periods")


async def clock_once(services: Services) -> None:
    """The market's clock: notice periods that ended, access periods that ended, batches
    of delivery receipts due, card payments of ended orders to stop or give back, alert rules."""
    await close_notices_once(services)
    await expire_orders_once(services)
    await close_receipts_once(services)
    await close_usage_once(services)
    await checkout.settle_gateway_work(services)
    await alerts.evaluate_once(services)


async def run_clock(services: Services) -> None:
    """The clock (notice periods, access periods, alert rules) every ``MARKET_CLOCK_INTERVAL``
    seconds, in a task of its own: however long a round takes, ledger integration does not
    wait for it."""
    await repeat("clock", services.settings.clock_interval, lambda: clock_once(services))


async def run_refresh(services: Services) -> None:
    """What an API process that does none of the market's own work keeps doing: the
    ledger's tiles in memory for proofs, and the latest checkpoint read every
    ``MARKET_LEDGER_INTEGRATE_INTERVAL`` (integrations made by the worker reach this
    process's readers within one round)."""
    async with services.read_sessionmaker() as session:
        tiles = await services.ledger.warm(session)
    log.info("ledger tiles loaded for proofs", tiles=tiles)
    await repeat("ledger refresh", services.settings.ledger_integrate_interval, lambda: refresh_checkpoint(services))


async def run_background(services: Services) -> None:
    last_purge = 0.0
    async with services.sessionmaker() as session:
        await services.ledger.ensure_started(session)
    async with services.sessionmaker() as session:
        tiles = await services.ledger.warm(session)
    log.info("ledger tiles loaded for proofs", tiles=tiles)
    clock = asyncio.create_task(run_clock(services))
    # Notifications: the outbox dispatcher and the webhook sender (market.notifications.worker).
    notifications = asyncio.create_task(run_notifications(services))
    # The Dataspace Protocol's callbacks to consumers (market.dsp.callbacks).
    dsp_callbacks = asyncio.create_task(callbacks.run_callbacks(services))

    async def integration() -> None:
        nonlocal last_purge
        await integrate_round(services)
        await refresh_checkpoint(services)
        if time.monotonic() - last_purge > PURGE_EVERY:
            async with services.sessionmaker() as session:
                purged = await idempotency.purge_expired(session)
            last_purge = time.monotonic()
            if purged:
                log.info("purged idempotency records", count=purged)

    try:
        await repeat("background", services.settings.ledger_integrate_interval, integration)
    finally:
        clock.cancel()
        notifications.cancel()
        dsp_callbacks.cancel()
        for task in (clock, notifications, dsp_callbacks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
