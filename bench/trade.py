"""Trading benchmark: free-plan purchases/s over HTTP, and delivery MB/s.

    python bench/trade.py [--db sqlite|postgresql://…] [--workers N] [--buyers 32] [--seconds 10]
                          [--delivery-mib 1024] [--delivery-read-bytes 1048576] [--store file|s3]
                          [--client raw|httpx]

Starts ``market serve`` (``--workers`` uvicorn workers) on a fresh database (as
``bench/api.py`` does), seeds a provider with a few free listings and ``--buyers``
verified buyers over the real HTTP API, then:

- **purchases**: every buyer, concurrently, buys again and again: ``POST /v1/orders``
  (a free plan: the order is settled in its transaction, contract written, ``active``)
  then ``GET /v1/orders/{id}/contract`` (the buyer keeps its 交易凭证). One purchase is
  that pair. Prints purchases/s, p50/p99 of a purchase, and ``purchase_vs_bare``:
  purchases/s over ``/health`` requests/s of the same server in the same run. Goal
  >= 0.03 on SQLite with 1 worker, >= 0.05 on PostgreSQL with 2.
- **delivery**: an asset of ``--delivery-mib`` MiB is registered, listed free and bought;
  its content is downloaded whole (decrypted and streamed by the market, the delivery
  recorded on the ledger). ``delivery_vs_sha256``: download MB/s over the MB/s of plain
  SHA-256 over the same number of bytes in this process. Goal >= 0.25. With ``--store s3``
  the content is kept in an S3 API on this machine (moto, ``bench/objectstore.py``).

The purchases and the download go over raw HTTP/1.1 on keep-alive connections, as
``bench/load.py`` sends the bare route, so that the client costs the machine little beside
the server it measures (``--client httpx`` for the httpx client of earlier rounds). The
buyers' connections are opened one after another, each answered once before the next,
so that with several workers each process gets its share.

The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from bench.api import Database, Server, free_port, http_request, measure, say  # noqa: E402

# purchase_vs_bare: on SQLite with one worker, on PostgreSQL with two.
GOALS = {"purchase_vs_bare": {"sqlite": 0.03, "postgresql": 0.05}, "delivery_vs_sha256": 0.25}
LICENCE = {"purposes": ["research"], "term_days": 365, "redistribution": False, "territory": "domestic"}
FREE = {"model": "free", "price": {"amount": 0, "currency": "CNY"}}
ASSET = {"title": "深圳公交刷卡数据", "description": "Anonymised tap-in records.", "category": "transport",
         "tags": ["bus"], "grade": "general", "personal_info": "anonymized", "export_allowed": False,
         "source": "our own ticketing system", "format": "csv"}


class Party:
    def __init__(self, account: str, token: str) -> None:
        self.id, self.token = account, token
        self.auth = {"Authorization": f"Bearer {token}"}


async def sign_up(c: httpx.AsyncClient, op: Party, roles: list[str], n: int) -> Party:
    from market.tools.client import trial_uscc

    r = await c.post("/v1/accounts", json={"name": f"Bench party {n}", "kind": "enterprise", "roles": roles,
                                           "uscc": trial_uscc()})
    r.raise_for_status()
    party = Party(r.json()["account"]["id"], r.json()["token"])
    r = await c.post(f"/v1/accounts/{party.id}/verification", json={"decision": "approve", "reason": "ok"},
                     headers=op.auth)
    r.raise_for_status()
    return party


async def signing_provider(c: httpx.AsyncClient, op: Party) -> tuple[Party, Ed25519PrivateKey, str]:
    """A verified provider with a registered Ed25519 key: (party, key, key id)."""
    holder = await sign_up(c, op, ["provider"], 0)
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    r = await c.post("/v1/accounts/me/keys", json={"public_key": base64.b64encode(raw).decode()}, headers=holder.auth)
    r.raise_for_status()
    return holder, key, r.json()["id"]


async def listed_asset(c: httpx.AsyncClient, op: Party, holder: Party, key: Ed25519PrivateKey, key_id: str,
                       content: Any, size: int | None = None) -> str:
    """Register an asset of ``content`` (bytes, or an async iterator of ``size`` bytes) and list it free."""
    r = await c.post("/v1/assets", json=ASSET, headers=holder.auth)
    r.raise_for_status()
    aid = r.json()["id"]
    headers = {**holder.auth, **({"Content-Length": str(size)} if size is not None else {})}
    r = await c.put(f"/v1/assets/{aid}/content", content=content, headers=headers, timeout=3600)
    r.raise_for_status()
    r = await c.get(f"/v1/assets/{aid}/claim", headers=holder.auth)
    r.raise_for_status()
    sb = r.json()["signing_bytes"]
    sig = base64.b64encode(key.sign(base64.b64decode(sb))).decode()
    (await c.post(f"/v1/assets/{aid}/claim", json={"signing_bytes": sb, "key_id": key_id, "signature": sig},
                  headers=holder.auth)).raise_for_status()
    r = await c.post(f"/v1/assets/{aid}/review", json={"decision": "approve", "reason": "ok"}, headers=op.auth)
    r.raise_for_status()
    r = await c.post("/v1/listings", headers=holder.auth, json={
        "asset_id": aid, "title": "深圳公交刷卡数据 (free sample)", "plans": [FREE], "licence": LICENCE})
    r.raise_for_status()
    return r.json()["id"]


async def seed(port: int, operator: str, buyers: int, listings: int) -> dict[str, Any]:
    op = Party("", operator)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        holder, key, key_id = await signing_provider(c, op)
        made = [await listed_asset(c, op, holder, key, key_id, os.urandom(4096)) for _ in range(listings)]
        plans = {}
        for lid in made:
            r = await c.get(f"/v1/listings/{lid}")
            plans[lid] = r.json()["plans"][0]["id"]
        people = [await sign_up(c, op, ["buyer"], i + 1) for i in range(buyers)]
    return {"holder": holder, "key": key, "key_id": key_id, "op": op, "listings": plans, "buyers": people}


class _Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time, with no HTTP library:
    the purchases' client costs the machine as little as ``bench/load.py``'s, with which
    the bare route is measured (httpx took ~11 ms of this process's CPU a purchase: three
    quarters of a core on a 2-core machine, beside the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, auth: str) -> None:
        self.reader, self.writer, self.auth = reader, writer, auth

    @classmethod
    async def open(cls, port: int, who: Party) -> "_Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"Authorization: Bearer {who.token}\r\n")

    async def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}{extra}\r\n".encode()
                          + (body or b""))
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("response without Content-Length")
        length = int(head[at + 17:head.find(b"\r\n", at + 2)])
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def purchases(port: int, seeded: dict[str, Any], seconds: float, warmup: float,
                    client: str = "raw") -> dict[str, Any]:
    listings = list(seeded["listings"].items())
    latencies: list[float] = []
    failures: dict[int, int] = {}
    state = {"counting": False, "stop": False, "count": 0}
    limits = httpx.Limits(max_connections=len(seeded["buyers"]), max_keepalive_connections=len(seeded["buyers"]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as c:
        async def buy_httpx(who: Party, lid: str, plan: str) -> int:
            r = await c.post("/v1/orders", headers=who.auth, json={
                "listing_id": lid, "plan_id": plan, "purpose": "research", "payment_method": "free"})
            if r.status_code != 201 or r.json()["status"] != "active":
                return r.status_code
            r = await c.get(f"/v1/orders/{r.json()['id']}/contract", headers=who.auth)
            return r.status_code

        async def buyer_loop(i: int, who: Party, conn: _Connection | None) -> None:
            n = 0
            try:
                while not state["stop"]:
                    lid, plan = listings[(i + n) % len(listings)]
                    n += 1
                    t = time.perf_counter()
                    if conn is None:
                        status = await buy_httpx(who, lid, plan)
                    else:
                        status, body = await conn.send("POST", "/v1/orders", json.dumps({
                            "listing_id": lid, "plan_id": plan, "purpose": "research",
                            "payment_method": "free"}).encode())
                        order = json.loads(body) if status == 201 else {}
                        if status == 201 and order["status"] == "active":
                            status, _ = await conn.send("GET", f"/v1/orders/{order['id']}/contract")
                    ok = status == 200
                    if state["counting"]:
                        if ok:
                            latencies.append(time.perf_counter() - t)
                            state["count"] += 1
                        else:
                            failures[status] = failures.get(status, 0) + 1
            finally:
                if conn is not None:
                    conn.close()

        # The raw client's connections are opened one after another, each answered once
        # before the next is opened: opened all at once, the first server process to wake
        # accepts every one of them (asyncio accepts all that wait), and with several
        # workers one would serve all the buyers (docs/performance.md).
        conns: list[_Connection | None] = []
        for who in seeded["buyers"]:
            conns.append(await _Connection.open(port, who) if client == "raw" else None)
            if conns[-1] is not None:
                await conns[-1].send("GET", "/health")
        tasks = [asyncio.create_task(buyer_loop(i, b, conn))
                 for i, (b, conn) in enumerate(zip(seeded["buyers"], conns, strict=True))]
        await asyncio.sleep(warmup)
        state["counting"] = True
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        state["counting"] = False
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        state["stop"] = True
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"purchases_per_s": state["count"] / elapsed, "failures": failures, "client_cpu": cpu / elapsed,
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None}


async def _pattern(size: int, chunk: int = 1 << 20) -> Any:
    block = os.urandom(chunk)
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        yield piece


class _Counting(asyncio.Protocol):
    """A download on a connection of its own, its body counted as it arrives (no copy)."""

    def __init__(self, request: bytes, done: asyncio.Future[int]) -> None:
        self.request, self.done = request, done
        self.head = bytearray()
        self.length: int | None = None
        self.got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.length is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.head[:end]).lower()
            if int(head[9:12]) != 200:
                self.done.set_exception(RuntimeError(f"download answered {bytes(self.head[:end])!r}"))
                return
            at = head.find(b"\r\ncontent-length:")
            self.length = int(head[at + 17:head.find(b"\r\n", at + 2) if head.find(b"\r\n", at + 2) > 0 else None])
            self.got = len(self.head) - end - 4
        else:
            self.got += len(data)
        if self.got >= self.length and not self.done.done():
            self.done.set_result(self.got)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.got)


async def _download(port: int, path: str, who: Party) -> int:
    """The bytes of ``path``'s body, read as the purchases' raw client reads (``_Connection``)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {who.token}\r\n\r\n".encode()
    await loop.create_connection(lambda: _Counting(request, done), "127.0.0.1", port)
    return await done


