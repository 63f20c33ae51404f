"""Metered look-ups handed to DuckDB in batches.

A look-up waits for DuckDB in a worker thread. One thread hand-off per look-up (and
one DuckDB query each, ~0.5 ms of planning whatever it finds) made the event loop and
the threads take turns for the interpreter lock more than they worked. Here the
look-ups of one loaded table that arrive while DuckDB is busy wait for its next
round and go together: one hand-off for the batch, one query for the look-ups of the
same key column (``Loaded.lookup_many``), each answered exactly as alone.
"""

import asyncio
import weakref
from typing import Any

import anyio.to_thread

from market.sandbox.engine import Loaded, QueryFailed, Wanted


class _Batches:
    def __init__(self, table: Loaded) -> None:
        self._table = table
        self._waiting: list[tuple[Wanted, float, asyncio.Future[list[list[Any]]]]] = []
        self._running = False

    async def lookup(self, wanted: Wanted, timeout: float) -> list[list[Any]]:
        answer: asyncio.Future[list[list[Any]]] = asyncio.get_running_loop().create_future()
        self._waiting.append((wanted, timeout, answer))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._answer_all())
        return await answer

    async def _answer_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                timeout = max(timeout for _, timeout, _ in batch)
                try:
                    answers = await anyio.to_thread.run_sync(
                        self._table.lookup_many, [wanted for wanted, _, _ in batch], timeout)
                except BaseException as exc:  # the thread itself failed: each waiting look-up raises it
                    for _, _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    raise
                for (_, _, answer), rows in zip(batch, answers, strict=True):
                    if answer.done():  # its request went away
                        continue
                    if isinstance(rows, QueryFailed):
                        answer.set_exception(rows)
                    else:
                        answer.set_result(rows)
        finally:
            self._running = False


_BATCHES: "weakref.WeakKeyDictionary[Loaded, _Batches]" = weakref.WeakKeyDictionary()


async def lookup(table: Loaded, wanted: Wanted, timeout: float) -> list[list[Any]]:
    """``wanted``'s rows in ``table`` (held in use by the caller until this returns), or QueryFailed."""
    batches = _BATCHES.get(table)
    if batches is None:
        batches = _BATCHES[table] = _Batches(table)
    return await batches.lookup(wanted, timeout)
