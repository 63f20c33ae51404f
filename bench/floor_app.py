"""The floor's app (``bench/floor.py``): a purchase-shaped pair of requests on the market's
stack, with none of the market in it.

``POST /v1/orders`` authenticates the buyer by a token's hash, reads the listing (under
``FOR SHARE`` on PostgreSQL), writes the order, two signed ledger-like entries over
canonical JSON, a ~1 KB contract, the order's move to active, a statistics upsert, the
day's parties, an outbox row and an idempotency record, and commits: the writes a free
purchase makes, as plain statements on the driver (asyncpg, or sqlite3 in the event
loop's thread as the market's SQLite writer). ``GET /v1/orders/{id}/contract`` reads the
buyer and the contract. No ORM, no middleware, no validation library, no background work.

``FLOOR_BATCH=N`` (N > 0) writes the purchases waiting at the same moment, up to N, in one
transaction, each statement once for all of them (``executemany``), as a group commit
would; each request is answered once its transaction has committed.
"""

import asyncio
import datetime
import hashlib
import json
import os
import sqlite3
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar, Request, Response, get, post

URL = os.environ.get("FLOOR_DATABASE", "")
BATCH = int(os.environ.get("FLOOR_BATCH", "0"))
KEY = Ed25519PrivateKey.generate()
TERMS = "licence terms " * 60

POSTGRES_SCHEMA = """
create table f_accounts (id text primary key, token_hash bytea unique, status text);
create table f_listings (id text primary key, provider text, price numeric, status text);
create table f_orders (id text primary key, buyer text, listing text references f_listings, status text,
                       purpose text, created timestamptz, settled timestamptz);
create table f_entries (idx bigserial primary key, payload bytea, sig bytea, created timestamptz);
create table f_contracts (order_id text primary key references f_orders, doc bytea, digest bytea);
create table f_stats (day date, shard int, n bigint, primary key (day, shard));
create table f_parties (day date, party text, primary key (day, party));
create table f_outbox (id bigserial primary key, kind text, payload bytea);
create table f_idem (key text primary key, response bytea);
"""
SQLITE_SCHEMA = (POSTGRES_SCHEMA.replace("bigserial primary key", "integer primary key autoincrement")
                 .replace("bytea", "blob").replace("timestamptz", "text").replace("date,", "text,"))


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def token_hash(request: Request[Any, Any, Any]) -> bytes:
    return hashlib.sha256(request.headers.get("authorization", "")[7:].encode()).digest()


