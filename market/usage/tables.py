"""Loaded sandbox tables, kept per process: loading a million rows costs more than a query.

A table is loaded once per (asset, registered revision, description) and kept in a small
LRU (``MARKET_SANDBOX_TABLES``); a table evicted while a query runs on it is closed when
that query ends. Loading happens in a worker thread, once per key even when several
queries ask at the same time.
"""

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.to_thread

from market.core.context import Ctx
from market.registry.models import Asset, AssetRevision
from market.registry.tables import AssetTable, TableColumn, content_of, engine_columns
from market.sandbox.engine import Loaded, load

Key = tuple[str, int, str]


@dataclass
class _Slot:
    loaded: Loaded
    users: int = 0
    evicted: bool = False


@dataclass
class SandboxTables:
    capacity: int = 4
    memory: str = "512MB"
    _slots: OrderedDict[Key, _Slot] = field(default_factory=OrderedDict)
    _loading: dict[Key, asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def use(self, ctx: Ctx, asset: Asset, revision: AssetRevision, table: AssetTable) -> AsyncIterator[Loaded]:
        key = (asset.id, revision.revision, table.sha256)
        slot = await self._slot(ctx, key, asset, revision, table)
        slot.users += 1
        try:
            yield slot.loaded
        finally:
            slot.users -= 1
            if slot.evicted and slot.users == 0:
                slot.loaded.close()

    async def _slot(self, ctx: Ctx, key: Key, asset: Asset, revision: AssetRevision, table: AssetTable) -> _Slot:
        slot = self._slots.get(key)
        if slot is not None:
            self._slots.move_to_end(key)
            return slot
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            slot = self._slots.get(key)
            if slot is None:
                content = await content_of(ctx, asset, revision)
                columns = engine_columns(json.loads(table.columns))
                bounds = {c.name.lower(): (c.bounds[0], c.bounds[1]) for c in _described(table) if c.bounds}
                loaded = await anyio.to_thread.run_sync(
                    lambda: load(content, table.format, columns, memory=self.memory,
                                 clamp=bounds if table.epsilon_budget is not None else None))
                slot = self._slots[key] = _Slot(loaded)
                self._evict()
            self._loading.pop(key, None)
        return slot

    def _evict(self) -> None:
        while len(self._slots) > max(1, self.capacity):
            _, old = self._slots.popitem(last=False)
            old.evicted = True
            if old.users == 0:
                old.loaded.close()

    def close(self) -> None:
        for slot in self._slots.values():
            slot.evicted = True
            if slot.users == 0:
                slot.loaded.close()
        self._slots.clear()


def _described(table: AssetTable) -> list[TableColumn]:
    return [TableColumn.model_validate(c) for c in json.loads(table.columns)]
