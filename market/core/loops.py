"""``repeat``: the one loop every background job of a process runs in (ledger
integration, the clock, notifications)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from market.core.logs import log

__all__ = ["repeat"]


async def repeat(name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``interval`` seconds, at once again when it returns True (more
    is waiting), until cancelled. A failed round is logged and retried.

    Cancellation always ends the loop, even when a library turned the ``CancelledError``
    into another exception on its way up (a database driver closing its connection): the
    task is still cancelling, and the loop stops rather than retry forever, which would
    hang the process's shutdown while it waits for its background work to end."""
    task = asyncio.current_task()
    while True:
        started = time.monotonic()
        more = False
        try:
            more = await work() is True
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed round is logged and retried
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            log.exception(f"{name} round failed")
        if more:
            await asyncio.sleep(0)
            continue
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
