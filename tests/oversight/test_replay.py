"""``market oversight replay``: against a real ``market serve`` process, after a few hundred
random trades (free and bank-transfer orders, some refunded), the replay agrees with the
market (exit 0); once the operator rewrites a contract, loses a document or rewrites the
books (``trade_stats``), the replay names the difference (exit 1). A document served for
no entry (a market that answers more than it committed to) is found as well."""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from market.core import db
from market.oversight.replay import ReplayError, replay
from tests.conftest import Parties, Party, make_settings
from tests.regulator_acts import enroll_regulator
from tests.serving import serving
from tests.trading.support import FREE, ONE_TIME, buyer, offer, order_body

pytestmark = pytest.mark.slow

ORDERS = 300  # placed concurrently over HTTP; a third paid by bank transfer
REFUNDS = 16  # each resolution takes about 0.4 s of the single SQLite writer
DOWNLOADS = 6  # orders whose buyers fetch a few one-byte ranges (receipts, in batches on the ledger)
CATEGORIES = ["transport", "energy", "healthcare", "finance"]


class Market:
    def __init__(self, base: str, url: str, vkey: str, regulator: str, orders: list[dict[str, Any]]) -> None:
        self.base, self.url, self.vkey, self.regulator, self.orders = base, url, vkey, regulator, orders

    def cli(self, *extra: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "market.tools.cli", "oversight", "replay", self.base, "--vkey", self.vkey,
             "--token", token or self.regulator, "--workers", "1", *extra],
            capture_output=True, text=True, timeout=120, env={**os.environ, "MARKET_LOG_LEVEL": "WARNING"})

    @asynccontextmanager
    async def database(self, *, read_only: bool = False) -> Any:
        """A transaction on the market's database: a writing one (it queues for SQLite's
        write lock), or with ``read_only`` a deferred one that takes no lock."""
        engine = db.make_engine(self.url)
        options = {db.READ_ONLY: True} if read_only else {}
        try:
            async with engine.execution_options(**options).begin() as conn:
                yield conn
        finally:
            await engine.dispose()


async def _trade(client: httpx.AsyncClient, parties: Parties, operator: Party) -> list[dict[str, Any]]:
    """Providers with listings in several categories, buyers, ORDERS random orders placed
    concurrently (free, or one-time paid by bank transfer), REFUNDS of them refunded."""
    rng = random.Random(20261201)
    offers = []
    for n in range(6):
        _, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE],
                                 asset={"category": CATEGORIES[n % len(CATEGORIES)]})
        offers.append(listing)
    buyers = [await buyer(client, parties) for _ in range(8)]
    gate = asyncio.Semaphore(12)

    async def one(i: int) -> dict[str, Any]:
        listing, who = rng.choice(offers), rng.choice(buyers)
        model = "one_time" if i % 3 == 0 else "free"
        async with gate:
            r = await client.post("/v1/orders", json=order_body(listing, model), headers=who.auth)
            assert r.status_code == 201, r.text
            order = r.json()
            if model == "one_time":
                r = await client.post(f"/v1/orders/{order['id']}/payment", headers=operator.auth,
                                      json={"reference": f"CMB-{i:04d}", "amount": order["price"]})
                assert r.status_code == 200, r.text
            return {**order, "buyer": who}

    orders = await asyncio.gather(*(one(i) for i in range(ORDERS)))

    async def refund(order: dict[str, Any]) -> None:
        async with gate:
            r = await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": "not as described"},
                                  headers=order["buyer"].auth)
            assert r.status_code == 201, r.text
            bank = {"reference": f"CMB-RF-{order['id']}"} if order["payment"]["provider"] == "bank_transfer" else {}
            r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=operator.auth,
                                  json={"decision": "refund", "reason": "the file was empty", **bank})
            assert r.status_code == 200, r.text

    refunded = rng.sample(orders, REFUNDS)
    await asyncio.gather(*(refund(o) for o in refunded))
    for order in [o for o in orders if o not in refunded][:DOWNLOADS]:
        for n in range(3):
            r = await client.get(f"/v1/orders/{order['id']}/content",
                                 headers={**order["buyer"].auth, "Range": f"bytes={n}-{n}"})
            assert r.status_code == 206, r.text
    return [{k: v for k, v in o.items() if k != "buyer"} for o in orders]


