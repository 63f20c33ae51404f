"""Loaded sandbox tables, kept per process: loading a million rows costs more than a query.

A table is loaded once per key (the caller's: asset, registered revision, description)
and kept in a small LRU (``MARKET_SANDBOX_TABLES``); a table evicted while a query runs on
it is closed when that query ends. Loading runs once per key even when several queries
ask at the same time.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from market.sandbox.engine import Loaded


@dataclass
class _Slot:
    loaded: Loaded
    users: int = 0
    evicted: bool = False


class LoadedTables:
    def __init__(self, capacity: int = 4) -> None:
        self.capacity = max(1, capacity)
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Lock] = {}

    @asynccontextmanager
    async def use(self, key: Hashable, make: Callable[[], Awaitable[Loaded]]) -> AsyncIterator[Loaded]:
        """The table of ``key``, loaded by ``make`` unless it is kept already; held while in use."""
        slot = await self._slot(key, make)
        slot.users += 1
        try:
            yield slot.loaded
        finally:
            slot.users -= 1
            if slot.evicted and slot.users == 0:
                slot.loaded.close()

    async def _slot(self, key: Hashable, make: Callable[[], Awaitable[Loaded]]) -> _Slot:
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(await make())
                self._evict()
        self._loading.pop(key, None)
        return slot

    def _evict(self) -> None:
        while len(self._slots) > self.capacity:
            _, old = self._slots.popitem(last=False)
            old.evicted = True
            if old.users == 0:
                old.loaded.close()

    def close(self) -> None:
        """Close every table (at shutdown); those in use close when their query ends."""
        for slot in self._slots.values():
            slot.evicted = True
            if slot.users == 0:
                slot.loaded.close()
        self._slots.clear()
