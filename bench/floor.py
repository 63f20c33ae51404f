"""The floor under ``bench/trade.py``'s purchases: what a purchase-shaped pair of
requests costs on this stack with nothing of the market in it.

    python bench/floor.py [--db sqlite|postgresql://…] [--workers 1] [--seconds 10] [--batch 0,64]

In one run: the market's bare route (``GET /health`` of ``market serve``, as
``bench/trade.py`` measures it), then ``bench/floor_app.py`` served by uvicorn with the
same workers, its own bare route and its purchases, once per ``--batch`` (0: a transaction
per purchase; N: up to N waiting purchases' writes in one transaction, a group commit).
The purchases are ``bench/trade.py``'s (32 buyers, order then contract, the same client).

Prints each floor's purchases/s against the market's bare route (``floor_vs_bare``,
directly comparable with ``bench/trade.py``'s ``purchase_vs_bare``) and against its own.
The last line is one JSON object: ``floor_vs_bare`` and ``batched_floor_vs_bare`` (the
largest batch), with every measurement.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.api import Database, Server, free_port, http_request, measure, say, stop_server, wait_until_ready  # noqa: E402
from bench.floor_app import POSTGRES_SCHEMA, SQLITE_SCHEMA  # noqa: E402
from bench.trade import Party, purchases  # noqa: E402

BUYERS, LISTINGS = 32, 4


async def prepare(url: str) -> dict[str, Any]:
    """The floor's schema, 32 buyers with tokens and 4 listings; what ``purchases`` takes."""
    buyers = [Party(f"buyer-{i}", f"token-{i}") for i in range(BUYERS)]
    accounts = [(b.id, hashlib.sha256(b.token.encode()).digest(), "active") for b in buyers]
    listings = [(f"listing-{i}", "provider-0", 0, "listed") for i in range(LISTINGS)]
    if url.startswith("postgresql"):
        import asyncpg

        c = await asyncpg.connect(url)
        try:
            await c.execute(POSTGRES_SCHEMA)
            await c.executemany("insert into f_accounts values ($1, $2, $3)", accounts)
            await c.executemany("insert into f_listings values ($1, $2, $3, $4)", listings)
        finally:
            await c.close()
    else:
        import sqlite3

        db = sqlite3.connect(url)
        db.executescript(SQLITE_SCHEMA)
        db.executemany("insert into f_accounts values (?, ?, ?)", accounts)
        db.executemany("insert into f_listings values (?, ?, ?, ?)", listings)
        db.commit()
        db.close()
    return {"buyers": buyers, "listings": {lid: "plan" for lid, *_ in listings}}


class FloorServer:
    """``bench/floor_app.py`` under uvicorn (uvloop and httptools where installed, as the market)."""

    def __init__(self, url: str, port: int, workers: int, batch: int, log: Path) -> None:
        env = {**os.environ, "FLOOR_DATABASE": url, "FLOOR_BATCH": str(batch), "PYTHONPATH": str(ROOT)}
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port), "--workers", str(workers),
             "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env, stderr=self.log)
        wait_until_ready(f"http://127.0.0.1:{port}/health", self.proc, log)

    def stop(self) -> None:
        stop_server(self.proc, self.log)


def bare(port: int, args: argparse.Namespace) -> float:
    with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
        return measure(pool, port, http_request("GET", "/health"), args)["rps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--batch", default="0,64", help="comma-separated batch sizes; 0 is a transaction a purchase")
    parser.add_argument("--connections", type=int, default=32, help="connections for the bare routes")
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the start-up polls
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-floor-"))
    figures: dict[str, Any] = {"db": "sqlite" if args.db == "sqlite" else "postgresql", "workers": args.workers,
                               "cores": os.cpu_count(), "floors": []}
    try:
        market_db = Database(args.db, tmp)
        url = asyncio.run(market_db.create())
        port = free_port()
        server = Server(url, tmp, port, {"MARKET_WORKERS": str(args.workers)})
        try:
            market_bare = bare(port, args)
        finally:
            server.stop()
            asyncio.run(market_db.drop())
        say(f"market's bare route   {market_bare:9.0f} req/s")
        figures["market_bare_rps"] = round(market_bare, 1)
        for batch in batches:
            floor_db = Database(args.db, tmp)
            url = asyncio.run(floor_db.create())
            url = (url.replace("postgresql+asyncpg://", "postgresql://") if url.startswith("postgresql")
                   else str(tmp / f"floor-{batch}.db"))
            try:
                seeded = asyncio.run(prepare(url))
                port = free_port()
                floor = FloorServer(url, port, args.workers, batch, tmp / "floor.log")
                try:
                    own_bare = bare(port, args)
                    bought = asyncio.run(purchases(port, seeded, args.seconds, args.warmup))
                finally:
                    floor.stop()
            finally:
                asyncio.run(floor_db.drop())
            rate = bought["purchases_per_s"]
            say(f"floor, batch {batch:<3}      {rate:9.1f} purchases/s  p50 {bought['p50_ms']:.1f} ms  "
                f"({rate / market_bare:.3f}x the market's bare route; its own bare route {own_bare:.0f} req/s, "
                f"{rate / own_bare:.3f}x)  failures {bought['failures']}")
            figures["floors"].append({"batch": batch, "purchases_per_s": round(rate, 1),
                                      "vs_market_bare": round(rate / market_bare, 4), "own_bare_rps": round(own_bare, 1),
                                      "vs_own_bare": round(rate / own_bare, 4), "p50_ms": round(bought["p50_ms"], 1),
                                      "failures": bought["failures"]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    unbatched = [f for f in figures["floors"] if f["batch"] == 0]
    batched = [f for f in figures["floors"] if f["batch"] > 0]
    result = {"floor_vs_bare": unbatched[0]["vs_market_bare"] if unbatched else None,
              "batched_floor_vs_bare": max(batched, key=lambda f: f["batch"])["vs_market_bare"] if batched else None,
              **figures}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
