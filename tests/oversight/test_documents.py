"""``GET /v1/oversight/documents``: regulators only; every integrated confidential entry
once, in index order, with the document whose salted hash it holds; paged and bounded;
a document the market lost or changed shows as such."""

import asyncio
import hashlib
import json
from typing import Any

import rfc8785
from sqlalchemy import delete, select, update

from market.accounts.models import Account
from market.core.audit import TradeDocument
from market.core.context import Ctx
from market.core.types import utcnow
from market.oversight import documents
from market.web.auth import Caller
from tests.conftest import Parties, Party, assert_problem
from tests.trading.support import buyer, offer, pay_by_bank, place

CONFIDENTIAL = ("trade.", "delivery.", "payout.")


def listed(entry: dict[str, Any]) -> bool:
    """Whether the page lists the entry: confidential, or naming salted details."""
    return entry["type"].startswith(CONFIDENTIAL) or any(k.endswith("_salted_sha256") for k in entry["data"])


def digest(document: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


async def trades(client: Any, parties: Parties, operator: Party) -> list[str]:
    """A free order, a bank-transfer order paid, and one refunded; their order ids."""
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    free = await place(client, b, listing, "free")
    paid = await place(client, b, listing, "one_time")
    assert (await pay_by_bank(client, operator, paid)).status_code == 200
    r = await client.post(f"/v1/orders/{free['id']}/disputes", json={"reason": "not as described"}, headers=b.auth)
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=operator.auth,
                          json={"decision": "refund", "reason": "checked the file"})
    assert r.status_code == 200, r.text
    return [free["id"], paid["id"]]


async def all_entries(client: Any) -> list[dict[str, Any]]:
    """Every integrated entry, after waiting until nothing is pending."""
    for _ in range(100):
        r = await client.get("/v1/ledger/checkpoint")
        size = int(r.text.split("\n")[1])
        items: list[dict[str, Any]] = []
        start: int | None = 0
        while start is not None:
            page = (await client.get("/v1/ledger/entries", params={"start": start, "limit": 500})).json()
            items += page["items"]
            start = page["next_start"]
        if len(items) == size:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("the log did not settle")


