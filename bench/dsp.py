"""Dataspace Protocol benchmark: negotiations to FINALIZED per second against the native
free-plan purchase, both measured on one server in the same run.

    python bench/dsp.py [--db sqlite|postgresql://…] [--workers N] [--buyers 32] [--seconds 10]

Starts ``market serve`` on a fresh database (as ``bench/trade.py`` does; private callback
addresses allowed, since the consumer runs on this machine), seeds a provider with free
listings and ``--buyers`` verified buyers, then:

- **purchases**: ``bench/trade.py``'s purchase (``POST /v1/orders`` on a free plan, then
  the contract fetched), every buyer concurrently.
- **negotiations**: every buyer, concurrently, as a DSP consumer with a callback server
  in this process: ``ContractRequestMessage`` → the market's ``ContractAgreementMessage``
  arrives at the callback → ``ContractAgreementVerificationMessage`` → the ``FINALIZED``
  event arrives. One negotiation is that exchange, counted when FINALIZED is heard.

``dsp_vs_purchase``: negotiations/s over purchases/s. Goal >= 0.5 (the protocol costs at
most twice the native path). The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.api import Database, Server, free_port, say  # noqa: E402
from bench.trade import purchases, seed  # noqa: E402

GOAL = 0.5
CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]


class Callbacks:
    """The consumer's callback server: each POST resolves the future waiting for it."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    def expect(self, path: str) -> "asyncio.Future[dict[str, Any]]":
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[path] = future
        return future

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        future = self.waiting.pop(request.path, None)
        if future is not None and not future.done():
            future.set_result(body)
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def negotiations(port: int, seeded: dict[str, Any], seconds: float, warmup: float) -> dict[str, Any]:
    listings = list(seeded["listings"].items())
    callbacks = Callbacks()
    await callbacks.start()
    address = f"http://127.0.0.1:{callbacks.port}/cb"
    latencies: list[float] = []
    failures: dict[str, int] = {}
    state = {"counting": False, "stop": False, "count": 0}
    limits = httpx.Limits(max_connections=len(seeded["buyers"]), max_keepalive_connections=len(seeded["buyers"]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/dsp/2025-1", timeout=60, limits=limits) as c:
        async def one(who: Any, lid: str, plan: str) -> bool:
            pid = f"urn:uuid:{secrets.token_hex(16)}"
            agreed = callbacks.expect(f"/cb/negotiations/{pid}/agreement")
            finalized = callbacks.expect(f"/cb/negotiations/{pid}/events")
            r = await c.post("/negotiations/request", headers=who.auth, json={
                "@context": CONTEXT, "@type": "ContractRequestMessage", "consumerPid": pid,
                "callbackAddress": address, "offer": {"@type": "Offer", "@id": f"urn:market:offer:{lid}:{plan}",
                                                      "target": f"urn:market:listing:{lid}",
                                                      "permission": [{"action": "use"}]}})
            if r.status_code != 201:
                failures[f"request {r.status_code}"] = failures.get(f"request {r.status_code}", 0) + 1
                return False
            provider_pid = r.json()["providerPid"]
            await asyncio.wait_for(agreed, 30)
            r = await c.post(f"/negotiations/{provider_pid}/agreement/verification", headers=who.auth, json={
                "@context": CONTEXT, "@type": "ContractAgreementVerificationMessage", "providerPid": provider_pid,
                "consumerPid": pid})
            if r.status_code != 200:
                failures[f"verify {r.status_code}"] = failures.get(f"verify {r.status_code}", 0) + 1
                return False
            return (await asyncio.wait_for(finalized, 30))["eventType"] == "FINALIZED"

        async def buyer_loop(i: int, who: Any) -> None:
            n = 0
            while not state["stop"]:
                lid, plan = listings[(i + n) % len(listings)]
                n += 1
                t = time.perf_counter()
                try:
                    ok = await one(who, lid, plan)
                except TimeoutError:
                    ok, failures["timeout"] = False, failures.get("timeout", 0) + 1
                if state["counting"] and ok:
                    latencies.append(time.perf_counter() - t)
                    state["count"] += 1

        tasks = [asyncio.create_task(buyer_loop(i, b)) for i, b in enumerate(seeded["buyers"])]
        await asyncio.sleep(warmup)
        state["counting"] = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        state["counting"] = False
        elapsed = time.perf_counter() - t0
        state["stop"] = True
        await asyncio.gather(*tasks)
    await callbacks.stop()
    latencies.sort()
    return {"negotiations_per_s": state["count"] / elapsed, "failures": failures,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--buyers", type=int, default=32, help="concurrent buyers (consumers)")
    parser.add_argument("--listings", type=int, default=4, help="free listings they buy from")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    if args.db != "sqlite" and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    os.chdir(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-dsp-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port, {"MARKET_WORKERS": str(args.workers), "MARKET_WEBHOOK_ALLOW_PRIVATE": "true"})
        db_name = "sqlite" if args.db == "sqlite" else "postgresql"
        say(f"server on 127.0.0.1:{port} ({db_name}, {args.workers} worker(s)); seeding {args.buyers} buyers")
        seeded = asyncio.run(seed(port, server.operator, args.buyers, args.listings))
        bought = asyncio.run(purchases(port, seeded, args.seconds, args.warmup))
        say(f"purchases      {bought['purchases_per_s']:9.1f} /s   p50 {bought['p50_ms']:.1f} ms  "
            f"failures {bought['failures']}")
        negotiated = asyncio.run(negotiations(port, seeded, args.seconds, args.warmup))
        ratio = negotiated["negotiations_per_s"] / bought["purchases_per_s"]
        p50 = negotiated["p50_ms"] or 0.0
        say(f"negotiations   {negotiated['negotiations_per_s']:9.1f} /s   p50 {p50:.1f} ms  "
            f"failures {negotiated['failures']}")
        say(f"dsp_vs_purchase    {ratio:.3f}  (goal >= {GOAL})")
        print(json.dumps({"dsp_vs_purchase": round(ratio, 3),
                          "negotiations_per_s": round(negotiated["negotiations_per_s"], 1),
                          "purchases_per_s": round(bought["purchases_per_s"], 1),
                          "negotiation_p50_ms": round(p50, 1), "purchase_p50_ms": round(bought["p50_ms"], 1),
                          "failures": negotiated["failures"], "db": db_name, "workers": args.workers,
                          "buyers": args.buyers, "cores": os.cpu_count()}), flush=True)
    finally:
        if server is not None:
            server.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
