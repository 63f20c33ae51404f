"""``PgListener``: how a process on PostgreSQL hears of other processes' changes
(``market.core.memo``'s contract): it LISTENs on ``CHANNEL`` and empties the memos of
the notified topics, keeps them off while its connection is down, and reads the
``change_epochs`` counters a request checks before trusting a memo."""

import asyncio
import contextlib
from typing import Any

from sqlalchemy.engine import make_url

from market.core.logs import log
from market.core.memo import CHANNEL, Memo, process_tag

__all__ = ["LISTENER_NAME", "PgListener", "asyncpg_dsn"]

LISTENER_NAME = "market-listener"  # application_name of each process's listening connection


class PgListener:
    """LISTENs on ``CHANNEL`` and empties the memos of the notified topics; keeps
    ``memos`` off while the connection is down, and reconnects."""

    def __init__(self, dsn: str, memos: list[Memo[Any]], *, retry: float = 1.0) -> None:
        self.dsn, self.memos, self.retry = dsn, memos, retry
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._next_read: asyncio.Future[dict[str, int]] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._enable(False)

    async def change_epochs(self) -> dict[str, int] | None:
        """``change_epochs`` as read by a query that began after this call did, so it
        includes every change committed before; None while not connected.

        Concurrent callers share one read: a caller joins the next read not yet
        started, and one read runs at a time on the listening connection (no pool
        checkout, no transaction). Under load that is one round trip for a whole
        batch of requests."""
        if self._conn is None or self._conn.is_closed():
            return None
        if self._next_read is None:
            self._next_read = asyncio.get_running_loop().create_future()
            self._next_read.add_done_callback(_retrieve)
        joined = self._next_read
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_epochs())
        return await asyncio.shield(joined)

    async def _read_epochs(self) -> None:
        while self._next_read is not None:
            batch, self._next_read = self._next_read, None  # later callers wait for the next read
            try:
                rows = await self._conn.fetch("SELECT topic, epoch FROM change_epochs", timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this read
                batch.set_exception(exc)
            else:
                batch.set_result({row["topic"]: row["epoch"] for row in rows})

    def _enable(self, on: bool) -> None:
        for memo in self.memos:
            memo.invalidate()  # anything may have changed while nobody listened
            memo.enabled = on

    async def start(self) -> None:
        """Connect once (so the memos are on when the app starts), then keep connected."""
        with contextlib.suppress(Exception):
            await self._connect()
        self._task = asyncio.create_task(self._keep())

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": LISTENER_NAME})
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._lost.clear()
        self._enable(True)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        names, _, sender = str(payload).partition("|")
        if sender and sender == process_tag():
            # This process emptied its memos when the change committed, before anyone
            # could read; the echo arrives later and would only throw away fresh fills.
            return
        topics = set(names.split(",")) if names else None
        for memo in self.memos:
            if topics is None or memo.topic in topics:
                memo.invalidate()

    def _terminated(self, *_args: Any) -> None:
        self._enable(False)
        self._lost.set()

    async def _keep(self) -> None:
        while True:
            if self._conn is not None and not self._conn.is_closed():
                await self._lost.wait()
            self._enable(False)
            try:
                await self._connect()
            except Exception as exc:  # noqa: BLE001 - retried; the memos stay off meanwhile
                log.warning("change listener down; answering from the database", error=type(exc).__name__)
                await asyncio.sleep(self.retry)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


def _retrieve(future: "asyncio.Future[Any]") -> None:
    # Callers see the exception; this keeps asyncio from logging it as never retrieved.
    if not future.cancelled():
        future.exception()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