async def walk(client: Any, who: Party, limit: int, start: int = 0) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: int | None = start
    pages = 0
    while cursor is not None:
        r = await client.get("/v1/oversight/documents", params={"start": cursor, "limit": limit}, headers=who.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next"} and len(body["items"]) <= limit
        assert all(set(i) == {"index", "document", "salted"} and i["index"] >= cursor for i in body["items"])
        assert body["next"] is None or body["next"] > cursor
        items += body["items"]
        cursor = body["next"]
        pages += 1
        assert pages < 10_000
    return items


async def wait_for_orders(client: Any, order_ids: list[str]) -> None:
    for order_id in order_ids:
        for _ in range(100):
            items = (await client.get("/v1/ledger/entries", params={"subject": f"order:{order_id}"})).json()["items"]
            if items and all(i["index"] is not None for i in items):
                break
            await asyncio.sleep(0.05)


async def test_only_regulators_read_documents(client, parties: Parties, operator: Party, regulator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    holder = await parties.verified(["provider"])
    assert_problem(await client.get("/v1/oversight/documents"), 401)
    for who in (operator, b, holder):
        assert_problem(await client.get("/v1/oversight/documents", headers=who.auth), 403, "wrong-role")
    r = await client.get("/v1/oversight/documents", headers=regulator.auth)
    assert r.status_code == 200, r.text
    assert listing["id"]  # the market has trades to show once ordered; see below
    for params in ({"limit": 0}, {"limit": 501}, {"start": -1}, {"start": "x"}):
        r = await client.get("/v1/oversight/documents", params=params, headers=regulator.auth)
        assert r.status_code in (400, 422), r.text


async def test_every_confidential_entry_once_with_its_document(client, parties: Parties, operator: Party,
                                                               regulator: Party) -> None:
    orders = await trades(client, parties, operator)
    await wait_for_orders(client, orders)
    entries = await all_entries(client)
    confidential = {e["index"]: e["entry"] for e in entries if listed(e["entry"])}
    assert {e["type"] for e in confidential.values()} >= {"trade.placed", "trade.settled", "trade.disputed",
                                                          "trade.refunded", "asset.content_uploaded"}
    reasons = set()
    for limit in (500, 7, 1):
        # Entries the clock appends meanwhile (a batch of delivery receipts closing) are
        # beyond the snapshot: left out.
        items = [i for i in await walk(client, regulator, limit) if i["index"] < len(entries)]
        indexes = [i["index"] for i in items]
        assert indexes == sorted(confidential), f"limit {limit}"
        for item in items:
            entry = confidential[item["index"]]
            doc = item["document"]
            if entry["type"].startswith(CONFIDENTIAL):
                assert digest(doc) == entry["data"]["document_sha256"]
                assert doc["event"] == entry["type"] and doc["subject"] == entry["subject"] and doc["salt"]
            else:
                assert doc is None
            named = [v for k, v in {**entry["data"], **(doc or {})}.items() if k.endswith("_salted_sha256")]
            assert sorted(item["salted"]) == sorted(named)
            for sha, detail in item["salted"].items():
                assert digest(detail) == sha and detail["salt"]
                assert (detail["event"], detail["subject"]) == (entry["type"], entry["subject"])
                reasons.add(detail.get("reason"))
    assert {"not as described", "checked the file"} <= reasons
    # From the middle of the log on: exactly the entries from there.
    middle = sorted(confidential)[len(confidential) // 2]
    assert [i["index"] for i in await walk(client, regulator, 50, middle) if i["index"] < len(entries)] == [
        i for i in sorted(confidential) if i >= middle]
    # The contract of each order is there, with price and parties.
    settled = [i["document"] for i in await walk(client, regulator, 500)
               if i["document"] and i["document"]["event"] == "trade.settled" and i["document"]["order"] in orders]
    assert sorted(d["order"] for d in settled) == sorted(orders)
    assert {d["price"]["amount"] for d in settled} == {0, 880_000}


async def test_pages_are_bounded_by_a_scan_window(client, parties: Parties, operator: Party, regulator: Party,
                                                  monkeypatch) -> None:
    orders = await trades(client, parties, operator)
    await wait_for_orders(client, orders)
    entries = await all_entries(client)
    confidential = sorted(e["index"] for e in entries if listed(e["entry"]))
    monkeypatch.setattr(documents, "SCAN_WINDOW", 5)
    r = await client.get("/v1/oversight/documents", params={"start": 0, "limit": 500}, headers=regulator.auth)
    body = r.json()
    assert all(i["index"] < 5 for i in body["items"]) and body["next"] == 5
    assert [i["index"] for i in await walk(client, regulator, 500) if i["index"] < len(entries)] == confidential
    # Past the end of the log: nothing, and no next. (The database is shared: other tests' entries may
    # follow ``entries`` by now, so the start is well past any of them.)
    r = await client.get("/v1/oversight/documents", params={"start": len(entries) + 1_000_000, "limit": 10},
                         headers=regulator.auth)
    assert r.json() == {"items": [], "next": None}


async def test_a_lost_or_changed_document_shows(client, parties: Parties, operator: Party, regulator: Party) -> None:
    """Run in a transaction that is rolled back: the shared database is left as it was."""
    orders = await trades(client, parties, operator)
    await wait_for_orders(client, orders)
    entries = await all_entries(client)
    mine = {e["index"]: e["entry"] for e in entries
            if e["entry"]["subject"] == f"order:{orders[1]}" and e["entry"]["type"].startswith("trade.")}
    settled_index = next(i for i, e in mine.items() if e["type"] == "trade.settled")
    placed_index = next(i for i, e in mine.items() if e["type"] == "trade.placed")
    state = client.app.state.services

    async def run() -> dict[int, Any]:
        async with state.sessionmaker() as session:
            try:
                settled_sha = mine[settled_index]["data"]["document_sha256"]
                stored = (await session.execute(select(TradeDocument.document).where(
                    TradeDocument.document_sha256 == settled_sha))).scalar_one()
                changed = json.loads(stored)
                changed["price"]["amount"] = 1
                await session.execute(update(TradeDocument).where(TradeDocument.document_sha256 == settled_sha)
                                      .values(document=json.dumps(changed)))
                await session.execute(delete(TradeDocument).where(
                    TradeDocument.document_sha256 == mine[placed_index]["data"]["document_sha256"]))
                account = await session.get_one(Account, regulator.id)
                ctx = Ctx(Caller(account, "tok_test"), utcnow(), state)
                page = await documents.page(session, ctx, min(mine), len(mine) + 50)
                return {i["index"]: i["document"] for i in page["items"]}
            finally:
                await session.rollback()

    seen = client.blocking_portal.call(run)
    assert seen[placed_index] is None
    assert seen[settled_index]["price"]["amount"] == 1
    assert digest(seen[settled_index]) != mine[settled_index]["data"]["document_sha256"]
    # Nothing stayed changed.
    items = {i["index"]: i["document"] for i in await walk(client, regulator, 500, min(mine))}
    assert digest(items[settled_index]) == mine[settled_index]["data"]["document_sha256"]
    assert items[placed_index] is not None



async def test_a_short_reason_cannot_be_guessed_from_the_log(client, parties: Parties, operator: Party,
                                                             regulator: Party) -> None:
    """A reason on the public log was its bare SHA-256: anyone could hash likely words and
    find it. Now the entry names a salted document; the regulator reads it (and checks it
    against the entry) through the documents."""
    from tests.registry_support import draft, provider, submit, upload, wait_integrated

    holder, listing = await offer(client, parties, operator)
    r = await client.patch(f"/v1/listings/{listing['id']}", json={"status": "paused", "reason": "holiday"},
                           headers=holder.auth)
    assert r.status_code == 200, r.text
    p = await provider(client, parties)
    asset = await draft(client, p)
    await upload(client, p, asset["id"], b"a draft nobody else has seen")
    await submit(client, p, asset["id"])
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "reject", "reason": "fake"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    await wait_integrated(client, f"asset:{asset['id']}")
    await wait_integrated(client, f"listing:{listing['id']}")
    entries = await all_entries(client)
    cases = {("listing.paused", f"listing:{listing['id']}"): "holiday", ("asset.rejected", f"asset:{asset['id']}"):
             "fake"}
    found = {(e["entry"]["type"], e["entry"]["subject"]): e for e in entries}
    items = {i["index"]: i for i in await walk(client, regulator, 500)}
    for key, reason in cases.items():
        entry = found[key]
        text = json.dumps(entry["entry"])
        assert hashlib.sha256(reason.encode()).hexdigest() not in text, key  # no dictionary attack
        [named] = [v for k, v in entry["entry"]["data"].items() if k.endswith("_salted_sha256")]
        detail = items[entry["index"]]["salted"][named]
        assert detail["reason"] == reason and digest(detail) == named and detail["event"] == key[0]
