"""Search benchmark: latency and throughput of ``GET /v1/listings`` over HTTP as listings grow.

    python bench/search.py [--listings 100000] [--db sqlite|postgresql://…] [--seconds 10] [--connections 16]

For each size, ``--baseline`` (1,000) and then ``--listings`` N, a fresh database (as
``bench/api.py`` makes them: a SQLite file in a temporary directory, or a new
PostgreSQL database ``market_bench_<random>`` next to the one the URL names, dropped at
the end). A first ``market serve`` migrates it and a buyer signs up over HTTP;
providers, registered assets and active listings are then written in bulk by
``bench/search_seed.py`` (the search documents built by the market's own
``index.document`` and ``index.text_rows``; no ledger entries, which search never
reads) and timed apart from the figures, followed by the planner's statistics
(PostgreSQL ``VACUUM ANALYZE``, as autovacuum would do; SQLite ``ANALYZE``, as
``market search reindex`` ends).

Then two servers in turn, one worker each. As deployed (the search memory on):
``/health`` (the bare route), the query mix below as the buyer, and the same mix
anonymously. The buyer is a plain caller (no listings, named in no private plan), so
both are answered from the memory after the first request of each query. Then the mix
as a second buyer whom private plans of 20 listings name (10 have no other plan; as
many at every size, ``search_seed.NAMED``): the memory cannot answer it whole, so
every request searches its extras and merges them into the public part (counts, pages
and listings from the memory), and presents the listings it sees more of for it —
what a provider holding listings, a buyer named in private plans or staff costs (the
engine as deployed). Then with ``MARKET_SEARCH_MEMORY=0``: the second buyer's mix
again, every request running the whole search (the cold engine). Each is a warm-up then
``--seconds`` under ``--connections`` keep-alive connections; every connection cycles
through the mix from its own starting point and the latency of every answer is kept.

The mix: Chinese, English and mixed full text, filters, sorts and a plain listing, all
with the default limit of 50 (the total and the facets are always computed).

Figures:

- ``search_growth_p95``: p95 latency of the mix at N over p95 at 1,000, as deployed.
  Goal <= 3 at 100,000.
- ``search_vs_bare``: requests/s of the mix over requests/s of ``/health``. Goal >= 0.05.
- ``engine_growth_p95``, ``engine_vs_bare`` (and ``engine_p95_ms``): the same for the
  buyer the memory cannot answer whole. Goals as above.
- ``cold_growth_p95``, ``cold_vs_bare``: the same buyer with the memory off, what the
  whole search costs when nothing is remembered (no goal; see docs/performance.md).

Every non-2xx answer is counted (``non_2xx``; the run is only meaningful at 0). The
last line printed is one JSON object with the figures and the raw numbers.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.api import HIGH_LIMIT, Database, Server, free_port, http_request, say, wait_until_ready  # noqa: E402
from bench.load import measure  # noqa: E402

GOALS = {"search_growth_p95": 3.0, "search_vs_bare": 0.05}


class Restarted(Server):
    """``market serve`` again on a database a ``Server`` has already prepared (no
    operator token is printed then), with ``extra_env`` (e.g. the search memory off)."""

    def __init__(self, url: str, tmp: Path, port: int, extra_env: dict[str, str] | None = None) -> None:
        import subprocess

        self.port = port
        self.env = {**os.environ, "MARKET_DATA_DIR": str(tmp / "data"), "MARKET_DATABASE_URL": url,
                    "MARKET_NOTICE_PERIOD": "0", "MARKET_LOG_LEVEL": "WARNING", "MARKET_WORKERS": "1",
                    "PYTHONPATH": str(ROOT), "MARKET_RATE_LIMIT_PER_MINUTE": HIGH_LIMIT,
                    "MARKET_RATE_LIMIT_SIGNUPS_PER_HOUR": HIGH_LIMIT, **(extra_env or {})}
        self.env.pop("MARKET_REDIS_URL", None)
        self.log = open(tmp / "server.log", "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)],
                                     cwd=tmp, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        wait_until_ready(f"http://127.0.0.1:{port}/ready", self.proc, tmp / "server.log")

# name -> query string of GET /v1/listings (values are URL-encoded when the request is built)
QUERIES: list[tuple[str, dict[str, str]]] = [
    ("zh_category", {"q": "交通"}),
    ("zh_noun", {"q": "出行数据"}),
    ("zh_two_terms", {"q": "深圳 公交"}),
    ("en_word", {"q": "routes"}),
    ("en_phrase", {"q": "freight tracks"}),
    ("zh_en_mixed", {"q": "深圳 bus"}),
    ("category_newest", {"category": "weather", "sort": "newest"}),
    ("grade_model", {"grade": "important", "model": "subscription"}),
    ("q_category_price", {"q": "数据", "category": "energy", "min_price": "1000", "max_price": "500000"}),
    ("purpose_price_asc", {"purpose": "research", "sort": "price_asc"}),
    ("zh_price_desc", {"q": "气象", "sort": "price_desc"}),
    ("plain_newest", {}),
]


def query_path(params: dict[str, str]) -> str:
    if not params:
        return "/v1/listings"
    return "/v1/listings?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


# --- one size: a fresh database and server -----------------------------------------


def buyer_token(port: int, name: str = "Bench Buyer") -> tuple[str, str]:
    """A new buyer's token and account id."""
    r = httpx.post(f"http://127.0.0.1:{port}/v1/accounts", timeout=30,
                   json={"name": name, "kind": "individual", "roles": ["buyer"]})
    r.raise_for_status()
    return str(r.json()["token"]), str(r.json()["account"]["id"])


