"""API benchmark: requests/s of hot routes over HTTP against one real server.

    python bench/api.py [--db sqlite|postgresql://…] [--seconds 5] [--connections 32]

Starts ``market serve`` (uvicorn, one worker) on a free loopback port against a fresh
database in a temporary directory (SQLite by default; with ``--db postgresql://…`` a
new database ``market_bench_<random>`` is created next to the one the URL names and
dropped at the end), seeds 500 registered assets through the real HTTP flow (draft,
content, claim, signed claim, operator approval; ``MARKET_NOTICE_PERIOD=0`` makes the
approval register at once), then measures each route under ``--connections``
concurrent keep-alive connections: a warm-up, then ``--seconds`` of counting.

Routes: ``/health`` (the bare route), ``GET /v1/accounts/me``, ``GET /v1/assets?limit=50``,
``GET /v1/ledger/checkpoint`` and ``POST /v1/accounts/me/tokens``. Ratios:

- ``read_vs_bare``: min(accounts/me, checkpoint) / health. Goal >= 0.3.
- ``list_vs_bare``: assets?limit=50 / health. Goal >= 0.1.
- ``write_vs_bare``: POST tokens / health. Goal >= 0.1.

The load generator (``bench/load.py``, shared by the benchmarks) is a small HTTP/1.1
client on raw asyncio sockets (uvloop when installed), run in ``--clients`` separate processes so that it is not what limits the
figures; it reports its own CPU use next to the figures. Rate limits are set far
above anything the benchmark sends (``MARKET_RATE_LIMIT_*`` in the server's
environment), so they never answer 429 here; any non-2xx answer is counted and
reported. The last line printed is one JSON object with the ratios and raw figures.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402

GOALS = {"read_vs_bare": 0.3, "list_vs_bare": 0.1, "write_vs_bare": 0.1}
HIGH_LIMIT = "100000000"


def say(msg: str) -> None:
    print(msg, flush=True)


# --- the load generator --------------------------------------------------------------


def http_request(method: str, path: str, token: str | None = None, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def measure(pool: Any, port: int, request: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """Requests/s of ``request`` under ``args.connections`` connections spread over the client processes."""
    return load.measure(pool, port, [request], args, args.seconds)


# --- the server and its data ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Database:
    """A fresh database for the run: a SQLite file in ``tmp``, or a new PostgreSQL database."""

    def __init__(self, spec: str, tmp: Path) -> None:
        self.spec, self.tmp, self.pg_name = spec, tmp, ""

    async def _admin(self, sql: str) -> None:
        import asyncpg
        from sqlalchemy.engine import make_url

        from market.core.config import async_database_url

        u = make_url(async_database_url(self.spec))
        conn = await asyncpg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username,
                                     password=u.password, database=u.database or "postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> str:
        if self.spec == "sqlite":
            return f"sqlite+aiosqlite:///{(self.tmp / 'market.db').as_posix()}"
        from sqlalchemy.engine import make_url

        from market.core.config import async_database_url

        self.pg_name = f"market_bench_{secrets.token_hex(6)}"
        await self._admin(f'CREATE DATABASE "{self.pg_name}"')
        return make_url(async_database_url(self.spec)).set(database=self.pg_name).render_as_string(hide_password=False)

    async def drop(self) -> None:
        if self.pg_name:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def wait_until_ready(url: str, proc: subprocess.Popen[Any], log: Path, seconds: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; raise if ``proc`` exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the server did not get ready; see {log}")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen[Any], log: IO[str], seconds: float = 20.0) -> None:
    """Stop a server as Ctrl-C would (its shutdown runs), killed if it takes over ``seconds``."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


class Server:
    """``market serve`` in a child process; the operator token it prints on first start."""

    def __init__(self, url: str, tmp: Path, port: int, extra_env: dict[str, str] | None = None) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "MARKET_DATA_DIR": str(tmp / "data"),
            "MARKET_DATABASE_URL": url,
            "MARKET_NOTICE_PERIOD": "0",
            "MARKET_LOG_LEVEL": "WARNING",
            "MARKET_WORKERS": "1",
            "PYTHONPATH": str(ROOT),  # this checkout's code, whatever is installed
            # Far above anything sent here, so the limits never shape the figures.
            "MARKET_RATE_LIMIT_PER_MINUTE": HIGH_LIMIT,
            "MARKET_RATE_LIMIT_SIGNUPS_PER_HOUR": HIGH_LIMIT,
            "MARKET_MAX_TOKENS_PER_ACCOUNT": HIGH_LIMIT,  # the write figure mints tokens
        }
        self.env.pop("MARKET_REDIS_URL", None)
        self.env.update(extra_env or {})
        self.log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)],
            cwd=tmp, env=self.env, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        line = ""
        while "mkt_" not in line:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {tmp / 'server.log'}")
        self.operator = line.strip()
        wait_until_ready(f"http://127.0.0.1:{port}/ready", self.proc, tmp / "server.log")

    def stop(self) -> None:
        stop_server(self.proc, self.log)


ASSET = {"title": "Bus tap-in records", "description": "Anonymised tap-in/tap-out records.", "category": "transport",
         "tags": ["bus"], "grade": "general", "personal_info": "anonymized", "export_allowed": False,
         "source": "our own ticketing system", "format": "csv"}


