"""Notifications benchmark: what webhooks cost a purchase, and whether delivery keeps up.

    python bench/events.py [--db sqlite|postgresql://…] [--buyers 32] [--seconds 10]

Starts ``market serve`` on a fresh database (as ``bench/trade.py`` does), seeds a
provider with free listings and ``--buyers`` verified buyers, and runs a local webhook
receiver (a separate process answering ``204``). Then:

- **notify_cost**: purchases/s (free orders: each writes the ``order.active`` event for
  the buyer and the holder) with no webhook endpoints, then with 3 endpoints of the
  holder subscribed to everything (every purchase then makes 3 deliveries), then none
  again; ``notify_cost`` = the mean purchases/s without over the purchases/s with.
  Goal <= 1.15.
- **drain_vs_produce**: a server without background work takes purchases for
  ``--seconds`` (the outbox only fills: events are produced at full purchase speed);
  then a server with background work starts on that database and dispatches and
  delivers the whole backlog to the receiver. ``drain_vs_produce`` = events delivered
  per second (from the first delivery to the last) over events produced per second.
  Goal >= 1.0.

The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.api import Database, Server, free_port, say, stop_server, wait_until_ready  # noqa: E402
from bench.trade import purchases, seed  # noqa: E402

GOALS = {"notify_cost": 1.15, "drain_vs_produce": 1.0}
FAST_NOTIFY = {"MARKET_WEBHOOK_ALLOW_PRIVATE": "true"}  # the default MARKET_NOTIFY_INTERVAL (0.2 s)


# --- the receiver: a minimal HTTP/1.1 keep-alive server in its own process ----------------

def _receive(port: int, count: Any, ready: Any) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                with count.get_lock():
                    count.value += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.count = ctx.Value("q", 0)
        ready = ctx.Event()
        self.proc = ctx.Process(target=_receive, args=(self.port, self.count, ready), daemon=True)
        self.proc.start()
        if not ready.wait(30):
            raise RuntimeError("the receiver did not start")

    @property
    def received(self) -> int:
        return int(self.count.value)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


# --- servers on an existing database ------------------------------------------------------

class Again:
    """``market serve`` on a database that has its operator already (no token printed)."""

    def __init__(self, first: Server, tmp: Path, name: str, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        env = {**first.env, **extra_env}
        self.log = open(tmp / f"server-{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(self.port)],
                                     cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        wait_until_ready(f"http://127.0.0.1:{self.port}/ready", self.proc, tmp / f"server-{name}.log")

    def stop(self) -> None:
        stop_server(self.proc, self.log, 30)


async def subscribe(port: int, holder: Any, receiver: Receiver, n: int) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        made = []
        for i in range(n):
            r = await c.post("/v1/webhooks", headers=holder.auth,
                             json={"url": f"http://127.0.0.1:{receiver.port}/hook/{i}", "events": ["*"]})
            r.raise_for_status()
            made.append(r.json()["id"])
        return made


async def unsubscribe(port: int, holder: Any, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        for wid in ids:
            (await c.delete(f"/v1/webhooks/{wid}", headers=holder.auth)).raise_for_status()


def wait_received(receiver: Receiver, target: int, seconds: float) -> float | None:
    """Seconds until the receiver has ``target`` requests (None if not within ``seconds``)."""
    t0 = time.perf_counter()
    while receiver.received < target:
        if time.perf_counter() - t0 > seconds:
            return None
        time.sleep(0.01)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--buyers", type=int, default=32, help="concurrent buyers")
    parser.add_argument("--listings", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--endpoints", type=int, default=3)
    args = parser.parse_args()
    if args.db != "sqlite" and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    os.chdir(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-events-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    receiver = Receiver()
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port, {"MARKET_WORKERS": str(args.workers), **FAST_NOTIFY})
        db_name = "sqlite" if args.db == "sqlite" else "postgresql"
        say(f"server on 127.0.0.1:{port} ({db_name}, {args.workers} worker(s)); receiver on {receiver.port}; "
            f"seeding {args.buyers} buyers")
        seeded = asyncio.run(seed(port, server.operator, args.buyers, args.listings))
        holder = seeded["holder"]

        none_1 = asyncio.run(purchases(port, seeded, args.seconds, args.warmup))
        say(f"no webhooks    {none_1['purchases_per_s']:9.1f} purchases/s  p50 {none_1['p50_ms']:.1f} ms")
        hooks = asyncio.run(subscribe(port, holder, receiver, args.endpoints))
        before = receiver.received
        with_hooks = asyncio.run(purchases(port, seeded, args.seconds, args.warmup))
        say(f"{args.endpoints} webhooks     {with_hooks['purchases_per_s']:9.1f} purchases/s  "
            f"p50 {with_hooks['p50_ms']:.1f} ms  (deliveries so far {receiver.received - before})")
        asyncio.run(unsubscribe(port, holder, hooks))
        none_2 = asyncio.run(purchases(port, seeded, args.seconds, args.warmup))
        say(f"no webhooks    {none_2['purchases_per_s']:9.1f} purchases/s  p50 {none_2['p50_ms']:.1f} ms")
        without = (none_1["purchases_per_s"] + none_2["purchases_per_s"]) / 2
        cost = without / with_hooks["purchases_per_s"]
        say(f"notify_cost        {cost:.3f}  (goal <= {GOALS['notify_cost']})")
        server.stop()
        server = None

        # Produce a backlog on a server that does no background work, then drain it.
        producer = Again(_first_env(url, tmp, args), tmp, "producer",
                         {"MARKET_BACKGROUND_TASKS": "false"})
        try:
            asyncio.run(subscribe(producer.port, holder, receiver, args.endpoints))
            t0 = time.perf_counter()
            produced_run = asyncio.run(purchases(producer.port, seeded, args.seconds, 0.0))
            produce_s = time.perf_counter() - t0
        finally:
            producer.stop()
        events = asyncio.run(_undispatched(url))
        produce_rate = events / produce_s
        say(f"produced       {events} events in {produce_s:.1f} s = {produce_rate:.1f} events/s "
            f"({produced_run['purchases_per_s']:.1f} purchases/s counted)")
        baseline = receiver.received
        target = baseline + events * args.endpoints
        t0 = time.perf_counter()
        drainer = Again(_first_env(url, tmp, args), tmp, "drainer", {})
        try:
            started = time.perf_counter() - t0
            # From the first delivery: the process's start (ledger warm-up) is not delivery.
            wait_received(receiver, baseline + 1, 120.0)
            took = wait_received(receiver, target, max(120.0, 20 * args.seconds))
        finally:
            drainer.stop()
        if took is None:
            raise RuntimeError(f"the backlog was not delivered: {receiver.received} of {target}")
        drain_rate = events / took
        ratio = drain_rate / produce_rate
        say(f"drained        {events} events ({events * args.endpoints} deliveries) in {took:.1f} s from the "
            f"first delivery (server start {started:.1f} s) = {drain_rate:.1f} events/s")
        say(f"drain_vs_produce   {ratio:.3f}  (goal >= {GOALS['drain_vs_produce']})")
        print(json.dumps({
            "notify_cost": round(cost, 3), "drain_vs_produce": round(ratio, 3),
            "purchases_per_s_without": round(without, 1), "purchases_per_s_with": round(with_hooks["purchases_per_s"], 1),
            "endpoints": args.endpoints, "events_produced_per_s": round(produce_rate, 1),
            "events_delivered_per_s": round(drain_rate, 1), "deliveries_per_s": round(drain_rate * args.endpoints, 1),
            "db": db_name, "workers": args.workers, "buyers": args.buyers, "cores": os.cpu_count(),
        }), flush=True)
    finally:
        if server is not None:
            server.stop()
        receiver.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


def _first_env(url: str, tmp: Path, args: Any) -> Any:
    """What ``Again`` needs of the first server: its environment."""
    class Env:
        env = {**os.environ, "MARKET_DATA_DIR": str(tmp / "data"), "MARKET_DATABASE_URL": url,
               "MARKET_NOTICE_PERIOD": "0", "MARKET_LOG_LEVEL": "WARNING", "MARKET_WORKERS": str(args.workers),
               "PYTHONPATH": str(ROOT), "MARKET_RATE_LIMIT_PER_MINUTE": "0",
               "MARKET_RATE_LIMIT_SIGNUPS_PER_HOUR": "0", **FAST_NOTIFY}
    Env.env.pop("MARKET_REDIS_URL", None)
    return Env()


async def _undispatched(url: str) -> int:
    from sqlalchemy import func, select

    from market.core import db
    from market.core.config import async_database_url
    from market.core.outbox import OutboxEvent

    engine = db.make_engine(async_database_url(url))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(OutboxEvent)
                                           .where(OutboxEvent.dispatched_at.is_(None)))).scalar_one())  # type: ignore[union-attr]
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
