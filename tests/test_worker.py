"""The market's own work in a process of its own (``market.wiring.worker``): ``market
serve`` keeps one ``market work`` process beside its API process, starts it again when it
ends, and takes it down with it, even when killed outright; an API process whose work
runs elsewhere integrates nothing yet serves the checkpoints the worker makes."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import make_settings, wait_until_serving
from tests.registry_support import own_app
from tests.serving import free_port, serve_environment


def _workers_of(parent: int) -> list[int]:
    """The pids of the ``market work`` processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"work" in command and b"market.tools.cli" in command:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(check: Any, what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def _serve(settings: Any, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)],
                                env=serve_environment(settings, **env), stdout=subprocess.DEVNULL, stderr=errors)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
async def served(databases: Any, tmp_path: Path, request: Any) -> Any:
    from market.wiring.bootstrap import create_staff_account

    settings = make_settings(tmp_path, await databases.new())
    await create_staff_account(settings, "Operator", "operator")
    proc, base = _serve(settings, tmp_path / "serve.log", **getattr(request, "param", {}))
    try:
        await asyncio.to_thread(wait_until_serving, f"{base}/health", proc)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
async def test_serve_keeps_one_worker_and_takes_it_down_when_killed(served: Any) -> None:
    proc, base = served
    [first] = await asyncio.to_thread(_until, lambda: _workers_of(proc.pid), "a worker process")
    # The worker integrates: the sign-up's entries reach a checkpoint the API serves.
    r = httpx.post(f"{base}/v1/accounts", json={"name": "Worker test", "kind": "individual", "roles": ["buyer"]})
    assert r.status_code == 201, r.text
    await asyncio.to_thread(_until, lambda: httpx.get(f"{base}/v1/ledger/checkpoint").text.split("\n")[1] != "0",
                            "a checkpoint that holds the sign-up's entries")
    # A worker that ends is started again.
    os.kill(first, signal.SIGKILL)
    [second] = await asyncio.to_thread(_until, lambda: [p for p in _workers_of(proc.pid) if p != first],
                                       "a new worker process")
    # Killed outright, serve takes its worker with it (once that worker is well under way).
    await asyncio.sleep(3)
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    await asyncio.to_thread(_until, lambda: not _alive(second), "the worker ending with serve", 15.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
@pytest.mark.parametrize("served", [{"MARKET_WORKER": "inline"}], indirect=True)
async def test_serve_inline_starts_no_worker(served: Any) -> None:
    proc, base = served
    r = httpx.post(f"{base}/v1/accounts", json={"name": "Inline test", "kind": "individual", "roles": ["buyer"]})
    assert r.status_code == 201, r.text
    # The API process integrates itself, and no worker process is there.
    await asyncio.to_thread(_until, lambda: httpx.get(f"{base}/v1/ledger/checkpoint").text.split("\n")[1] != "0",
                            "a checkpoint that holds the sign-up's entries")
    assert _workers_of(proc.pid) == []


async def test_an_api_whose_work_runs_elsewhere_integrates_nothing_but_serves_what_is_integrated(
        databases: Any, tmp_path: Path) -> None:
    async with own_app(databases, tmp_path, worker="elsewhere") as app:
        client, services = app.client, app.client.app.state.services
        await app.parties.sign_up(["buyer"])

        async def pending() -> int:
            async with services.read_sessionmaker() as s:
                return int((await s.execute(text("SELECT count(*) FROM ledger_pending"))).scalar_one())

        await asyncio.sleep(0.5)  # ten rounds of MARKET_LEDGER_INTEGRATE_INTERVAL
        waiting = client.blocking_portal.call(pending)
        assert waiting > 0
        size = int((await client.get("/v1/ledger/checkpoint")).text.split("\n")[1])

        async def integrate_elsewhere() -> None:  # as the worker process would
            from market.wiring.services import close_services, open_services
            from market.wiring.tasks import integrate_once

            other = await open_services(services.settings)
            try:
                assert await integrate_once(other) == waiting
            finally:
                await close_services(other)

        client.blocking_portal.call(integrate_elsewhere)
        deadline = time.monotonic() + 10
        while int((await client.get("/v1/ledger/checkpoint")).text.split("\n")[1]) != size + waiting:
            assert time.monotonic() < deadline, "the API process did not read the worker's checkpoint"
            await asyncio.sleep(0.05)


def test_a_served_process_freezes_what_it_holds_once_started() -> None:
    """``quiet_collector`` (run by ``market serve``'s API processes and by the worker once
    started): the heap so far leaves the cycle collector's full collections, and young
    collections come less often than Python's default."""
    import gc

    from market.wiring.worker import YOUNG_COLLECTION, quiet_collector

    threshold = gc.get_threshold()
    try:
        quiet_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_COLLECTION, *threshold[1:]) and YOUNG_COLLECTION > threshold[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
