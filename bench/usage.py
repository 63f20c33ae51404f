"""Usage-controlled delivery benchmark: sandbox queries and metered look-ups over HTTP.

    python bench/usage.py [--db sqlite|postgresql://…] [--rows 1000000] [--queries 20] [--seconds 10]

Starts ``market serve`` on a fresh database (as ``bench/api.py`` does) and registers one
asset whose content is a ``--rows``-row, 6-column CSV (rider, district, day, fare, card,
phone), described as a table (entity, dimension, dimension, measure, key, hidden), listed
with a free sandbox plan and a metered api plan, both bought by one buyer. Then:

- **sandbox**: one aggregate query (a filter, a group, COUNT, SUM, AVG) run ``--queries``
  times through ``POST /v1/orders/{id}/queries`` (the first run loads the table and is not
  counted), against the same query in a bare DuckDB in this process over the same rows.
  ``sandbox_vs_duckdb`` = bare p50 / sandbox p50: the rules, suppression, the two
  transactions, the receipt and HTTP cost at most 5× the engine when it is >= 0.2.
- **lookups**: ``--buyers`` keep-alive connections call ``GET /v1/orders/{id}/records?card=…``
  (random cards, 10 rows each) for ``--seconds``; ``lookup_vs_bare`` = look-ups/s over
  ``/health`` requests/s of the same server in the same run, both sent by the same load
  generator (``bench/load.py``, in a process of its own: an HTTP library in this process
  cost more CPU per look-up than the server did, and was what got measured). A sample of
  the look-ups is first checked to answer rows; any answer but 2xx is counted as failed.
  Goal >= 0.1.

The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import base64
import io
import json
import multiprocessing
import os
import random
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

from bench.api import Database, Server, free_port, http_request, say  # noqa: E402
from bench.load import measure  # noqa: E402
from bench.trade import LICENCE, Party, sign_up, signing_provider  # noqa: E402

GOALS = {"sandbox_vs_duckdb": 0.2, "lookup_vs_bare": 0.1}
DISTRICTS = ["福田", "南山", "罗湖", "宝安", "龙岗", "龙华", "坪山", "光明", "盐田", "大鹏"]
COLUMNS = [{"name": "rider", "type": "text", "role": "entity"},
           {"name": "district", "type": "text", "role": "dimension"},
           {"name": "day", "type": "date", "role": "dimension"},
           {"name": "fare", "type": "integer", "role": "measure"},
           {"name": "card", "type": "text", "role": "key"},
           {"name": "phone", "type": "text", "role": "hidden"}]
QUERY = ("SELECT district, COUNT(*) AS trips, SUM(fare) AS fares, AVG(fare) AS mean FROM data "
         "WHERE day >= DATE '2026-02-01' GROUP BY district ORDER BY district")
BARE_QUERY = ("SELECT district, COUNT(*), SUM(fare), AVG(fare), COUNT(DISTINCT rider) FROM data "
              "WHERE day >= DATE '2026-02-01' GROUP BY district ORDER BY district")
CARDS = 100_000


def table_csv(rows: int) -> bytes:
    rng = random.Random(2026)
    out = io.StringIO()
    out.write("rider,district,day,fare,card,phone\n")
    for i in range(rows):
        out.write(f"r{rng.randrange(50_000):05d},{DISTRICTS[rng.randrange(10)]},2026-0{1 + rng.randrange(3)}-"
                  f"{1 + rng.randrange(28):02d},{rng.randrange(1, 15)},C{i % CARDS:06d},138{i:08d}\n")
    return out.getvalue().encode()


async def seed(port: int, operator: str, content: bytes) -> dict[str, Any]:
    op = Party("", operator)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
        holder, key, key_id = await signing_provider(c, op)
        r = await c.post("/v1/assets", headers=holder.auth, json={
            "title": "深圳公交出行记录", "category": "transport", "grade": "general", "personal_info": "deidentified",
            "source": "ticketing", "format": "csv"})
        r.raise_for_status()
        aid = r.json()["id"]
        (await c.put(f"/v1/assets/{aid}/content", content=content, headers=holder.auth)).raise_for_status()
        r = await c.get(f"/v1/assets/{aid}/claim", params={"rights": "holding,use,operation"}, headers=holder.auth)
        sb = r.json()["signing_bytes"]
        sig = base64.b64encode(key.sign(base64.b64decode(sb))).decode()
        (await c.post(f"/v1/assets/{aid}/claim", json={"signing_bytes": sb, "key_id": key_id, "signature": sig},
                      headers=holder.auth)).raise_for_status()
        (await c.post(f"/v1/assets/{aid}/review", json={"decision": "approve", "reason": "ok"},
                      headers=op.auth)).raise_for_status()
        t = time.perf_counter()
        r = await c.put(f"/v1/assets/{aid}/table", json={"format": "csv", "columns": COLUMNS, "min_group": 10},
                        headers=holder.auth)
        r.raise_for_status()
        describe_s = time.perf_counter() - t
        r = await c.post("/v1/listings", headers=holder.auth, json={
            "asset_id": aid, "title": "深圳公交出行记录 (sandbox, api)", "licence": LICENCE, "plans": [
                {"model": "free", "price": {"amount": 0, "currency": "CNY"}, "delivery": "sandbox"},
                {"model": "metered", "price": {"amount": 100, "currency": "CNY"}, "delivery": "api",
                 "quota": 1_000_000_000, "period_days": 30}]})
        r.raise_for_status()
        listing = r.json()
        buyer = await sign_up(c, op, ["buyer"], 1)
        orders = {}
        for plan in listing["plans"]:
            method = "free" if plan["model"] == "free" else "postpaid"
            r = await c.post("/v1/orders", headers=buyer.auth, json={
                "listing_id": listing["id"], "plan_id": plan["id"], "purpose": "research", "payment_method": method})
            r.raise_for_status()
            orders[plan["delivery"]] = r.json()["id"]
    return {"buyer": buyer, "orders": orders, "describe_s": describe_s}


async def sandbox(port: int, seeded: dict[str, Any], queries: int) -> dict[str, Any]:
    buyer, order = seeded["buyer"], seeded["orders"]["sandbox"]
    times = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
        for i in range(queries + 1):
            t = time.perf_counter()
            r = await c.post(f"/v1/orders/{order}/queries", json={"sql": QUERY}, headers=buyer.auth)
            elapsed = time.perf_counter() - t
            if r.status_code != 201:
                raise RuntimeError(f"query: {r.status_code} {r.text}")
            if i == 0:
                first, rows = elapsed, r.json()["rows"]
            else:
                times.append(elapsed)
    return {"p50_ms": 1000 * statistics.median(times), "first_ms": 1000 * first, "rows": rows}


def bare_duckdb(content: bytes, queries: int) -> dict[str, Any]:
    import duckdb
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(io.BytesIO(content))
    db = duckdb.connect(":memory:", config={"threads": "1"})
    db.register("source", table)
    db.execute("CREATE TABLE data AS SELECT rider, district, CAST(day AS DATE) AS day, fare, card, phone FROM source")
    times = []
    for _ in range(queries):
        t = time.perf_counter()
        rows = db.execute(BARE_QUERY).fetchall()
        times.append(time.perf_counter() - t)
    db.close()
    return {"p50_ms": 1000 * statistics.median(times), "rows": rows}


def lookup_requests(seeded: dict[str, Any], n: int = 2000) -> list[bytes]:
    """``n`` look-ups of random cards (each has rows), as raw requests for the load generator."""
    rng = random.Random(2026)
    buyer, order = seeded["buyer"], seeded["orders"]["api"]
    return [http_request("GET", f"/v1/orders/{order}/records?card=C{rng.randrange(CARDS):06d}&limit=10", buyer.token)
            for _ in range(n)]


async def check_lookups(port: int, requests: list[bytes]) -> None:
    """A few of the look-ups, sent by an HTTP client: each answers rows, or the benchmark stops."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        for raw in requests[:20]:
            head = raw.decode().split("\r\n")
            path, auth = head[0].split(" ")[1], head[2].split(": ", 1)[1]
            r = await c.get(path, headers={"Authorization": auth})
            if r.status_code != 200 or not r.json()["rows"]:
                raise RuntimeError(f"a look-up answered {r.status_code} {r.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--buyers", type=int, default=32, help="concurrent look-up clients")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32, help="connections for the bare route")
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    if args.db != "sqlite" and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    os.chdir(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-usage-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    try:
        content = table_csv(args.rows)
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port, {"MARKET_WORKERS": "1"})
        db_name = "sqlite" if args.db == "sqlite" else "postgresql"
        say(f"server on 127.0.0.1:{port} ({db_name}); a table of {args.rows} rows, {len(content) >> 20} MiB")
        seeded = asyncio.run(seed(port, server.operator, content))
        say(f"table described (checked against the content) in {seeded['describe_s']:.1f} s")
        bare = bare_duckdb(content, args.queries)
        ran = asyncio.run(sandbox(port, seeded, args.queries))
        expected = [[r[0], r[1], r[2]] for r in bare["rows"] if r[4] >= 10]
        if [row[:3] for row in ran["rows"]] != expected:
            raise RuntimeError(f"the sandbox answered {ran['rows'][:3]}…, a bare DuckDB {expected[:3]}…")
        ratio = bare["p50_ms"] / ran["p50_ms"]
        say(f"sandbox query  p50 {ran['p50_ms']:8.1f} ms (first, loading the table: {ran['first_ms']:.0f} ms); "
            f"bare DuckDB p50 {bare['p50_ms']:.1f} ms")
        say(f"sandbox_vs_duckdb  {ratio:.3f}  (goal >= {GOALS['sandbox_vs_duckdb']})")
        requests = lookup_requests(seeded)
        asyncio.run(check_lookups(port, requests))
        # Both with the same load generator, in client processes of their own (bench/load.py).
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            health = measure(pool, port, [http_request("GET", "/health")], args, args.seconds)
            say(f"health         {health['rps']:9.0f} req/s")
            looked = measure(pool, port, requests, argparse.Namespace(**{**vars(args), "connections": args.buyers}),
                             args.seconds)
        lratio = looked["rps"] / health["rps"]
        say(f"look-ups       {looked['rps']:9.1f} /s   p50 {1000 * looked['p50']:.1f} ms  "
            f"failed {looked['bad']} {looked['statuses'] or ''}")
        say(f"lookup_vs_bare     {lratio:.3f}  (goal >= {GOALS['lookup_vs_bare']})")
        print(json.dumps({
            "sandbox_vs_duckdb": round(ratio, 3), "lookup_vs_bare": round(lratio, 3),
            "sandbox_p50_ms": round(ran["p50_ms"], 1), "duckdb_p50_ms": round(bare["p50_ms"], 1),
            "sandbox_first_ms": round(ran["first_ms"], 1), "lookups_per_s": round(looked["rps"], 1),
            "lookup_p50_ms": round(1000 * looked["p50"], 1), "lookups_failed": looked["bad"],
            "health_rps": round(health["rps"], 1), "describe_s": round(seeded["describe_s"], 2), "rows": args.rows,
            "db": db_name, "cores": os.cpu_count()}), flush=True)
    finally:
        if server is not None:
            server.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