async def _settled(client: httpx.AsyncClient, url: str, seconds: float = 60, receipts: int = 0) -> int:
    """Wait until the server is idle — ``receipts`` delivery receipts kept and every batch
    of them closed (the clock, after the window), every trade document read by the alert
    evaluator, nothing pending on the ledger and the served checkpoint covering every
    leaf; its size.

    The tests then write to the database from this process (a rewritten contract, a lost
    document). On SQLite such a writer queues for the write lock on the busy handler,
    and while the server's clock still works through a burst of trades (alert batches,
    one transaction each) it can wait past the 30 s busy timeout on a loaded machine."""
    # Read-only (a deferred BEGIN): in WAL mode it takes no lock. A writing transaction
    # here would begin IMMEDIATE and queue for the write lock on SQLite's busy handler,
    # which the server's own writers, handing the lock from one to the next, can starve
    # past the 30 s busy timeout when the machine is loaded ("database is locked").
    engine = db.make_engine(url)
    reader = engine.execution_options(**{db.READ_ONLY: True})
    deadline = time.monotonic() + seconds
    try:
        while True:
            async with reader.connect() as conn:
                pending = (await conn.execute(text("SELECT count(*) FROM ledger_pending"))).scalar_one()
                pending += (await conn.execute(text("SELECT count(*) FROM delivery_batches "
                                                    "WHERE closed_at IS NULL"))).scalar_one()
                # a receipt is kept once its body is sent, which can be after the client has it
                pending += receipts - (await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one()
                leaves = (await conn.execute(text("SELECT count(*) FROM ledger_leaves"))).scalar_one()
                unread = (await conn.execute(text(
                    "SELECT count(*) FROM trade_documents WHERE id > COALESCE((SELECT position FROM "
                    "evaluator_marks WHERE source = 'trade_documents'), 0)"))).scalar_one()
            size = int((await client.get("/v1/ledger/checkpoint")).text.split("\n")[1])
            if pending == 0 and unread == 0 and size == leaves:
                return size
            assert time.monotonic() < deadline, \
                f"{pending} entries still pending, {unread} documents unread, checkpoint {size} of {leaves}"
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def market(databases, tmp_path_factory) -> Any:
    settings = make_settings(tmp_path_factory.mktemp("replay"), await databases.new())
    async with serving(settings, MARKET_DELIVERY_RECEIPT_WINDOW="1s") as served:
        operator_token = served.operator_token
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as client:
            regulator_token = (await enroll_regulator(client, settings, "Regulator")).token
            r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {operator_token}"})
            operator = Party(r.json()["id"], operator_token, r.json())
            started = time.monotonic()
            orders = await _trade(client, Parties(client, settings, operator), operator)  # type: ignore[arg-type]
            size = await _settled(client, settings.sqlalchemy_url, receipts=3 * DOWNLOADS)
            print(f"{len(orders)} orders, {REFUNDS} refunded, a log of {size} entries in "
                  f"{time.monotonic() - started:.1f} s")
            vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
        yield Market(served.base, settings.sqlalchemy_url, vkey, regulator_token, orders)


def _report(m: Market) -> dict[str, Any]:
    done = m.cli("--json")
    assert done.returncode in (0, 1), done.stderr
    return {"exit": done.returncode, **json.loads(done.stdout)}


async def test_the_replay_agrees_with_an_honest_market(market: Market) -> None:
    done = await asyncio.to_thread(market.cli)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: log of "), done.stdout
    report = await asyncio.to_thread(_report, market)
    assert report["exit"] == 0 and report["ok"] and report["findings"] == [] and report["totals_compared"]
    cny = report["recomputed"]["totals"]["by_currency"]["CNY"]
    paid = [o for o in market.orders if o["price"]["amount"] > 0]
    assert cny["orders"] == len(market.orders)
    assert cny["value"] == sum(o["price"]["amount"] for o in paid)
    assert cny["refunds"] == REFUNDS and cny["buyers"] == 8 and cny["providers"] == 6
    async with market.database(read_only=True) as conn:
        batches = (await conn.execute(text("SELECT count(*) FROM delivery_batches"))).scalar_one()
        receipts = (await conn.execute(text("SELECT count(*) FROM deliveries"))).scalar_one()
    assert receipts == 3 * DOWNLOADS and DOWNLOADS <= batches < receipts  # one delivery.sent per batch
    assert report["documents_checked"] == report["confidential_entries"] == \
        2 * len(market.orders) + 2 * REFUNDS + batches
    # Salted details: each refund's two reasons (dispute, resolution); each asset's commitment and conflicts.
    assert report["salted_checked"] >= 2 * REFUNDS + 2 * 6


async def test_a_rewritten_contract_is_named(market: Market) -> None:
    order = next(o for o in market.orders if o["price"]["amount"] > 0)
    async with market.database() as conn:
        row = (await conn.execute(text("SELECT id, document FROM trade_documents WHERE subject = :s AND "
                                       "type = 'trade.settled'"), {"s": f"order:{order['id']}"})).one()
        contract = json.loads(row.document)
        contract["price"]["amount"] = 1
        await conn.execute(text("UPDATE trade_documents SET document = :d WHERE id = :i"),
                           {"d": json.dumps(contract, ensure_ascii=False), "i": row.id})
    try:
        done = await asyncio.to_thread(market.cli)
        assert done.returncode == 1, done.stdout + done.stderr
        altered = [line for line in done.stdout.splitlines() if line.startswith("altered:")]
        assert len(altered) == 1 and f"trade.settled order:{order['id']}" in altered[0], done.stdout
        # Without the contract, its order is not among the documents' totals.
        assert any(line.startswith("total: CNY orders: overview") for line in done.stdout.splitlines()), done.stdout
        assert done.stdout.splitlines()[-1].startswith("DIFFERENCES:")
    finally:
        async with market.database() as conn:
            await conn.execute(text("UPDATE trade_documents SET document = :d WHERE id = :i"),
                               {"d": row.document, "i": row.id})
    assert (await asyncio.to_thread(market.cli)).returncode == 0


async def test_a_lost_document_is_named(market: Market) -> None:
    async with market.database() as conn:
        row = (await conn.execute(text("SELECT id, subject, type, document, document_sha256, created_at FROM "
                                       "trade_documents WHERE type = 'trade.refunded' "
                                       "AND document NOT LIKE '%\"reason\":%' "
                                       "ORDER BY id LIMIT 1"))).one()
        await conn.execute(text("DELETE FROM trade_documents WHERE id = :i"), {"i": row.id})
    try:
        report = await asyncio.to_thread(_report, market)
        assert report["exit"] == 1
        kinds = {f["kind"] for f in report["findings"]}
        assert kinds == {"missing", "total"}, report["findings"]
        missing = [f for f in report["findings"] if f["kind"] == "missing"]
        assert len(missing) == 1 and missing[0]["type"] == "trade.refunded" and missing[0]["subject"] == row.subject
        refunds = next(f for f in report["findings"] if f["message"].startswith("CNY refunds:"))
        assert (refunds["overview"], refunds["documents"]) == (REFUNDS, REFUNDS - 1)
    finally:
        async with market.database() as conn:
            await conn.execute(text("INSERT INTO trade_documents (id, subject, type, document, document_sha256, "
                                    "created_at) VALUES (:id, :subject, :type, :document, :document_sha256, "
                                    ":created_at)"), row._asdict())
    assert (await asyncio.to_thread(market.cli)).returncode == 0


async def test_a_lost_salted_detail_is_named(market: Market) -> None:
    """Salted details are checked like trade documents: a refund's reason (named inside
    the refund's document) and a draft's commitment (named in a public entry)."""
    columns = "id, subject, type, document, document_sha256, created_at"
    async with market.database() as conn:
        reason = (await conn.execute(text(f"SELECT {columns} FROM trade_documents WHERE type = 'trade.refunded' "
                                          "AND document LIKE '%\"reason\":%' ORDER BY id LIMIT 1"))).one()
        commitment = (await conn.execute(text(f"SELECT {columns} FROM trade_documents "
                                              "WHERE type = 'asset.content_uploaded' ORDER BY id LIMIT 1"))).one()
        for row in (reason, commitment):
            await conn.execute(text("DELETE FROM trade_documents WHERE id = :i"), {"i": row.id})
    try:
        report = await asyncio.to_thread(_report, market)
        assert report["exit"] == 1
        found = sorted((f["kind"], f["type"], f["subject"]) for f in report["findings"])
        assert found == sorted([("missing", "trade.refunded", reason.subject),
                                ("missing", "asset.content_uploaded", commitment.subject)]), report["findings"]
        assert all(reason.document_sha256 in f["message"] or commitment.document_sha256 in f["message"]
                   for f in report["findings"])
    finally:
        async with market.database() as conn:
            for row in (reason, commitment):
                await conn.execute(text(f"INSERT INTO trade_documents ({columns}) VALUES (:id, :subject, :type, "
                                        ":document, :document_sha256, :created_at)"), row._asdict())
    assert (await asyncio.to_thread(market.cli)).returncode == 0


async def test_rewritten_books_are_named(market: Market) -> None:
    """The overview reads the statistics kept at settlement: an operator lowering a
    provider's takings there (its day row, and the day's total) is named."""
    async with market.database() as conn:
        row = (await conn.execute(text("SELECT id, day, currency, provider_id, category, value FROM trade_stats "
                                       "WHERE value > 0 ORDER BY id LIMIT 1"))).one()
        await conn.execute(text("UPDATE trade_stats SET value = value - 1000 WHERE id = :i"), {"i": row.id})
        # One of the day total's shard rows (market.oversight.models.SHARDS).
        day = {"d": row.day, "c": row.currency, "s": (await conn.execute(text(
            "SELECT min(shard) FROM trade_days WHERE day = :d AND currency = :c"),
            {"d": row.day, "c": row.currency})).scalar_one()}
        await conn.execute(text("UPDATE trade_days SET value = value - 1000 WHERE day = :d AND currency = :c "
                                "AND shard = :s"), day)
    try:
        done = await asyncio.to_thread(market.cli)
        assert done.returncode == 1, done.stdout + done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith("total:")]
        assert f"total: CNY provider {row.provider_id} value: overview" in done.stdout, done.stdout
        assert f"total: CNY category {row.category} value: overview" in done.stdout
        assert any(line.startswith("total: CNY value: overview") and "differs by -1000" in line for line in lines)
        assert not any(line.startswith(("missing:", "altered:", "extra:")) for line in done.stdout.splitlines())
    finally:
        async with market.database() as conn:
            await conn.execute(text("UPDATE trade_stats SET value = :v WHERE id = :i"), {"v": row.value, "i": row.id})
            await conn.execute(text("UPDATE trade_days SET value = value + 1000 WHERE day = :d AND currency = :c "
                                    "AND shard = :s"), day)
    assert (await asyncio.to_thread(market.cli)).returncode == 0