class Purchase:
    """One purchase's rows, made (documents, signatures, contract) before any write."""

    def __init__(self, buyer: str, listing: str, provider: str, purpose: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.id, self.now, self.day = str(uuid.uuid4()), now, now.date()
        self.order = (self.id, buyer, listing, purpose, now)
        placed = canonical({"kind": "order.placed", "order": self.id, "buyer": buyer, "listing": listing,
                            "at": now.isoformat()})
        doc = canonical({"order": self.id, "terms": TERMS, "provider": provider, "buyer": buyer})
        digest = hashlib.sha256(doc)
        signed = canonical({"kind": "contract.signed", "order": self.id, "digest": digest.hexdigest(),
                            "at": now.isoformat()})
        self.entries = [(placed, KEY.sign(placed), now), (signed, KEY.sign(signed), now)]
        self.contract = (self.id, doc, digest.digest())
        self.parties = [(self.day, buyer), (self.day, provider)]
        self.answer = {"id": self.id, "status": "active", "listing_id": listing, "buyer_id": buyer,
                       "created_at": now.isoformat()}
        self.idempotency = (self.id, canonical(self.answer))


class Postgres:
    def __init__(self) -> None:
        import asyncpg

        self.asyncpg = asyncpg
        self.pool: Any = None

    async def start(self) -> None:
        self.pool = await self.asyncpg.create_pool(URL, min_size=8, max_size=8)

    async def read_terms(self, c: Any, tokens: bytes, listing_id: str, lock: bool) -> tuple[Any, Any]:
        buyer = await c.fetchrow("select id, status from f_accounts where token_hash = $1", tokens)
        await c.fetchrow("select response from f_idem where key = $1", listing_id)
        listing = await c.fetchrow("select id, provider, price, status from f_listings where id = $1"
                                   + (" for share" if lock else ""), listing_id)
        return buyer, listing

    async def write(self, c: Any, purchases: list[Purchase]) -> None:
        many = c.executemany
        if len(purchases) > 1:
            await c.fetch("select id from f_listings where id = any($1::text[]) for share",
                          sorted({p.order[2] for p in purchases}))
        await many("insert into f_orders (id, buyer, listing, status, purpose, created) "
                   "values ($1, $2, $3, 'placed', $4, $5)", [p.order for p in purchases])
        await many("insert into f_entries (payload, sig, created) values ($1, $2, $3)",
                   [e for p in purchases for e in p.entries])
        await many("insert into f_contracts (order_id, doc, digest) values ($1, $2, $3)",
                   [p.contract for p in purchases])
        await many("update f_orders set status = 'active', settled = $2 where id = $1",
                   [(p.id, p.now) for p in purchases])
        await c.execute("insert into f_stats (day, shard, n) values ($1, pg_backend_pid() % 64, $2) "
                        "on conflict (day, shard) do update set n = f_stats.n + excluded.n",
                        purchases[0].day, len(purchases))
        await many("insert into f_parties (day, party) values ($1, $2) on conflict do nothing",
                   sorted({x for p in purchases for x in p.parties}))
        await many("insert into f_outbox (kind, payload) values ('order.settled', $1)",
                   [(p.entries[1][0],) for p in purchases])
        await many("insert into f_idem (key, response) values ($1, $2)", [p.idempotency for p in purchases])

    async def place(self, tokens: bytes, body: dict[str, Any]) -> dict[str, Any]:
        async with self.pool.acquire() as c:
            if BATCH:
                buyer, listing = await self.read_terms(c, tokens, body["listing_id"], lock=False)
                purchase = Purchase(buyer["id"], listing["id"], listing["provider"], body["purpose"])
            else:
                async with c.transaction():
                    buyer, listing = await self.read_terms(c, tokens, body["listing_id"], lock=True)
                    purchase = Purchase(buyer["id"], listing["id"], listing["provider"], body["purpose"])
                    await self.write(c, [purchase])
                return purchase.answer
        await batcher.join(purchase)
        return purchase.answer

    async def write_batch(self, purchases: list[Purchase]) -> None:
        async with self.pool.acquire() as c, c.transaction():
            await self.write(c, purchases)

    async def contract(self, tokens: bytes, order_id: str) -> tuple[str | None, bytes | None]:
        async with self.pool.acquire() as c:
            buyer = await c.fetchval("select id from f_accounts where token_hash = $1", tokens)
            row = await c.fetchrow("select o.buyer, c.doc from f_orders o join f_contracts c on c.order_id = o.id "
                                   "where o.id = $1", order_id)
        return buyer, (bytes(row["doc"]) if row and row["buyer"] == buyer else None)


class Sqlite:
    """sqlite3 in the event loop's thread, as the market's writer: a transaction runs from
    ``BEGIN IMMEDIATE`` to ``COMMIT`` with no await in between."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(URL, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")

    async def start(self) -> None:
        pass

    def write(self, purchases: list[Purchase]) -> None:
        many, iso = self.db.executemany, datetime.datetime.isoformat
        many("insert into f_orders (id, buyer, listing, status, purpose, created) values (?, ?, ?, 'placed', ?, ?)",
             [(*p.order[:4], iso(p.now)) for p in purchases])
        many("insert into f_entries (payload, sig, created) values (?, ?, ?)",
             [(e[0], e[1], iso(e[2])) for p in purchases for e in p.entries])
        many("insert into f_contracts (order_id, doc, digest) values (?, ?, ?)", [p.contract for p in purchases])
        many("update f_orders set status = 'active', settled = ? where id = ?", [(iso(p.now), p.id) for p in purchases])
        self.db.execute("insert into f_stats (day, shard, n) values (?, 0, ?) "
                        "on conflict (day, shard) do update set n = n + excluded.n",
                        (purchases[0].day.isoformat(), len(purchases)))
        many("insert into f_parties (day, party) values (?, ?) on conflict do nothing",
             sorted({(d.isoformat(), x) for p in purchases for d, x in p.parties}))
        many("insert into f_outbox (kind, payload) values ('order.settled', ?)", [(p.entries[1][0],) for p in purchases])
        many("insert into f_idem (key, response) values (?, ?)", [p.idempotency for p in purchases])

    def read_terms(self, tokens: bytes, listing_id: str) -> tuple[Any, Any]:
        buyer = self.db.execute("select id, status from f_accounts where token_hash = ?", (tokens,)).fetchone()
        self.db.execute("select response from f_idem where key = ?", (listing_id,)).fetchone()
        listing = self.db.execute("select id, provider, price, status from f_listings where id = ?",
                                  (listing_id,)).fetchone()
        return buyer, listing

    async def place(self, tokens: bytes, body: dict[str, Any]) -> dict[str, Any]:
        if BATCH:
            buyer, listing = self.read_terms(tokens, body["listing_id"])
            purchase = Purchase(buyer[0], listing[0], listing[1], body["purpose"])
            await batcher.join(purchase)
            return purchase.answer
        self.db.execute("BEGIN IMMEDIATE")
        try:
            buyer, listing = self.read_terms(tokens, body["listing_id"])
            purchase = Purchase(buyer[0], listing[0], listing[1], body["purpose"])
            self.write([purchase])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return purchase.answer

    async def write_batch(self, purchases: list[Purchase]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.write(purchases)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    async def contract(self, tokens: bytes, order_id: str) -> tuple[str | None, bytes | None]:
        buyer = self.db.execute("select id from f_accounts where token_hash = ?", (tokens,)).fetchone()
        row = self.db.execute("select o.buyer, c.doc from f_orders o join f_contracts c on c.order_id = o.id "
                              "where o.id = ?", (order_id,)).fetchone()
        return (buyer and buyer[0]), (row[1] if row and buyer and row[0] == buyer[0] else None)


class Batcher:
    """Purchases waiting at the same moment, up to ``BATCH``, written in one transaction."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Purchase, asyncio.Future[None]]] = []
        self.wake: asyncio.Event | None = None

    async def join(self, purchase: Purchase) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()
            asyncio.get_running_loop().create_task(self.run())
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((purchase, done))
        self.wake.set()
        await done

    async def run(self) -> None:
        assert self.wake is not None
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.waiting:
                group, self.waiting = self.waiting[:BATCH], self.waiting[BATCH:]
                try:
                    await store.write_batch([p for p, _ in group])
                except Exception as exc:  # noqa: BLE001 - every request of the group is answered with it
                    for _, done in group:
                        done.set_exception(exc)
                else:
                    for _, done in group:
                        done.set_result(None)


store: Postgres | Sqlite = Postgres() if URL.startswith("postgresql") else Sqlite()
batcher = Batcher()


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/v1/orders", status_code=201)
async def place(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await store.place(token_hash(request), json.loads(await request.body()))


@get("/v1/orders/{order_id:str}/contract")
async def contract(request: Request[Any, Any, Any], order_id: str) -> Response[bytes]:
    buyer, doc = await store.contract(token_hash(request), order_id)
    if buyer is None:
        return Response(b'{"title": "unauthorized"}', status_code=401, media_type="application/json")
    if doc is None:
        return Response(b'{"title": "not found"}', status_code=404, media_type="application/json")
    return Response(doc, media_type="application/json")


app = Litestar([health, place, contract], on_startup=[store.start])
