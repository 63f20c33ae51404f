"""The background loop stops when cancelled, even when the work turns the cancellation
into another exception (as a database driver can while closing its connection): a loop
that retried instead would hang the shutdown of the process waiting for it."""

import asyncio
from typing import Any

from market.core.loops import repeat


async def test_a_cancelled_loop_ends_though_the_work_hides_the_cancellation() -> None:
    rounds = 0

    async def work() -> bool:
        nonlocal rounds
        rounds += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("connection closed while cancelling") from None
        return False

    task = asyncio.create_task(repeat("test", 0.01, work))
    await asyncio.sleep(0.05)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert done == {task} and task.cancelled()
    assert rounds == 1


async def test_a_failed_round_is_retried_and_more_work_runs_at_once() -> None:
    calls: list[str] = []

    async def work() -> bool:
        calls.append("round")
        if len(calls) == 1:
            raise ValueError("a failed round")
        return len(calls) < 4  # more waiting: run again without the interval

    task = asyncio.create_task(repeat("test", 0.5, work))
    await asyncio.sleep(0.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # the failed round waited one interval; rounds 2-4 ran back to back, round 4 said no more
    assert len(calls) == 4


async def test_a_round_integrates_once_unless_its_batch_was_full(monkeypatch: Any) -> None:
    """Entries keep arriving while an integration runs: a round still integrates once
    (each integration signs a checkpoint, rewrites tiles and commits), and integrates
    again at once only after a full batch, for what a full batch left waiting."""
    from market.wiring import tasks

    def integrations(counts: list[int]) -> list[int]:
        calls: list[int] = []

        async def integrate_once(_services: Any) -> int:
            calls.append(counts[len(calls)] if len(calls) < len(counts) else 0)
            return calls[-1]

        monkeypatch.setattr(tasks, "integrate_once", integrate_once)
        return calls

    calls = integrations([3, 2, 1])  # three came during the first, two during the second...
    assert await tasks.integrate_round(object()) == 3  # type: ignore[arg-type]
    assert calls == [3]

    monkeypatch.setattr(tasks, "INTEGRATE_BATCH", 4)
    calls = integrations([4, 4, 1, 2])
    assert await tasks.integrate_round(object()) == 9  # type: ignore[arg-type]
    assert calls == [4, 4, 1]
