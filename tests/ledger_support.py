"""Helpers for the ledger tests that use a database: a migrated database with the
market's ledger key and a ``Log`` on it, appending and integrating, and waiting for
something another process does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.log import Log
from market.core import db
from market.core.config import Settings
from market.core.keys import init_ledger_key
from tests.conftest import FreshDatabase, make_settings

ORIGIN = "ledger.test.example/log"  # the origin make_settings gives the market


@dataclass
class LedgerDatabase:
    """A fresh, migrated database, the settings of a market on it, its ledger key,
    a ``Log`` with that key and a session maker of the test's own."""

    settings: Settings
    key: Ed25519PrivateKey
    log: Log
    maker: Any

    @property
    def url(self) -> str:
        return self.settings.sqlalchemy_url

    async def append(self, count: int, subject: str = "test:t", **data: Any) -> None:
        """Append ``count`` test entries (``data`` plus ``n``) in one transaction."""
        async with self.maker() as session:
            await self.log.append_many(
                session, [("test.event", subject, "market", {**data, "n": i}) for i in range(count)]
            )
            await session.commit()

    async def integrate(self) -> int:
        return await integrate_all(self.maker, self.log)


@asynccontextmanager
async def ledger_database(databases: FreshDatabase, data_dir: Path, **overrides: Any) -> AsyncIterator[LedgerDatabase]:
    """A ``LedgerDatabase`` whose market data (keys) live in ``data_dir``; no background tasks."""
    settings = make_settings(data_dir, await databases.new(), background_tasks=False, **overrides)
    key, _ = init_ledger_key(settings.keys_dir)
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        yield LedgerDatabase(settings, key, Log(key, settings.ledger_origin), db.make_sessionmaker(engine))
    finally:
        await engine.dispose()


async def integrate_all(maker: Any, log: Log) -> int:
    """Integrate until nothing is pending; return how many entries were integrated."""
    total = 0
    while True:
        async with maker() as session:
            n = await log.integrate(session)
        if n == 0:
            return total
        total += n


async def eventually(check: Callable[[], Awaitable[bool]], what: str, *, tries: int = 1000, interval: float = 0.02) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``tries`` polls.

    For waiting until something happens elsewhere (another process, a thread);
    never evidence that something did not happen."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting until {what}")
