"""The market's own work in a process of its own: ``market work``, and the one that
``market serve`` keeps running beside its API processes (``MARKET_WORKER=process``).

Ledger integration, the clock (notice periods, access periods, receipts, alert rules),
notifications and DSP callbacks (``tasks.run_background``) then take no time from the
event loops that answer requests; the API processes only keep their view of the ledger
fresh (``tasks.run_refresh``). Every write the worker makes goes through sessions, so the
API processes' memories see it as they see each other's (``market.core.memo``).

``Supervisor`` (in ``market serve``) starts the worker and starts it again if it ends; the
worker ends when ``market serve`` does, even when that process is killed outright: on
Linux the kernel signals it (``PR_SET_PDEATHSIG``), and everywhere it watches its parent.
"""

import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping

from market.core.config import Settings
from market.core.logs import log

RESTART_AFTER = 1.0  # seconds before a worker that ended is started again
STOP_WAIT = 30.0  # seconds a worker has to finish its round when asked to stop
PARENT_CHECK = 1.0  # seconds between two looks at whether the parent is still there


def _end_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when the thread that started it
    ends (the supervisor's, which lives as long as ``market serve``). Set here, after
    exec, rather than between fork and exec, where a threaded parent must not run Python."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    """One ``market work`` process, started again after ``RESTART_AFTER`` whenever it ends,
    until ``stop()``. The thread that starts it lives as long as the worker does (the
    kernel's parent-death signal follows the thread that forked)."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        self._environment = dict(environment)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="market-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = subprocess.Popen(  # noqa: S603 - our own command
                    [sys.executable, "-m", "market.tools.cli", "work", "--parent", str(os.getpid())],
                    env=self._environment)
            code = self._process.wait()
            if not self._stopping.is_set():
                log.error("the worker process ended; starting it again", exit_code=code, after=RESTART_AFTER)
                self._stopping.wait(RESTART_AFTER)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.error("the worker process did not stop; killed", waited=STOP_WAIT)
                process.kill()
                process.wait()
        self._thread.join(timeout=5)


# A served process collects cycles after this many new objects (Python's default, 700,
# ran a collection every few requests under load).
YOUNG_COLLECTION = 10_000


def quiet_collector() -> None:
    """What a served process does once started: what it holds so far is frozen out of the
    cycle collector's full collections (``gc.freeze``), which otherwise walk the whole
    heap of modules, mappers and routes (~125 ms each under load, the event loop stopped),
    and young collections run less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


async def work(settings: Settings, parent: int | None = None) -> None:
    """Run the market's own work until SIGTERM or SIGINT (or, with ``parent``, until that
    process is gone), then let the round in progress finish (at most ``STOP_WAIT``)."""
    from market.wiring.services import close_services, open_services
    from market.wiring.tasks import run_background

    if parent is not None:
        _end_with_parent()
        if os.getppid() != parent:  # it ended before the signal was asked for
            log.warning("the process that started this worker is gone; not starting", parent=parent)
            return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = await open_services(settings)
    quiet_collector()  # as a served API process does
    try:
        background = asyncio.create_task(run_background(services))
        watch = asyncio.create_task(_watch_parent(parent, stop)) if parent else None
        log.info("worker started", parent=parent)
        await stop.wait()
        for task in (background, watch):
            if task is not None:
                task.cancel()
        await asyncio.wait({background}, timeout=STOP_WAIT)
        if not background.done():
            log.error("the worker's work did not stop", waited=STOP_WAIT)
        if watch is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await watch
    finally:
        await close_services(services)
    log.info("worker stopped")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK)
    log.warning("the process that started this worker is gone; stopping", parent=parent)
    stop.set()