def check_mix(port: int, token: str, reps: int) -> tuple[dict[str, int], dict[str, float]]:
    """Each query of the mix alone, as the buyer, on an otherwise idle server: it
    answers 200; returns its total and its median latency over ``reps`` tries (after
    one untimed try)."""
    totals, solo = {}, {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        for name, params in QUERIES:
            times = []
            for _ in range(reps + 1):
                started = time.perf_counter()
                r = c.get("/v1/listings", params=params)
                times.append(time.perf_counter() - started)
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
            totals[name] = int(r.json()["total"])
            solo[name] = statistics.median(times[1:]) if reps else times[0]
    return totals, solo


def run_size(args: argparse.Namespace, listings: int, pool: Any) -> dict[str, Any]:
    from bench import search_seed

    tmp = Path(tempfile.mkdtemp(prefix="market-bench-search-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port)  # migrates, bootstraps the operator
        token, _ = buyer_token(port)
        named_token, named = buyer_token(port, "Bench Named Buyer")
        server.stop()
        server = None
        say(f"[{listings} listings] {'SQLite' if args.db == 'sqlite' else 'PostgreSQL'}, seeding")
        started = time.perf_counter()
        counts = asyncio.run(search_seed.seed(url, listings, providers=args.providers,
                                              progress=lambda m: say(m) if listings >= 20000 else None,
                                              named=named))
        analyze_s = asyncio.run(search_seed.analyze(url))
        seed_s = time.perf_counter() - started
        say(f"  seeded {counts['listings']} listings ({counts['listed']} listed) of {counts['providers']} providers "
            f"in {seed_s:.1f} s (statistics {analyze_s:.1f} s)")

        mix_auth = [http_request("GET", query_path(p), token) for _, p in QUERIES]
        mix_anon = [http_request("GET", query_path(p)) for _, p in QUERIES]
        mix_named = [http_request("GET", query_path(p), named_token) for _, p in QUERIES]

        # As deployed: the search memory on (the buyer is a plain caller, answered from it).
        server = Restarted(url, tmp, port)
        totals, _ = check_mix(port, token, 0)
        share = {name: round(n / listings, 4) for name, n in totals.items()}
        bare = measure(pool, port, [http_request("GET", "/health")], args, args.bare_seconds)
        say(f"  health       {bare['rps']:9.0f} req/s  (client CPU {bare['client_cpu']:.0%} of a core)")
        auth = measure(pool, port, mix_auth, args, args.seconds)
        say(f"  search mix   {auth['rps']:9.1f} req/s  p50 {auth['p50'] * 1000:7.1f} ms  "
            f"p95 {auth['p95'] * 1000:7.1f} ms  ({auth['count']} requests, non-2xx {auth['bad']}; memory on)")
        anon = measure(pool, port, mix_anon, args, args.anon_seconds)
        say(f"  anonymous    {anon['rps']:9.1f} req/s  p50 {anon['p50'] * 1000:7.1f} ms  "
            f"p95 {anon['p95'] * 1000:7.1f} ms  (answered from the memory; non-2xx {anon['bad']})")
        # The engine as deployed: a buyer the memory cannot answer whole.
        _, solo = check_mix(port, named_token, args.solo_reps)
        engine = measure(pool, port, mix_named, args, args.seconds)
        say(f"  engine mix   {engine['rps']:9.1f} req/s  p50 {engine['p50'] * 1000:7.1f} ms  "
            f"p95 {engine['p95'] * 1000:7.1f} ms  ({engine['count']} requests, non-2xx {engine['bad']}; "
            "a named buyer, memory on)")
        for (name, _), per in zip(QUERIES, engine["per"], strict=False):
            say(f"    {name:18s} n={per['n']:5d}  p50 {per['p50'] * 1000:7.1f} ms  p95 {per['p95'] * 1000:7.1f} ms"
                f"  alone {solo[name] * 1000:7.1f} ms  total {totals[name]}")
        server.stop()
        server = None

        # The cold engine: the same buyer's mix with the search memory off, so every request searches.
        server = Restarted(url, tmp, port, {"MARKET_SEARCH_MEMORY": "0"})
        _, cold_solo = check_mix(port, named_token, args.solo_reps)
        cold = measure(pool, port, mix_named, args, args.seconds)
        say(f"  cold mix     {cold['rps']:9.1f} req/s  p50 {cold['p50'] * 1000:7.1f} ms  "
            f"p95 {cold['p95'] * 1000:7.1f} ms  ({cold['count']} requests, non-2xx {cold['bad']}; memory off)")
        for (name, _), per in zip(QUERIES, cold["per"], strict=False):
            say(f"    {name:18s} n={per['n']:5d}  p50 {per['p50'] * 1000:7.1f} ms  p95 {per['p95'] * 1000:7.1f} ms"
                f"  alone {cold_solo[name] * 1000:7.1f} ms")
        for result in (bare, auth, anon, engine, cold):
            if result["bad"]:
                say(f"  non-2xx answers: {result['statuses']}")
        return {"listings": listings, "seed_s": seed_s, "bare": bare, "auth": auth, "anon": anon, "engine": engine,
                "cold": cold, "totals": totals, "share": share, "solo": solo, "cold_solo": cold_solo}
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            say(f"  kept: {tmp}" + (f", database {database.pg_name}" if database.pg_name else ""))
        else:
            asyncio.run(database.drop())
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=100_000, help="listings at the measured size")
    parser.add_argument("--baseline", type=int, default=1000, help="listings at the size growth is compared to")
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL (a fresh database is made next to it)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of the search mix per size")
    parser.add_argument("--bare-seconds", type=float, default=5.0, help="measured seconds of /health per size")
    parser.add_argument("--anon-seconds", type=float, default=5.0, help="measured seconds of the anonymous mix per size")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--solo-reps", type=int, default=3, help="timed tries of each query alone on the idle server")
    parser.add_argument("--providers", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep each size's database (and its directory) for a look")
    args = parser.parse_args()
    if args.db not in ("sqlite",) and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    if args.listings < 1 or args.baseline < 1:
        parser.error("--listings and --baseline are at least 1")
    os.chdir(ROOT)

    run_started = time.perf_counter()
    sizes = [args.baseline] if args.listings == args.baseline else [args.baseline, args.listings]
    with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
        runs = [run_size(args, n, pool) for n in sizes]
    base, top = runs[0], runs[-1]
    figures = {
        "search_growth_p95": top["auth"]["p95"] / base["auth"]["p95"],
        "search_vs_bare": top["auth"]["rps"] / top["bare"]["rps"],
        "engine_growth_p95": top["engine"]["p95"] / base["engine"]["p95"],
        "engine_vs_bare": top["engine"]["rps"] / top["bare"]["rps"],
        "cold_growth_p95": top["cold"]["p95"] / base["cold"]["p95"],
        "cold_vs_bare": top["cold"]["rps"] / top["bare"]["rps"],
    }
    for key, value in figures.items():
        if key.startswith("cold_"):
            say(f"{key:18s} {value:.3f}  (the memory off; no goal)")
            continue
        goal_key = key.replace("engine_", "search_")
        growth = goal_key == "search_growth_p95"
        ok = value <= GOALS[goal_key] if growth else value >= GOALS[goal_key]
        goal = f"<= {GOALS[goal_key]}" if growth else f">= {GOALS[goal_key]}"
        say(f"{key:18s} {value:.3f}  (goal {goal} at 100,000) {'ok' if ok else 'MISSES GOAL'}")
    ms = 1000.0
    line = {
        **{k: round(v, 3) for k, v in figures.items()},
        "listings": top["listings"], "db": "sqlite" if args.db == "sqlite" else "postgresql",
        "p50_ms": round(top["auth"]["p50"] * ms, 1), "p95_ms": round(top["auth"]["p95"] * ms, 1),
        "p50_1000_ms": round(base["auth"]["p50"] * ms, 1), "p95_1000_ms": round(base["auth"]["p95"] * ms, 1),
        "engine_p95_ms": round(top["engine"]["p95"] * ms, 1), "engine_p50_ms": round(top["engine"]["p50"] * ms, 1),
        "engine_p95_1000_ms": round(base["engine"]["p95"] * ms, 1), "engine_qps": round(top["engine"]["rps"], 1),
        "cold_p95_ms": round(top["cold"]["p95"] * ms, 1), "cold_p50_ms": round(top["cold"]["p50"] * ms, 1),
        "cold_p95_1000_ms": round(base["cold"]["p95"] * ms, 1), "cold_qps": round(top["cold"]["rps"], 1),
        "qps": round(top["auth"]["rps"], 1), "bare_qps": round(top["bare"]["rps"], 1),
        "qps_1000": round(base["auth"]["rps"], 1),
        "anon_qps": round(top["anon"]["rps"], 1), "anon_p95_ms": round(top["anon"]["p95"] * ms, 1),
        "anon_vs_bare": round(top["anon"]["rps"] / top["bare"]["rps"], 3),
        "per_query_p95_ms": {name: round(per["p95"] * ms, 1) for (name, _), per in zip(QUERIES, top["auth"]["per"], strict=False)},
        "engine_per_query_p95_ms": {name: round(per["p95"] * ms, 1)
                                    for (name, _), per in zip(QUERIES, top["engine"]["per"], strict=False)},
        "cold_per_query_p95_ms": {name: round(per["p95"] * ms, 1)
                                  for (name, _), per in zip(QUERIES, top["cold"]["per"], strict=False)},
        "alone_ms": {name: round(v * ms, 1) for name, v in top["solo"].items()},
        "cold_alone_ms": {name: round(v * ms, 1) for name, v in top["cold_solo"].items()},
        "alone_1000_ms": {name: round(v * ms, 1) for name, v in base["solo"].items()},
        "match_share": top["share"],
        "non_2xx": sum(r[k]["bad"] for r in runs for k in ("bare", "auth", "anon", "engine", "cold")),
        "seed_s": round(top["seed_s"], 1), "run_s": round(time.perf_counter() - run_started, 1),
        "connections": args.connections, "seconds": args.seconds, "clients": args.clients,
        "client_cpu_max": round(max(r[k]["client_cpu"] for r in runs for k in ("bare", "auth", "anon", "engine", "cold")), 2),
        "cores": os.cpu_count(),
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
