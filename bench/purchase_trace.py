"""One free purchase, statement by statement: where its time goes on a quiet server.

    python bench/purchase_trace.py [--db sqlite|postgresql://…] [--warm 20]

Starts the market in this process (uvicorn on a thread of its own, a fresh database as
``bench/api.py`` makes them), seeds a provider with a free listing and a buyer over
HTTP, buys ``--warm`` times (statement caches warm), then once more while every SQL
statement of every engine is recorded: ``POST /v1/orders`` (settled at once) and
``GET /v1/orders/{id}/contract``. Prints each statement with its offset in
milliseconds from the order's request, then one JSON object: the statements and
milliseconds of each request. Background tasks run as deployed, so a statement of the
integrator or the clock may show among a request's (``--quiet`` turns them off).
"""

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.api import Database, free_port, say  # noqa: E402
from bench.trade import seed  # noqa: E402


def start(url: str, data: Path, port: int, quiet: bool) -> tuple[str, uvicorn.Server]:
    from market.core.config import Settings
    from market.web.app import create_app
    from market.wiring.bootstrap import prepare

    settings = Settings(_env_file=None, data_dir=data, database_url=url, log_level="WARNING",
                        notice_period="0", rate_limit_per_minute=10**9, rate_limit_signups_per_hour=10**9,
                        background_tasks=not quiet)
    token = asyncio.run(prepare(settings))
    assert token, "a fresh database gets an operator"
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning", lifespan="on"))
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return token, server


async def buy(port: int, seeded: dict[str, Any], times: int) -> list[tuple[str, float]]:
    """Buy ``times`` times; the marks (request, perf_counter) of the last purchase."""
    lid, plan = next(iter(seeded["listings"].items()))
    who = seeded["buyers"][0]
    marks: list[tuple[str, float]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        for _ in range(times):
            marks = [("POST /v1/orders", time.perf_counter())]
            r = await c.post("/v1/orders", headers=who.auth, json={
                "listing_id": lid, "plan_id": plan, "purpose": "research", "payment_method": "free"})
            r.raise_for_status()
            marks.append(("GET /v1/orders/{id}/contract", time.perf_counter()))
            (await c.get(f"/v1/orders/{r.json()['id']}/contract", headers=who.auth)).raise_for_status()
            marks.append(("done", time.perf_counter()))
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--warm", type=int, default=20, help="purchases before the traced one")
    parser.add_argument("--quiet", action="store_true", help="background tasks off")
    args = parser.parse_args()
    os.chdir(ROOT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-trace-"))
    database = Database(args.db, tmp)
    server: uvicorn.Server | None = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        token, server = start(url, tmp / "data", port, args.quiet)
        seeded = asyncio.run(seed(port, token, 1, 1))
        asyncio.run(buy(port, seeded, args.warm))
        statements: list[tuple[float, str]] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append((time.perf_counter(), " ".join(statement.split())[:110]))

        event.listen(Engine, "before_cursor_execute", record)
        marks = asyncio.run(buy(port, seeded, 1))
        event.remove(Engine, "before_cursor_execute", record)
        t0 = marks[0][1]
        figures: dict[str, Any] = {}
        for (name, start_at), (_, end_at) in zip(marks, marks[1:], strict=False):
            mine = [(t, s) for t, s in statements if start_at <= t < end_at]
            say(f"{name}: {len(mine)} statements, {1000 * (end_at - start_at):.1f} ms")
            for t, s in mine:
                say(f"  {1000 * (t - t0):7.2f}  {s}")
            key = "order" if name.startswith("POST") else "contract"
            figures[f"{key}_statements"] = len(mine)
            figures[f"{key}_ms"] = round(1000 * (end_at - start_at), 2)
        figures["db"] = "sqlite" if args.db == "sqlite" else "postgresql"
        print(json.dumps(figures), flush=True)
    finally:
        if server is not None:
            server.should_exit = True
            time.sleep(0.5)
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
