"""A separate OS process that appends and/or integrates, for the concurrency and crash tests.

    python tests/ledger_worker.py URL KEYS_DIR ORIGIN MODE COUNT TAG

MODE ``append``: COUNT entries, one transaction each, integrating after every 10.
MODE ``integrate``: integrate in small batches until nothing is pending, forever
(until killed) when COUNT is 0.
"""

import asyncio
import sys
from pathlib import Path

from ledger.log import Log
from market.core import db
from market.core.keys import init_ledger_key


async def main(url: str, keys_dir: str, origin: str, mode: str, count: int, tag: str) -> None:
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    key, _ = init_ledger_key(Path(keys_dir))
    log = Log(key, origin)
    try:
        if mode == "append":
            for i in range(count):
                async with maker() as session:
                    await log.append(session, type="test.event", subject=f"test:{tag}", actor="market",
                                     data={"tag": tag, "n": i})
                    await session.commit()
                if i % 10 == 9:
                    async with maker() as session:
                        await log.integrate(session, max_batch=16)
        else:
            while True:
                async with maker() as session:
                    n = await log.integrate(session, max_batch=count or 3)
                if n == 0 and count:
                    break
    finally:
        await engine.dispose()


if __name__ == "__main__":
    url, keys_dir, origin, mode, count, tag = sys.argv[1:7]
    asyncio.run(main(url, keys_dir, origin, mode, int(count), tag))