async def seed(port: int, operator: str, assets: int) -> dict[str, str]:
    """A verified provider with a key, ``assets`` registered assets; returns tokens for the load."""
    base = f"http://127.0.0.1:{port}"
    op = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        uscc = "91350100M000100Y43"
        r = await c.post("/v1/accounts", json={"name": "Bench Data Co", "kind": "enterprise", "roles": ["provider"],
                                               "uscc": uscc})
        r.raise_for_status()
        pid, token = r.json()["account"]["id"], r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        (await c.post(f"/v1/accounts/{pid}/verification", json={"decision": "approve", "reason": "ok"},
                      headers=op)).raise_for_status()
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        r = await c.post("/v1/accounts/me/keys", json={"public_key": base64.b64encode(raw).decode()}, headers=auth)
        r.raise_for_status()
        key_id = r.json()["id"]

        async def one(i: int) -> None:
            r = await c.post("/v1/assets", json={**ASSET, "title": f"Bus tap-in records #{i}"}, headers=auth)
            r.raise_for_status()
            aid = r.json()["id"]
            (await c.put(f"/v1/assets/{aid}/content", content=os.urandom(1000), headers=auth)).raise_for_status()
            r = await c.get(f"/v1/assets/{aid}/claim", headers=auth)
            r.raise_for_status()
            sb = r.json()["signing_bytes"]
            sig = base64.b64encode(key.sign(base64.b64decode(sb))).decode()
            (await c.post(f"/v1/assets/{aid}/claim", json={"signing_bytes": sb, "key_id": key_id, "signature": sig},
                          headers=auth)).raise_for_status()
            r = await c.post(f"/v1/assets/{aid}/review", json={"decision": "approve", "reason": "ok"}, headers=op)
            r.raise_for_status()
            if r.json()["status"] != "registered":
                raise RuntimeError(f"asset {aid} is {r.json()['status']}, not registered")

        sem = asyncio.Semaphore(8)

        async def bounded(i: int) -> None:
            async with sem:
                await one(i)

        await asyncio.gather(*(bounded(i) for i in range(assets)))
        r = await c.get("/v1/assets", params={"limit": 50})
        r.raise_for_status()
        if len(r.json()["items"]) != 50:
            raise RuntimeError(f"GET /v1/assets?limit=50 shows {len(r.json()['items'])} assets, want 50")
        r = await c.get("/v1/assets", params={"limit": 500})
        if len(r.json()["items"]) < min(assets, 500):
            raise RuntimeError(f"only {len(r.json()['items'])} public assets listed, want {assets}")
    return {"provider": token}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL (a fresh database is made next to it)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per route")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--assets", type=int, default=500)
    args = parser.parse_args()
    if args.db not in ("sqlite",) and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)

    tmp = Path(tempfile.mkdtemp(prefix="market-bench-api-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port)
        say(f"server on 127.0.0.1:{port} ({'SQLite' if args.db == 'sqlite' else 'PostgreSQL'}), seeding {args.assets} assets")
        started = time.perf_counter()
        tokens = asyncio.run(seed(port, server.operator, args.assets))
        say(f"seeded in {time.perf_counter() - started:.1f} s")
        routes = {
            "health": http_request("GET", "/health"),
            "accounts_me": http_request("GET", "/v1/accounts/me", tokens["provider"]),
            "assets_list": http_request("GET", "/v1/assets?limit=50"),
            "checkpoint": http_request("GET", "/v1/ledger/checkpoint"),
            "post_tokens": http_request("POST", "/v1/accounts/me/tokens", tokens["provider"], b"{}"),
        }
        figures: dict[str, float] = {}
        extra: dict[str, Any] = {}
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            for name, request in routes.items():
                result = measure(pool, port, request, args)
                figures[name] = result["rps"]
                extra[name] = result
                note = f"  non-2xx {result['statuses']}" if result["bad"] else ""
                say(f"{name:12s} {result['rps']:9.0f} req/s   (client CPU {result['client_cpu']:.0%} of a core){note}")
        ratios = {
            "read_vs_bare": min(figures["accounts_me"], figures["checkpoint"]) / figures["health"],
            "list_vs_bare": figures["assets_list"] / figures["health"],
            "write_vs_bare": figures["post_tokens"] / figures["health"],
        }
        for key, value in ratios.items():
            say(f"{key:14s} {value:.3f}  (goal >= {GOALS[key]}) {'ok' if value >= GOALS[key] else 'BELOW GOAL'}")
        bad = sum(e["bad"] for e in extra.values())
        result_line = {**{k: round(v, 3) for k, v in ratios.items()},
                       **{f"{k}_rps": round(v, 1) for k, v in figures.items()},
                       "db": "sqlite" if args.db == "sqlite" else "postgresql", "connections": args.connections,
                       "seconds": args.seconds, "clients": args.clients, "non_2xx": bad,
                       "client_cpu_max": round(max(e["client_cpu"] for e in extra.values()), 2),
                       "cores": os.cpu_count()}
        print(json.dumps(result_line), flush=True)
    finally:
        if server is not None:
            server.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
