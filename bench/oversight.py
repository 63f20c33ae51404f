"""Oversight benchmark: the regulator's overview as trades grow, and the trade CSV export.

    python bench/oversight.py [--db sqlite|postgresql://…] [--trades 1000000] [--small 10000]
                              [--requests 50]

Starts ``market serve`` on a fresh database (as ``bench/api.py`` does) and seeds it in
bulk, directly (executemany in batches): a few hundred providers (USCCs of several
regions), buyers, registered assets and their listings, then settled orders (``active``,
about 5 % ``refunded`` a few days later) with ``settled_at`` spread over the past year,
prices in CNY and USD. The matching ``trade_stats`` and ``trade_parties`` rows are
computed with ``market.oversight.stats``' own keying (``stat_key``, ``day_of``,
``region_of``), exactly what settlement and refunds write.

- **overview**: at ``--small`` trades and again at ``--trades`` (the same market, grown),
  ``--requests`` requests for the past year and as many for the past month over HTTP;
  p95 of each, and ``overview_growth``: the p95 of all of them at ``--trades`` over the
  same at ``--small``. Goal <= 5.
- **csv**: ``GET /v1/oversight/trades`` with ``Accept: text/csv``, every row, streamed;
  rows/s and ``csv_rss_growth_mb``: the server's peak RSS during the download (sampled
  every 50 ms) minus its RSS just before. Goal <= 50 for 1,000,000 rows.

The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import delete, insert, text  # noqa: E402

from bench.api import Database, Server, free_port, say  # noqa: E402

GOALS = {"overview_growth": 5.0, "csv_rss_growth_mb": 50.0}
BATCH = 5000
CHUNK = 50_000
CATEGORIES = ["transport", "logistics", "weather", "energy", "healthcare", "enterprise_credit", "geospatial"]
GRADES = ["general"] * 4 + ["important"]
REGIONS = ["440300", "440100", "441900", "440400", "310000", "110000", "330100", "510100"]
PURPOSES = ["research", "urban_planning", "operations", "statistics", "risk_control"]
LICENCE = json.dumps({"purposes": PURPOSES, "term_days": 365, "redistribution": False, "territory": "domestic"})


class Universe:
    """The accounts, assets and listings the trades reference, and the running statistics."""

    def __init__(self, rng: random.Random, providers: int, buyers: int, assets: int, fee_bps: int) -> None:
        from market.core.ids import new_id
        from market.tools.client import trial_uscc

        self.rng, self.fee_bps = rng, fee_bps
        now = datetime.now(UTC)
        self.now = now
        self.accounts: list[dict[str, Any]] = []
        self.providers: list[tuple[str, str]] = []  # (id, uscc)
        for i in range(providers):
            code = trial_uscc(REGIONS[i % len(REGIONS)])
            account_id = new_id("acct")
            self.providers.append((account_id, code))
            self.accounts.append(self._account(account_id, f"深圳数据供应商 No.{i + 1}", "provider", code))
        self.buyers: list[str] = []
        for i in range(buyers):
            account_id = new_id("acct")
            self.buyers.append(account_id)
            self.accounts.append(self._account(account_id, f"采购方 {i + 1} 科技有限公司", "buyer",
                                               trial_uscc(REGIONS[i % len(REGIONS)])))
        self.assets: list[dict[str, Any]] = []
        self.listings: list[dict[str, Any]] = []
        self.offers: list[dict[str, Any]] = []  # what an order copies
        wrapped = bytes(60)
        for i in range(assets):
            provider_id, uscc = self.providers[i % providers]
            category, grade = rng.choice(CATEGORIES), rng.choice(GRADES)
            currency = "USD" if rng.random() < 0.1 else "CNY"
            sha = f"{rng.getrandbits(256):064x}"
            registered = now - timedelta(days=rng.randint(0, 400))
            asset = {
                "id": new_id("ast"), "provider_id": provider_id, "title": f"城市数据集 {i + 1}（{category}）",
                "description": "made up for the benchmark", "category": category, "tags": "[]", "grade": grade,
                "personal_info": "none", "legal_basis": None, "export_allowed": False, "source": "bench",
                "format": "csv", "status": "registered", "version": 5, "frozen": False, "status_reason": None,
                "registration_number": f"DR-BENCH-{i + 1:06d}", "wrapped_key": wrapped, "content_revision": 1,
                "content_sha256": sha, "registered_revision": 1, "registered_sha256": sha, "certificate": None,
                "certificate_leaf": None, "submitted_at": registered, "notice_started_at": registered,
                "notice_ends_at": registered, "registered_at": registered, "created_at": registered,
                "updated_at": registered,
            }
            plan = {"id": new_id("pln"), "model": "one_time", "price": {"amount": 0, "currency": currency}}
            listing = {
                "id": new_id("lst"), "asset_id": asset["id"], "provider_id": provider_id,
                "live_asset_id": asset["id"], "title": asset["title"], "summary": "", "description": "",
                "tags": "[]", "approval_required": False, "status": "active", "version": 1, "frozen": False,
                "status_reason": None, "terms_version": 1, "plans": json.dumps([plan], ensure_ascii=False),
                "licence": LICENCE, "terms_sha256": sha, "created_at": registered, "updated_at": registered,
            }
            self.assets.append(asset)
            self.listings.append(listing)
            self.offers.append({"listing": listing["id"], "asset": asset["id"], "provider": provider_id,
                                "uscc": uscc, "category": category, "grade": grade, "currency": currency,
                                "plan_id": plan["id"], "plan": listing["plans"][1:-1], "sha": sha})
        self.stats: dict[tuple[str, ...], list[int]] = {}
        self.parties: set[tuple[str, str, str, str]] = set()

    def _account(self, account_id: str, name: str, role: str, uscc: str) -> dict[str, Any]:
        return {"id": account_id, "name": name, "kind": "enterprise", "roles": role, "uscc": uscc,
                "jurisdiction": "CN", "status": "verified", "version": 1, "suspended": False,
                "verified_at": self.now, "verified_by": None, "created_at": self.now}

    def orders(self, n: int) -> list[dict[str, Any]]:
        """``n`` settled orders, counted into the statistics as settlement and refunds count them."""
        from market.core.ids import new_id
        from market.oversight import stats

        rng, rows = self.rng, []
        for _ in range(n):
            offer = self.offers[rng.randrange(len(self.offers))]
            buyer = self.buyers[rng.randrange(len(self.buyers))]
            settled = self.now - timedelta(seconds=rng.randint(0, 365 * 86400))
            price = rng.randint(1, 2000) * 100
            fee = price * self.fee_bps // 10000
            refunded = settled + timedelta(hours=rng.randint(1, 160)) if rng.random() < 0.05 else None
            if refunded is not None and refunded > self.now:
                refunded = self.now
            rows.append({
                "id": new_id("ord"), "listing_id": offer["listing"], "asset_id": offer["asset"], "buyer_id": buyer,
                "provider_id": offer["provider"], "terms_version": 1, "terms_sha256": offer["sha"],
                "plan_id": offer["plan_id"], "plan": offer["plan"], "licence": LICENCE,
                "purpose": PURPOSES[rng.randrange(len(PURPOSES))], "payment_method": "bank_transfer",
                "currency": offer["currency"], "price": price, "fee": fee, "provider_share": price - fee,
                "status": "refunded" if refunded else "active", "version": 3, "needs_holder_approval": False,
                "needs_regulator_approval": False, "holder_decision": None, "regulator_decision": None,
                "status_reason": None, "order_document": None, "buyer_key_id": None, "buyer_signature": None,
                "payment_attempt": 0, "intent_id": None, "client_secret": None,
                "payment_reference": f"bank:B{rng.getrandbits(40):x}", "failure_code": None, "asset_revision": 1,
                "contract": None, "contract_leaf": None, "settled_at": settled,
                "expires_at": settled + timedelta(days=365), "refunded_at": refunded,
                "refund_reference": "bank:recorded" if refunded else None,
                "created_at": settled - timedelta(minutes=rng.randint(1, 120)), "updated_at": refunded or settled,
            })
            dims = stats.Dimensions(offer["currency"], offer["category"], offer["grade"], offer["provider"],
                                    stats.region_of(offer["uscc"]))
            day = stats.day_of(settled)
            slot = self.stats.setdefault(tuple(stats.stat_key(day, dims).values()), [0, 0, 0, 0])
            slot[0] += 1
            slot[1] += price
            self.parties.add((day, offer["currency"], "buyer", buyer))
            self.parties.add((day, offer["currency"], "provider", offer["provider"]))
            if refunded is not None:
                slot = self.stats.setdefault(tuple(stats.stat_key(stats.day_of(refunded), dims).values()),
                                             [0, 0, 0, 0])
                slot[2] += 1
                slot[3] += price
        return rows


async def _insert(session: Any, table: Any, rows: list[Any]) -> None:
    for i in range(0, len(rows), BATCH):
        await session.execute(insert(table), rows[i:i + BATCH])


async def seed_base(url: str, universe: Universe) -> None:
    from market.accounts.models import Account
    from market.core import db
    from market.listings.models import Listing
    from market.registry.models import Asset

    engine = db.make_engine(url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            await _insert(session, Account.__table__, universe.accounts)
            await _insert(session, Asset.__table__, universe.assets)
            await _insert(session, Listing.__table__, universe.listings)
            await session.commit()
    finally:
        await engine.dispose()


async def seed_orders(url: str, universe: Universe, n: int) -> float:
    """Add ``n`` orders, then rewrite the statistics tables from the running totals. Seconds."""
    from market.core import db
    from market.oversight import stats
    from market.oversight.models import TradeParty, TradeStat
    from market.trading.models import Order

    started = time.perf_counter()
    engine = db.make_engine(url)
    try:
        maker = db.make_sessionmaker(engine)
        made = 0
        while made < n:
            rows = universe.orders(min(CHUNK, n - made))
            async with maker() as session:
                await _insert(session, Order.__table__, rows)
                await session.commit()
            made += len(rows)
            if made % 200_000 == 0 or made == n:
                say(f"    {made:,} orders")
        stat_rows = [{**dict(zip(stats.KEY_COLUMNS, key, strict=True)),
                      **dict(zip(stats.MEASURES, values, strict=True))} for key, values in universe.stats.items()]
        party_rows = [dict(zip(("day", "currency", "role", "account_id"), p, strict=True)) for p in universe.parties]
        async with maker() as session:
            await session.execute(delete(TradeStat))
            await session.execute(delete(TradeParty))
            await _insert(session, TradeStat.__table__, stat_rows)
            await _insert(session, TradeParty.__table__, party_rows)
            await stats.rebuild_rollups(session)
            await session.commit()
        say(f"    {len(stat_rows):,} trade_stats rows, {len(party_rows):,} trade_parties rows")
        if engine.dialect.name == "sqlite":
            async with maker() as session:
                await session.execute(text("ANALYZE"))
                await session.commit()
        else:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for table in ("orders", "trade_stats", "trade_parties", "trade_days", "trade_stats_monthly",
                              "trade_parties_monthly", "assets"):
                    await conn.execute(text(f"VACUUM ANALYZE {table}"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def time_overview(base: str, auth: dict[str, str], requests: int) -> dict[str, float]:
    today = datetime.now(UTC).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    periods = {"year": {"from": (today - timedelta(days=365)).isoformat(), "to": tomorrow},
               "month": {"from": (today - timedelta(days=30)).isoformat(), "to": tomorrow}}
    out: dict[str, float] = {}
    every: list[float] = []
    with httpx.Client(base_url=base, headers=auth, timeout=120) as c:
        for name, params in periods.items():
            r = c.get("/v1/oversight/overview", params=params)  # warm-up
            r.raise_for_status()
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                r = c.get("/v1/oversight/overview", params=params)
                times.append(time.perf_counter() - started)
                r.raise_for_status()
            out[f"{name}_p95_ms"] = round(p95(times) * 1000, 2)
            every += times
        body = r.json()
        out["month_orders"] = sum(t["orders"] for t in body["totals"]["by_currency"].values())
    out["p95_ms"] = round(p95(every) * 1000, 2)
    return out


def rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def time_csv(base: str, auth: dict[str, str], pid: int, expected: int) -> dict[str, float]:
    with httpx.Client(base_url=base, headers={**auth, "Accept": "text/csv"}, timeout=600) as c:
        with c.stream("GET", "/v1/oversight/trades", params={"status": "expired"}) as r:  # warm-up, no rows
            r.read()
        before = rss(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lines, size = 0, 0
        started = time.perf_counter()
        try:
            with c.stream("GET", "/v1/oversight/trades") as r:
                r.raise_for_status()
                assert r.headers["content-type"].startswith("text/csv"), r.headers["content-type"]
                for chunk in r.iter_bytes():
                    lines += chunk.count(b"\n")
                    size += len(chunk)
        finally:
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
    rows = lines - 1
    if rows != expected:
        raise RuntimeError(f"the CSV had {rows} rows, {expected} expected")
    return {"csv_rows": rows, "csv_seconds": round(seconds, 2), "csv_rows_per_s": round(rows / seconds),
            "csv_mb": round(size / 1e6, 1), "csv_rss_before_mb": round(before / 2**20, 1),
            "csv_rss_growth_mb": round((peak[0] - before) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a PostgreSQL URL (a database is created)")
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--assets", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    if not 0 < args.small < args.trades:
        parser.error("--small must be positive and below --trades")

    tmp = Path(tempfile.mkdtemp(prefix="market-bench-oversight-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port)
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {server.operator}"}
        universe = Universe(random.Random(args.seed), args.providers, args.buyers, args.assets, 500)
        asyncio.run(seed_base(url, universe))
        say(f"seeding {args.small:,} trades ({args.providers} providers, {args.buyers} buyers, {args.assets} assets)")
        seconds = asyncio.run(seed_orders(url, universe, args.small))
        say(f"  {seconds:.1f} s; timing the overview")
        small = time_overview(base, auth, args.requests)
        say(f"  {small}")
        say(f"growing to {args.trades:,} trades")
        seconds = asyncio.run(seed_orders(url, universe, args.trades - args.small))
        say(f"  {seconds:.1f} s; timing the overview")
        large = time_overview(base, auth, args.requests)
        say(f"  {large}")
        say(f"streaming the CSV of {args.trades:,} trades")
        csv_figures = time_csv(base, auth, server.proc.pid, args.trades)
        say(f"  {csv_figures}")
        figures: dict[str, Any] = {
            "db": "sqlite" if args.db == "sqlite" else "postgresql", "trades": args.trades, "small": args.small,
            "stat_rows": len(universe.stats), "party_rows": len(universe.parties),
            "overview_small": small, "overview_large": large,
            "overview_growth": round(large["p95_ms"] / small["p95_ms"], 2),
            "overview_year_growth": round(large["year_p95_ms"] / small["year_p95_ms"], 2),
            "overview_month_growth": round(large["month_p95_ms"] / small["month_p95_ms"], 2),
            **csv_figures, "goals": GOALS,
        }
        figures["meets_goals"] = (figures["overview_growth"] <= GOALS["overview_growth"]
                                  and figures["csv_rss_growth_mb"] <= GOALS["csv_rss_growth_mb"])
        print(json.dumps(figures, ensure_ascii=False), flush=True)
    finally:
        if server is not None:
            server.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