def _injecting(base: str, extra: dict[str, Any]) -> httpx.Client:
    """A client to the real server that adds ``extra`` to the first page of documents."""
    real = httpx.HTTPTransport()

    def handle(request: httpx.Request) -> httpx.Response:
        response = real.handle_request(request)
        if request.url.path != "/v1/oversight/documents" or request.url.params.get("start") != "0":
            return response
        body = json.loads(response.read())
        body["items"].append(extra)
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url=base, timeout=60)


def _entries(base: str) -> Iterator[dict[str, Any]]:
    start: int | None = 0
    while start is not None:
        page = httpx.get(f"{base}/v1/ledger/entries", params={"start": start, "limit": 500}).json()
        yield from page["items"]
        start = page["next_start"]


async def test_a_document_for_no_entry_is_named(market: Market) -> None:
    public = await asyncio.to_thread(lambda: next(e for e in _entries(market.base)
                                                  if e["entry"]["type"] == "asset.registered"))
    extra = {"index": public["index"], "document": {"event": "trade.settled", "salt": "x"}}
    with _injecting(market.base, extra) as client:
        report = await asyncio.to_thread(replay, market.base, market.vkey, market.regulator, client=client,
                                         workers=1)
    assert not report.ok
    assert [(f.kind, f.index) for f in report.findings] == [("extra", public["index"])]


async def test_what_stops_a_replay(market: Market) -> None:
    done = await asyncio.to_thread(market.cli, token="tok_not_a_token")
    assert done.returncode == 2 and "HTTP 401" in done.stderr, done.stderr
    with pytest.raises(ReplayError, match="vkey"):
        replay(market.base, "not-a-vkey", market.regulator)
    # A log that does not verify under another key: a finding, exit 1.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ledger import make_vkey

    other = make_vkey("ledger.test.example/log", Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw))
    report = await asyncio.to_thread(replay, market.base, other, market.regulator, workers=1)
    assert not report.ok and [f.kind for f in report.findings] == ["log"]