async def delivery(port: int, seeded: dict[str, Any], mib: int, read_bytes: int,
                   client: str = "raw") -> dict[str, Any]:
    size = mib << 20
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=3600) as c:
        t = time.perf_counter()
        lid = await listed_asset(c, seeded["op"], seeded["holder"], seeded["key"], seeded["key_id"],
                                 _pattern(size), size)
        upload_s = time.perf_counter() - t
        r = await c.get(f"/v1/listings/{lid}")
        buyer = seeded["buyers"][0]
        r = await c.post("/v1/orders", headers=buyer.auth, json={
            "listing_id": lid, "plan_id": r.json()["plans"][0]["id"], "purpose": "research", "payment_method": "free"})
        r.raise_for_status()
        order = r.json()["id"]
        got = 0
        t = time.perf_counter()
        if client == "raw":
            got = await _download(port, f"/v1/orders/{order}/content", buyer)
        else:
            async with c.stream("GET", f"/v1/orders/{order}/content", headers=buyer.auth) as response:
                response.raise_for_status()
                async for piece in response.aiter_raw(read_bytes or None):
                    got += len(piece)
        download_s = time.perf_counter() - t
    if got != size:
        raise RuntimeError(f"downloaded {got} bytes, want {size}")
    buffer = os.urandom(1 << 20)
    t = time.perf_counter()
    digest = hashlib.sha256()
    for _ in range(mib):
        digest.update(buffer)
    sha_s = time.perf_counter() - t
    return {"download_mb_s": size / download_s / 1e6, "sha256_mb_s": size / sha_s / 1e6, "upload_s": upload_s,
            "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument("--buyers", type=int, default=32, help="concurrent buyers")
    parser.add_argument("--listings", type=int, default=4, help="free listings they buy from")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32, help="connections for the bare route")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--delivery-mib", type=int, default=1024, help="size of the delivered asset; 0 skips")
    parser.add_argument("--delivery-read-bytes", type=int, default=1 << 20,
                        help="with --client httpx, the client takes the body in pieces of this many bytes (httpx "
                             "re-cuts what arrives, a copy of every byte in this process); 0: as the connection gives them")
    parser.add_argument("--store", choices=["file", "s3"], default="file", help="where the market keeps content")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="the purchases' and the download's client: raw HTTP/1.1 (as the bare route's load), "
                             "or httpx (what rounds before the fifth measured with)")
    args = parser.parse_args()
    if args.db != "sqlite" and not args.db.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
        parser.error("--db is sqlite or a postgresql:// URL")
    os.chdir(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-trade-"))
    database = Database(args.db, tmp)
    server: Server | None = None
    from bench.objectstore import store_environment

    store = contextlib.ExitStack()  # the object store of --store s3, for as long as the server runs
    try:
        url = asyncio.run(database.create())
        port = free_port()
        server = Server(url, tmp, port, {"MARKET_WORKERS": str(args.workers),
                                         "MARKET_MAX_UPLOAD_BYTES": str(max(args.delivery_mib, 1) << 21),
                                         **store.enter_context(store_environment(args.store))})
        db_name = "sqlite" if args.db == "sqlite" else "postgresql"
        say(f"server on 127.0.0.1:{port} ({db_name}, {args.workers} worker(s)); seeding {args.buyers} buyers")
        seeded = asyncio.run(seed(port, server.operator, args.buyers, args.listings))
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            bare = measure(pool, port, http_request("GET", "/health"), args)
        say(f"health         {bare['rps']:9.0f} req/s")
        bought = asyncio.run(purchases(port, seeded, args.seconds, args.warmup, args.client))
        ratio = bought["purchases_per_s"] / bare["rps"]
        say(f"purchases      {bought['purchases_per_s']:9.1f} /s   p50 {bought['p50_ms']:.1f} ms  "
            f"p99 {bought['p99_ms']:.1f} ms  (client CPU {bought['client_cpu']:.0%})  failures {bought['failures']}")
        say(f"purchase_vs_bare   {ratio:.3f}  (goal >= {GOALS['purchase_vs_bare'][db_name]})")
        figures: dict[str, Any] = {"purchase_vs_bare": round(ratio, 3)}
        if args.delivery_mib:
            sent = asyncio.run(delivery(port, seeded, args.delivery_mib, args.delivery_read_bytes, args.client))
            dratio = sent["download_mb_s"] / sent["sha256_mb_s"]
            say(f"delivery       {sent['download_mb_s']:9.1f} MB/s  (SHA-256 {sent['sha256_mb_s']:.0f} MB/s; "
                f"upload took {sent['upload_s']:.1f} s)")
            say(f"delivery_vs_sha256 {dratio:.3f}  (goal >= {GOALS['delivery_vs_sha256']})")
            figures.update(delivery_vs_sha256=round(dratio, 3), download_mb_s=round(sent["download_mb_s"], 1),
                           sha256_mb_s=round(sent["sha256_mb_s"], 1), delivery_bytes=sent["bytes"],
                           delivery_read_bytes=args.delivery_read_bytes)
        figures.update(purchases_per_s=round(bought["purchases_per_s"], 1), p50_ms=round(bought["p50_ms"], 1),
                       p99_ms=round(bought["p99_ms"], 1), health_rps=round(bare["rps"], 1), db=db_name,
                       workers=args.workers, buyers=args.buyers, failures=bought["failures"],
                       client_cpu=round(bought["client_cpu"], 2), client=args.client, cores=os.cpu_count(),
                       store=args.store)
        print(json.dumps(figures), flush=True)
    finally:
        if server is not None:
            server.stop()
        store.close()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
