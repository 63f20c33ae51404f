"""Look-ups handed to DuckDB in rounds (market.usage.batches): a failed round fails only its
own look-ups, and a cancelled look-up keeps its table in use until DuckDB is done with it."""

import asyncio
import threading
from typing import Any

import pytest

from market.sandbox.engine import Column, Wanted
from market.usage import batches

KEY = Column("card", "text", "key")


def wanted(value: str) -> Wanted:
    return Wanted(KEY, value, ("card",), 10)


class Table:
    """What a round asks of a loaded table, held until ``release`` is set."""

    def __init__(self, fail_first: bool = False) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.rounds = 0
        self.fail_first = fail_first

    def lookup_many(self, asked: list[Wanted], timeout: float) -> list[Any]:
        self.rounds += 1
        if self.rounds == 1:
            self.started.set()
            assert self.release.wait(10)
            if self.fail_first:
                raise RuntimeError("the table broke")
        return [[[one.value]] for one in asked]


async def test_a_failed_round_fails_its_look_ups_and_the_next_round_still_runs() -> None:
    table = Table(fail_first=True)
    first = asyncio.create_task(batches.lookup(table, wanted("a"), 10))  # type: ignore[arg-type]
    assert await asyncio.to_thread(table.started.wait, 10)
    second = asyncio.create_task(batches.lookup(table, wanted("b"), 10))  # type: ignore[arg-type]
    third = asyncio.create_task(batches.lookup(table, wanted("c"), 10))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # (both queued while the first round runs)
    table.release.set()
    with pytest.raises(RuntimeError, match="the table broke"):
        await first
    assert await asyncio.wait_for(asyncio.gather(second, third), 10) == [[["b"]], [["c"]]]
    assert table.rounds == 2  # the two queued went together


async def test_a_cancelled_look_up_stays_until_duckdb_is_done_with_it() -> None:
    table = Table()
    task = asyncio.create_task(batches.lookup(table, wanted("a"), 10))  # type: ignore[arg-type]
    assert await asyncio.to_thread(table.started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done(), "the caller left (and released the table) while DuckDB still used it"
    table.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
