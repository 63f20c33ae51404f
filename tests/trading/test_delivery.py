"""Delivery over HTTP: the content of an active order streamed whole or by range, its
digest, a ``delivery.sent`` entry per download holding only the salted document's hash,
chunk proofs against the registration certificate's Merkle root, who may download and
when access ends, subscription revisions, and ``market client download --verify``."""

import base64
import hashlib
import json
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from ledger import merkle
from ledger.errors import ProofError, RootMismatchError
from market.core.audit import TradeDocument
from market.core.context import Ctx
from market.trading.models import Delivery, Order
from tests.conftest import Parties, Party, assert_problem
from tests.listings.support import publish
from tests.registry_support import act, draft, ledger_items, provider, submit, upload
from tests.trading.support import FREE, ONE_TIME, SUBSCRIPTION, buyer, pay_by_bank, place, take_piece

CHUNK = 65536
SIZE = 300 * 1024  # five chunks, the last one short


async def content_offer(client: Any, parties: Parties, operator: Party, content: bytes,
                        plans: list[dict[str, Any]] | None = None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A registered asset holding ``content`` and its active listing: (holder, asset, listing)."""
    holder = await provider(client, parties)
    asset = await draft(client, holder)
    await upload(client, holder, asset["id"], content)
    await submit(client, holder, asset["id"], "holding,use,operation")
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200 and r.json()["status"] == "registered", r.text
    listing = await publish(client, holder, asset["id"], plans=plans or [ONE_TIME, FREE])
    return holder, r.json(), listing


async def bought(client: Any, parties: Parties, operator: Party, size: int = SIZE,
                 plans: list[dict[str, Any]] | None = None, model: str = "free") -> dict[str, Any]:
    content = os.urandom(size)
    holder, asset, listing = await content_offer(client, parties, operator, content, plans)
    b = await buyer(client, parties)
    order = await place(client, b, listing, model)
    return {"content": content, "holder": holder, "asset": asset, "listing": listing, "buyer": b, "order": order}


def url(order: dict[str, Any], tail: str = "") -> str:
    return f"/v1/orders/{order['id']}/content{tail}"


def repr_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def documents_of(client: Any, order_id: str, type_: str = "delivery.sent") -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with client.app.state.services.read_sessionmaker() as s:
            rows = (await s.execute(select(TradeDocument).where(TradeDocument.subject == f"order:{order_id}",
                                                                TradeDocument.type == type_)
                                    .order_by(TradeDocument.id))).scalars().all()
            return [{"document": json.loads(r.document), "sha256": r.document_sha256} for r in rows]

    return client.blocking_portal.call(run)


def receipts_of(client: Any, order_id: str) -> list[dict[str, Any]]:
    """The order's delivery receipts, oldest first, as ``{"document": receipt}``."""
    return [{"document": json.loads(row.receipt)} for row in deliveries_of(client, order_id)]


def close_batches(client: Any) -> int:
    """Run the clock's closing of receipt batches as if their window had passed."""
    from market.trading import receipts

    state = client.app.state.services

    async def run() -> int:
        later = Ctx(caller=None, now=state.clock.now() + state.settings.delivery_receipt_delta, services=state)
        async with state.sessionmaker() as s:
            count = await receipts.close_due(s, later)
            await s.commit()
            return count

    return client.blocking_portal.call(run)


def deliveries_of(client: Any, order_id: str) -> list[Delivery]:
    async def run() -> list[Delivery]:
        async with client.app.state.services.read_sessionmaker() as s:
            return list((await s.execute(select(Delivery).where(Delivery.order_id == order_id)
                                         .order_by(Delivery.id))).scalars().all())

    return client.blocking_portal.call(run)


def set_order(client: Any, order_id: str, **values: Any) -> None:
    async def run() -> None:
        async with client.app.state.services.sessionmaker() as s:
            await s.execute(update(Order).where(Order.id == order_id).values(**values))  # type: ignore[arg-type]
            await s.commit()

    client.blocking_portal.call(run)


async def certificate_root(client: Any, asset_id: str) -> tuple[bytes, dict[str, Any]]:
    r = await client.get(f"/v1/assets/{asset_id}/certificate")
    assert r.status_code == 200, r.text
    commitment = r.json()["document"]["commitment"]
    return bytes.fromhex(commitment["merkle_root"]), commitment


# -- the content --------------------------------------------------------------------


async def test_whole_download_is_the_content_with_its_digest_and_a_ledger_entry(client, parties, operator) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    r = await client.get(url(order), headers=b.auth)
    assert r.status_code == 200, r.text
    assert r.content == content
    assert r.headers["content-length"] == str(SIZE)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["repr-digest"] == repr_digest(content)
    assert r.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert r.headers["content-type"] == "application/octet-stream"
    assert "content-range" not in r.headers

    [doc] = receipts_of(client, order["id"])
    sent = doc["document"]
    assert sent["order"] == order["id"] and sent["revision"] == 1 and sent["type"] == "delivery.receipt"
    assert sent["range"] == [0, SIZE - 1] and sent["bytes"] == SIZE and "requested" not in sent
    assert sent["sha256"] == hashlib.sha256(content).hexdigest() and sent["sent_at"].endswith("Z")
    [row] = deliveries_of(client, order["id"])
    assert (row.revision, row.first_byte, row.last_byte, row.bytes_sent, row.sha256, row.position) == (
        1, 0, SIZE - 1, SIZE, sent["sha256"], 0)
    assert documents_of(client, order["id"]) == []  # the batch is open: nothing on the ledger yet

    # Once the window passes, the batch is one entry: actor market, the document's hash only.
    assert close_batches(client) >= 1
    [batch] = documents_of(client, order["id"])
    assert batch["document"]["receipts"] == 1 and batch["document"]["bytes"] == SIZE
    assert batch["document"]["merkle_root"] == merkle.leaf_hash(row.receipt.encode()).hex()
    assert len(base64.b64decode(batch["document"]["salt"])) == 32
    entries = [i["entry"] for i in await ledger_items(client, order["id"], kind="order")]
    [entry] = [e for e in entries if e["type"] == "delivery.sent"]
    assert entry["actor"] == "market" and entry["data"] == {"document_sha256": batch["sha256"]}
    assert b.id not in json.dumps(entry)


async def test_ranges_are_206_with_exactly_those_bytes(client, parties, operator) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    cases = [("bytes=0-99", 0, 99), ("bytes=65530-65545", 65530, 65545), ("bytes=-100", SIZE - 100, SIZE - 1),
             ("bytes=1000-", 1000, SIZE - 1), ("bytes=300000-999999999", 300000, SIZE - 1),
             ("bytes=-999999999", 0, SIZE - 1), ("bytes=131072-131072", 131072, 131072)]
    for header, first, last in cases:
        r = await client.get(url(order), headers={**b.auth, "Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.content == content[first:last + 1], header
        assert r.headers["content-range"] == f"bytes {first}-{last}/{SIZE}", header
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["repr-digest"] == repr_digest(content)  # of the whole revision
    docs = [x["document"] for x in receipts_of(client, order["id"])]
    assert [(x["range"], x["bytes"]) for x in docs] == [([first, last], last - first + 1) for _, first, last in cases]
    assert [x["sha256"] for x in docs] == [hashlib.sha256(content[first:last + 1]).hexdigest() for _, first, last in cases]


async def test_many_small_ranges_make_few_ledger_entries_and_every_range_proves(databases, tmp_path) -> None:
    """40 one-byte ranges: 40 receipts, but the ledger grows with time, not requests. A
    batch closes when it holds ``MARKET_DELIVERY_RECEIPT_BATCH`` (32 here) receipts, the
    rest when the clock finds its window passed: two ``delivery.sent`` entries. Every
    receipt proves, offline, to be a leaf of its batch's Merkle root, and the root is in
    the document whose hash is in the signed log (the batch's bundle)."""
    from ledger.bundle import verify_bundle
    from market.core.clock import FakeClock
    from market.wiring import tasks
    from tests.registry_support import own_app, wait_integrated

    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, delivery_receipt_batch=32,
                       delivery_receipt_window="60s") as m:
        client = m.client
        d = await bought(client, m.parties, m.operator, size=1000)
        content, order, b = d["content"], d["order"], d["buyer"]
        for n in range(40):
            r = await client.get(url(order), headers={**b.auth, "Range": f"bytes={n * 7}-{n * 7}"})
            assert r.status_code == 206 and r.content == content[n * 7:n * 7 + 1], r.text
        assert len(deliveries_of(client, order["id"])) == 40
        assert len(documents_of(client, order["id"])) == 1  # the first 32: full, closed at once
        assert client.blocking_portal.call(tasks.close_receipts_once, client.app.state.services) == 0  # window not passed
        clock.advance(timedelta(seconds=61))
        assert client.blocking_portal.call(tasks.close_receipts_once, client.app.state.services) == 1
        batches = documents_of(client, order["id"])
        assert [x["document"]["receipts"] for x in batches] == [32, 8]
        assert [x["document"]["bytes"] for x in batches] == [32, 8]
        await wait_integrated(client, f"order:{order['id']}")
        entries = [i["entry"] for i in await ledger_items(client, order["id"], kind="order")]
        sent = [e for e in entries if e["type"] == "delivery.sent"]
        assert len(sent) == 2 and all(e["data"] == {"document_sha256": x["sha256"]} for e, x in zip(sent, batches, strict=False))

        r = await client.get(f"/v1/orders/{order['id']}/deliveries", params={"limit": 50}, headers=b.auth)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) == 40 and page["next_cursor"] is None and len(page["batches"]) == 2
        vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
        for batch in page["batches"].values():
            assert batch["status"] == "closed" and verify_bundle(batch["bundle"], vkey).status == "valid"
            assert batch["bundle"]["document"]["merkle_root"] == batch["merkle_root"]
        for n, item in enumerate(page["items"]):
            got = item["receipt"]
            assert got["range"] == [n * 7, n * 7]
            assert got["sha256"] == hashlib.sha256(content[n * 7:n * 7 + 1]).hexdigest()
            batch = page["batches"][str(item["batch"])]
            root = bytes.fromhex(batch["bundle"]["document"]["merkle_root"])
            leaf = merkle.leaf_hash(json.dumps(got, sort_keys=True, separators=(",", ":")).encode())
            proof = [base64.b64decode(h) for h in item["inclusion_proof"]]
            merkle.verify_inclusion(item["position"], batch["bundle"]["document"]["receipts"], leaf, proof, root)
            with pytest.raises((ProofError, RootMismatchError)):  # another range is not that leaf
                merkle.verify_inclusion(item["position"], batch["receipts"], merkle.leaf_hash(b"x"), proof, root)
        # Paged; and only whoever may see the order sees its receipts.
        r = await client.get(f"/v1/orders/{order['id']}/deliveries", params={"limit": 30}, headers=b.auth)
        rest = await client.get(f"/v1/orders/{order['id']}/deliveries",
                                params={"limit": 30, "cursor": r.json()["next_cursor"]}, headers=b.auth)
        assert [i["receipt"] for i in r.json()["items"] + rest.json()["items"]] == [i["receipt"] for i in page["items"]]
        assert (await client.get(f"/v1/orders/{order['id']}/deliveries", headers=d["holder"].auth)).status_code == 200
        stranger = await buyer(client, m.parties)
        assert_problem(await client.get(f"/v1/orders/{order['id']}/deliveries", headers=stranger.auth), 404)


async def test_concurrent_downloads_share_one_open_batch(client, parties, operator) -> None:
    """Downloads of one order finishing at once: each receipt gets its own place in the
    one open batch (the order's row is locked while a receipt is added)."""
    from tests.registry_support import concurrently

    d = await bought(client, parties, operator, size=1000)
    content, order, b = d["content"], d["order"], d["buyer"]
    done = await concurrently(client, *(("GET", url(order), {"headers": {**b.auth, "Range": f"bytes={n}-{n}"}})
                                        for n in range(12)))
    assert [r.status_code for r in done] == [206] * 12
    rows = deliveries_of(client, order["id"])
    assert len({r.batch_id for r in rows}) == 1 and sorted(r.position for r in rows) == list(range(12))
    assert sorted(json.loads(r.receipt)["range"][0] for r in rows) == list(range(12))
    close_batches(client)
    [batch] = documents_of(client, order["id"])
    leaves = [merkle.leaf_hash(r.receipt.encode()) for r in sorted(rows, key=lambda r: r.position)]
    assert batch["document"]["merkle_root"] == merkle.root(leaves).hex() and batch["document"]["receipts"] == 12
    assert content  # (the bytes themselves are checked in the tests above)


async def test_unsatisfiable_and_ignored_ranges(client, parties, operator) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 10}", "bytes=-0"):
        r = await client.get(url(order), headers={**b.auth, "Range": header})
        assert_problem(r, 416, "range-not-satisfiable")
        assert r.headers["content-range"] == f"bytes */{SIZE}"
    close_batches(client)
    assert receipts_of(client, order["id"]) == documents_of(client, order["id"]) == []  # nothing sent, nothing recorded
    # Ranges the server may ignore: the whole content, 200.
    etag = f'"{hashlib.sha256(content).hexdigest()}"'
    for headers in ({"Range": "bytes=0-9,20-29"}, {"Range": "items=0-9"}, {"Range": "bytes=9-0"},
                    {"Range": "bytes=abc"}, {"Range": "bytes=0-9", "If-Range": '"0000"'}):
        r = await client.get(url(order), headers={**b.auth, **headers})
        assert r.status_code == 200 and r.content == content, headers
    r = await client.get(url(order), headers={**b.auth, "Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == content[:10]


async def test_ranges_with_huge_numbers_are_answered_by_the_rfc_not_a_crash(client, parties, operator) -> None:
    """Positions of thousands of digits (Python will not even parse them as text) are
    beyond any content: a first byte there is 416, a last byte there means "to the
    end", a suffix that long is the whole content (RFC 9110 §14.1.2)."""
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    huge = "9" * 5000
    for header in (f"bytes={huge}-", f"bytes={huge}-{huge}", f"bytes={'0' * 4990}{huge}-"):
        r = await client.get(url(order), headers={**b.auth, "Range": header})
        assert_problem(r, 416, "range-not-satisfiable")
        assert r.headers["content-range"] == f"bytes */{SIZE}"
    r = await client.get(url(order), headers={**b.auth, "Range": f"bytes=10-{huge}"})
    assert r.status_code == 206 and r.content == content[10:], r.text[:200]
    assert r.headers["content-range"] == f"bytes 10-{SIZE - 1}/{SIZE}"
    r = await client.get(url(order), headers={**b.auth, "Range": f"bytes=-{huge}"})
    assert r.status_code == 206 and r.content == content
    r = await client.get(url(order), headers={**b.auth, "Range": f"bytes={'0' * 5000}5-9"})  # 5-9, zero-padded
    assert r.status_code == 206 and r.content == content[5:10]


# -- proofs -------------------------------------------------------------------------


async def test_every_chunk_proves_against_the_certificate_root(client, parties, operator) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    root, commitment = await certificate_root(client, d["asset"]["id"])
    assert commitment["chunk_size"] == CHUNK and commitment["size"] == SIZE
    n = -(-SIZE // CHUNK)
    for i in range(n):
        r = await client.get(url(order, "/proof"), params={"chunk": i}, headers=b.auth)
        assert r.status_code == 200, r.text
        p = r.json()
        assert p["chunk"] == i and p["chunk_size"] == CHUNK and p["size"] == SIZE
        assert p["merkle_root"] == commitment["merkle_root"]
        hashes = [base64.b64decode(h) for h in p["hashes"]]
        leaf = merkle.leaf_hash(content[i * CHUNK:(i + 1) * CHUNK])
        merkle.verify_inclusion(i, n, leaf, hashes, root)
        # A flipped bit anywhere in the proof, or in the chunk, fails.
        bad = [bytearray(h) for h in hashes]
        bad[0][0] ^= 1
        with pytest.raises(RootMismatchError):
            merkle.verify_inclusion(i, n, leaf, [bytes(h) for h in bad], root)
        tampered = bytearray(content[i * CHUNK:(i + 1) * CHUNK])
        tampered[7] ^= 0x10
        with pytest.raises(RootMismatchError):
            merkle.verify_inclusion(i, n, merkle.leaf_hash(bytes(tampered)), hashes, root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(i, n, leaf, hashes[:-1], root)
    for bad_chunk in (n, 10**9):
        assert_problem(await client.get(url(order, "/proof"), params={"chunk": bad_chunk}, headers=b.auth), 422,
                       "chunk-out-of-range")
    assert_problem(await client.get(url(order, "/proof"), params={"chunk": -1}, headers=b.auth), 422)
    assert_problem(await client.get(url(order, "/proof"), headers=b.auth), 422)


async def test_a_range_is_checked_chunk_by_chunk_against_the_certificate(client, parties, operator) -> None:
    """The headline: any range of the content, checked against the certificate's root
    without the rest of it."""
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    root, commitment = await certificate_root(client, d["asset"]["id"])
    n = -(-SIZE // CHUNK)
    first, last = 100_000, 200_000  # chunks 1 to 3
    c0, c1 = first // CHUNK, last // CHUNK
    r = await client.get(url(order), headers={**b.auth, "Range": f"bytes={c0 * CHUNK}-{min((c1 + 1) * CHUNK, SIZE) - 1}"})
    assert r.status_code == 206
    got = r.content
    for i in range(c0, c1 + 1):
        chunk = got[(i - c0) * CHUNK:(i - c0 + 1) * CHUNK]
        p = (await client.get(url(order, "/proof"), params={"chunk": i}, headers=b.auth)).json()
        merkle.verify_inclusion(i, n, merkle.leaf_hash(chunk), [base64.b64decode(h) for h in p["hashes"]], root)
    assert got[first - c0 * CHUNK:last - c0 * CHUNK + 1] == content[first:last + 1]


async def test_a_one_chunk_asset(client, parties, operator) -> None:
    d = await bought(client, parties, operator, size=1000)
    root, _ = await certificate_root(client, d["asset"]["id"])
    p = (await client.get(url(d["order"], "/proof"), params={"chunk": 0}, headers=d["buyer"].auth)).json()
    assert p["hashes"] == []
    merkle.verify_inclusion(0, 1, merkle.leaf_hash(d["content"]), [], root)


# -- who, and when --------------------------------------------------------------------


async def test_only_the_buyer_downloads(client, parties, operator, regulator) -> None:
    d = await bought(client, parties, operator, size=1000)
    order = d["order"]
    stranger = await buyer(client, parties)
    for tail, params in (("", None), ("/proof", {"chunk": 0})):
        assert_problem(await client.get(url(order, tail), params=params, headers=stranger.auth), 404)
        assert_problem(await client.get(url(order, tail), params=params, headers=d["holder"].auth), 403, "not-buyer")
        assert_problem(await client.get(url(order, tail), params=params, headers=operator.auth), 403, "not-buyer")
        assert_problem(await client.get(url(order, tail), params=params, headers=regulator.auth), 403, "not-buyer")
        assert_problem(await client.get(url(order, tail), params=params), 401)
        assert_problem(await client.get(f"/v1/orders/ord_NOPE/content{tail}", params=params,
                                        headers=d["buyer"].auth), 404)
    assert receipts_of(client, order["id"]) == []


async def test_an_unpaid_order_has_no_access(client, parties, operator) -> None:
    _, _, listing = await content_offer(client, parties, operator, os.urandom(1000))
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    assert order["status"] == "awaiting_payment"
    assert_problem(await client.get(url(order), headers=b.auth), 409, "no-access")


async def test_a_freeze_stops_delivery_until_lifted(client, parties, operator, regulator, settings) -> None:
    from market.listings.service import set_frozen as freeze_listing
    from market.registry.review import set_frozen as freeze_asset

    d = await bought(client, parties, operator, size=1000)
    order, b, asset_id, listing_id = d["order"], d["buyer"], d["asset"]["id"], d["listing"]["id"]
    await act(client, settings, regulator, freeze_asset, asset_id, True, "under investigation")
    for tail, params in (("", None), ("/proof", {"chunk": 0})):
        body = assert_problem(await client.get(url(order, tail), params=params, headers=b.auth), 409, "no-access")
        assert "frozen" in body["detail"]
    await act(client, settings, regulator, freeze_asset, asset_id, False, "cleared")
    assert (await client.get(url(order), headers=b.auth)).status_code == 200
    await act(client, settings, regulator, freeze_listing, listing_id, True, "misleading terms")
    body = assert_problem(await client.get(url(order), headers=b.auth), 409, "no-access")
    assert "listing" in body["detail"]
    await act(client, settings, regulator, freeze_listing, listing_id, False, "fixed")
    assert (await client.get(url(order), headers=b.auth)).status_code == 200


async def test_a_suspended_buyer_gets_nothing(client, parties, operator, regulator, settings) -> None:
    from market.accounts.service import set_suspended

    d = await bought(client, parties, operator, size=1000)
    order, b = d["order"], d["buyer"]
    await act(client, settings, regulator, set_suspended, b.id, True, "fraud inquiry")
    for tail, params in (("", None), ("/proof", {"chunk": 0})):
        assert_problem(await client.get(url(order, tail), params=params, headers=b.auth), 403, "account-suspended")
    await act(client, settings, regulator, set_suspended, b.id, False, "cleared")
    assert (await client.get(url(order), headers=b.auth)).status_code == 200


async def test_access_ends_at_expiry(client, parties, operator, settings) -> None:
    from market.core.context import Ctx
    from market.core.types import utcnow
    from market.trading.settlement import expire_due

    d = await bought(client, parties, operator, size=1000)
    order, b = d["order"], d["buyer"]
    assert (await client.get(url(order), headers=b.auth)).status_code == 200
    # Past expires_at, even before the clock task marks it expired ...
    set_order(client, order["id"], expires_at=utcnow() - timedelta(seconds=1))
    body = assert_problem(await client.get(url(order), headers=b.auth), 409, "no-access")
    assert "ended" in body["detail"]

    # ... and once it has.
    async def run() -> int:
        async with client.app.state.services.sessionmaker() as s:
            n = await expire_due(s, Ctx(None, utcnow(), client.app.state.services))
            await s.commit()
            return n

    client.blocking_portal.call(run)  # (the app's own clock may have got there first)
    assert (await client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()["status"] == "expired"
    for tail, params in (("", None), ("/proof", {"chunk": 0})):
        assert_problem(await client.get(url(order, tail), params=params, headers=b.auth), 409, "no-access")


async def test_a_refunded_order_has_no_access(client, parties, operator) -> None:
    d = await bought(client, parties, operator, size=1000)
    set_order(client, d["order"]["id"], status="refunded")
    body = assert_problem(await client.get(url(d["order"]), headers=d["buyer"].auth), 409, "no-access")
    assert "refunded" in body["detail"]


# -- revisions ----------------------------------------------------------------------


async def new_revision(client: Any, holder: Any, operator: Party, asset_id: str, content: bytes,
                       decision: str = "approve") -> dict[str, Any]:
    """变更: upload, claim, review (the test notice period is 0)."""
    await upload(client, holder, asset_id, content)
    await submit(client, holder, asset_id, "holding,use,operation")
    body = {"decision": decision} if decision == "approve" else {"decision": decision, "reason": "not the same data"}
    r = await client.post(f"/v1/assets/{asset_id}/review", json=body, headers=operator.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_one_time_order_delivers_the_revision_it_bought(client, parties, operator) -> None:
    d = await bought(client, parties, operator, size=1000)
    second = os.urandom(2000)
    assert (await new_revision(client, d["holder"], operator, d["asset"]["id"], second))["registered_revision"] == 2
    order, b = d["order"], d["buyer"]
    r = await client.get(url(order), headers=b.auth)
    assert r.status_code == 200 and r.content == d["content"]
    assert (await client.get(url(order), params={"revision": 1}, headers=b.auth)).content == d["content"]
    assert_problem(await client.get(url(order), params={"revision": 2}, headers=b.auth), 404)
    assert_problem(await client.get(url(order), params={"revision": 0}, headers=b.auth), 422)


async def test_a_subscription_receives_the_revisions_registered_in_its_period(client, parties, operator) -> None:
    first = os.urandom(1000)
    holder, asset, listing = await content_offer(client, parties, operator, first, plans=[SUBSCRIPTION])
    asset_id = asset["id"]
    # Registered before the order: never part of it (revision 2 replaces 1 before the sale).
    before = os.urandom(1100)
    await new_revision(client, holder, operator, asset_id, before)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "subscription", payment_method="bank_transfer")
    assert (await pay_by_bank(client, operator, order)).status_code == 200
    assert (await client.get(url(order), headers=b.auth)).content == before  # the revision at settlement: 2
    rejected = os.urandom(1200)
    await new_revision(client, holder, operator, asset_id, rejected, decision="reject")  # revision 3, never registered
    later = os.urandom(1300)
    assert (await new_revision(client, holder, operator, asset_id, later))["registered_revision"] == 4

    r = await client.get(url(order), headers=b.auth)
    assert r.status_code == 200 and r.content == later and r.headers["repr-digest"] == repr_digest(later)
    assert (await client.get(url(order), params={"revision": 2}, headers=b.auth)).content == before
    for never in (1, 3, 5):
        assert_problem(await client.get(url(order), params={"revision": never}, headers=b.auth), 404)
    # Proofs follow the revision too.
    p = (await client.get(url(order, "/proof"), params={"chunk": 0, "revision": 2}, headers=b.auth)).json()
    assert p["size"] == 1100 and p["revision"] == 2
    p = (await client.get(url(order, "/proof"), params={"chunk": 0}, headers=b.auth)).json()
    root, _ = await certificate_root(client, asset_id)
    assert p["size"] == 1300 and p["merkle_root"] == root.hex()
    assert [x["document"]["revision"] for x in receipts_of(client, order["id"])] == [2, 4, 2]


# -- streaming: a client that goes away, access that ends midway ------------------------


def asgi_get(client: Any, path: str, headers: dict[str, str], stop_after: int) -> tuple[int, int]:
    """GET ``path`` straight through ASGI, the client going away after ``stop_after`` body
    messages or once the body ends: (status, body bytes received)."""
    import asyncio

    app = client.app

    async def run() -> tuple[int, int]:
        gone = asyncio.Event()
        got = {"status": 0, "bytes": 0, "messages": 0}

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            await asyncio.sleep(0)  # as a socket write may: the server's other task runs
            if message["type"] == "http.response.start":
                got["status"] = message["status"]
            elif message["type"] == "http.response.body" and message.get("body"):
                got["bytes"] += len(message["body"])
                got["messages"] += 1
                if got["messages"] >= stop_after:
                    gone.set()  # the server notices while it reads the next piece
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                gone.set()  # the response is over (perhaps short of its length): the client leaves

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                 "client": ("127.0.0.1", 1234), "server": ("testserver", 80), "state": {}}
        await app(scope, receive, send)
        return got["status"], got["bytes"]

    return client.blocking_portal.call(run)


async def test_a_client_gone_midway_is_recorded_with_what_was_sent(client, parties, operator) -> None:
    d = await bought(client, parties, operator, size=20 * CHUNK + 10)
    content, order, b = d["content"], d["order"], d["buyer"]
    status, received = asgi_get(client, url(order), b.auth, stop_after=2)
    assert status == 200 and 0 < received < len(content)
    [doc] = receipts_of(client, order["id"])
    sent = doc["document"]
    assert sent["range"][0] == 0 and sent["bytes"] == sent["range"][1] + 1
    # What was handed to the connection, to the byte.
    assert sent["bytes"] == received < len(content)
    assert sent["sha256"] == hashlib.sha256(content[:sent["bytes"]]).hexdigest()
    assert sent["requested"] == [0, len(content) - 1]
    [row] = deliveries_of(client, order["id"])
    assert row.bytes_sent == sent["bytes"]


def blob_path(client: Any, asset_id: str) -> Any:
    """The file of the asset's first revision's blob."""
    from market.registry.models import AssetRevision

    state = client.app.state.services

    async def run() -> Any:
        async with state.read_sessionmaker() as s:
            rev = await s.get_one(AssetRevision, (asset_id, 1))
        return state.blobs._path(rev.blob_id)

    return client.blocking_portal.call(run)


async def test_a_damaged_blob_stops_the_download_and_the_receipt_hashes_what_was_sent(client, parties,
                                                                                       operator) -> None:
    """A whole download is not hashed while it streams (its SHA-256 is the revision's):
    that holds only because every chunk is authenticated before it is sent. A chunk
    altered on disk ends the body there, and the receipt holds the hash of exactly the
    bytes before it, read again, never the revision's."""
    from market.storage.format import BATCH_BYTES, HEADER, TAG_SIZE

    per_batch = BATCH_BYTES // CHUNK
    d = await bought(client, parties, operator, size=3 * per_batch * CHUNK)
    content, order, b = d["content"], d["order"], d["buyer"]
    path = blob_path(client, d["asset"]["id"])
    raw = bytearray(path.read_bytes())
    raw[HEADER.size + (per_batch + 2) * (CHUNK + TAG_SIZE) + 5] ^= 1  # in the second batch
    path.write_bytes(raw)
    status, received = asgi_get(client, url(order), b.auth, stop_after=10**6)
    assert status == 200 and received == per_batch * CHUNK  # the first batch, then the body ends short
    [doc] = receipts_of(client, order["id"])
    sent = doc["document"]
    assert sent["range"] == [0, received - 1] and sent["requested"] == [0, len(content) - 1]
    assert sent["sha256"] == hashlib.sha256(content[:received]).hexdigest() != hashlib.sha256(content).hexdigest()


async def test_a_download_under_way_stops_when_access_ends(client, parties, operator, regulator,
                                                            settings) -> None:
    """Access is checked again while streaming (here before every piece): a freeze
    stops the download, and the part sent is recorded."""
    from market.core.context import Ctx
    from market.core.types import utcnow
    from market.registry.review import set_frozen
    from market.trading import delivery

    d = await bought(client, parties, operator, size=3 * CHUNK)
    content, order, b = d["content"], d["order"], d["buyer"]
    state = client.app.state.services

    async def start() -> Any:
        from market.accounts.models import Account
        from market.web.auth import Caller
        from market.web.credentials import AccountSnapshot

        async with state.read_sessionmaker() as s:
            account = AccountSnapshot.of(await s.get_one(Account, b.id))
            sending = await delivery.open_delivery(s, Ctx(Caller(account, "tok_test"), utcnow(), state),
                                                   order["id"], None, None)
        sending.recheck_seconds = 0
        return sending

    sending = client.blocking_portal.call(start)

    assert client.blocking_portal.call(take_piece, sending) == content[:CHUNK]
    await act(client, settings, regulator, set_frozen, d["asset"]["id"], True, "under investigation")
    assert client.blocking_portal.call(take_piece, sending) is None
    assert sending.stopped is not None and "frozen" in sending.stopped
    document = client.blocking_portal.call(sending.finish)
    assert document is not None and document["range"] == [0, CHUNK - 1] and document["bytes"] == CHUNK
    assert document["sha256"] == hashlib.sha256(content[:CHUNK]).hexdigest()
    assert client.blocking_portal.call(sending.finish) is None  # recorded once


# -- market client download ----------------------------------------------------------


class PortalTransport(httpx.BaseTransport):
    """A synchronous httpx transport into the test app (the test client's, which runs the
    app in its own loop);
    ``tamper`` may change a response before the client sees it."""

    def __init__(self, client: Any, tamper: Any = None) -> None:
        self.client, self.tamper = client, tamper

    def handle_request(self, request: Any) -> Any:
        r = self.client._transport.handle_request(request)  # the test client's own (sync) transport
        r.read()
        content = r.content
        if self.tamper is not None:
            content = self.tamper(request, content)
        return httpx.Response(r.status_code, headers=[(k, v) for k, v in r.headers.items()
                                                      if k.lower() != "content-length"], content=content)


def http_for(client: Any, who: Any, tamper: Any = None) -> Any:
    return httpx.Client(transport=PortalTransport(client, tamper), base_url="http://testserver.local",  # type: ignore[arg-type]
                        headers=who.auth)


def run_download(client: Any, who: Any, order_id: str, out: Any, tamper: Any = None, **kw: Any) -> tuple[int, str]:
    import io

    from market.tools.client_download import download

    err = io.StringIO()
    with http_for(client, who, tamper) as http:
        code = download(http, order_id, out, show=False, err=err, **kw)
    return code, err.getvalue()


def lying_proof(chunk: int) -> Any:
    def tamper(request: Any, content: bytes) -> bytes:
        if request.url.path.endswith("/content/proof") and request.url.params.get("chunk") == str(chunk):
            p = json.loads(content)
            first = bytearray(base64.b64decode(p["hashes"][0]))
            first[-1] ^= 1
            p["hashes"][0] = base64.b64encode(bytes(first)).decode()
            return json.dumps(p).encode()
        return content

    return tamper


async def test_client_download_verifies_resumes_and_names_the_bad_chunk(client, parties, operator, tmp_path) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    out = tmp_path / "data.bin"
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 0, said
    assert out.read_bytes() == content and "all 5 chunks verified" in said

    # A partial file that no download of this order left there is not appended to.
    out.write_bytes(content[:100_000])
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 2 and "is not an unfinished download of order" in said, said
    assert out.read_bytes() == content[:100_000]

    # Resumed from where a partial file ends (an interrupted download leaves its marker).
    marker = out.with_name(out.name + ".downloading")
    marker.write_text(json.dumps({"order": order["id"], "sha256": hashlib.sha256(content).hexdigest()}))
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 0, said
    assert out.read_bytes() == content and not marker.exists()
    assert receipts_of(client, order["id"])[-1]["document"]["range"] == [100_000, SIZE - 1]

    # A file changed after the download: the check names the chunk.
    tampered = bytearray(content)
    tampered[2 * CHUNK + 5] ^= 0x01
    out.write_bytes(bytes(tampered))
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 1 and "chunk 2 " in said, said

    # A proof that lies fails too, naming its chunk.
    out.unlink()
    code, said = run_download(client, b, order["id"], out, tamper=lying_proof(3), verify=True)
    assert code == 1 and "chunk 3 " in said, said


async def test_client_download_verify_proves_the_delivery_receipts(client, parties, operator, tmp_path) -> None:
    """``--verify`` proves every receipt whose batch is on the ledger against the batch's
    bundle, counts the rest as pending, and names a receipt whose proof lies."""
    from tests.registry_support import wait_integrated

    d = await bought(client, parties, operator, size=1000)
    content, order, b = d["content"], d["order"], d["buyer"]
    out = tmp_path / "small.bin"
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 0 and "delivery receipts: 0 proven" in said and "1 pending" in said, said
    for n in range(3):
        assert (await client.get(url(order), headers={**b.auth, "Range": f"bytes={n}-{n}"})).status_code == 206
    close_batches(client)
    await wait_integrated(client, f"order:{order['id']}")
    out.unlink()
    code, said = run_download(client, b, order["id"], out, verify=True)
    assert code == 0 and out.read_bytes() == content
    assert "delivery receipts: 4 proven" in said and "1 pending" in said, said

    def lying_receipt(request: Any, body: bytes) -> bytes:
        if request.url.path.endswith("/deliveries"):
            page = json.loads(body)
            page["items"][1]["receipt"]["range"] = [0, 999]  # claims more than was sent
            return json.dumps(page).encode()
        return body

    code, said = run_download(client, b, order["id"], out, tamper=lying_receipt, verify=True)
    assert code == 1 and "bytes 0-999" in said and "does not prove" in said, said


async def test_client_download_of_a_range_checks_only_its_chunks(client, parties, operator, tmp_path) -> None:
    d = await bought(client, parties, operator)
    content, order, b = d["content"], d["order"], d["buyer"]
    out = tmp_path / "part.bin"
    before = len(receipts_of(client, order["id"]))
    code, said = run_download(client, b, order["id"], out, byte_range=(70_000, 140_000))
    assert code == 0, said
    assert out.read_bytes() == content[70_000:140_001]
    # Only the covering chunks (1 and 2) were sent.
    assert receipts_of(client, order["id"])[before]["document"]["range"] == [CHUNK, 3 * CHUNK - 1]
    code, said = run_download(client, b, order["id"], out, tamper=lying_proof(2), byte_range=(70_000, 140_000))
    assert code == 1 and "chunk 2 " in said, said
    code, said = run_download(client, b, order["id"], out, byte_range=(SIZE, SIZE + 10))
    assert code == 1, said
    stranger = await buyer(client, parties)
    code, said = run_download(client, stranger, order["id"], out, verify=True)
    assert code == 2 and "404" in said, said


@pytest.mark.slow
async def test_market_client_download_against_a_real_server(databases, tmp_path) -> None:
    """``market client download --verify`` and ``--range`` as a buyer runs them, against
    ``market serve``; a file changed afterwards fails its check (exit 1), naming the chunk."""
    import socket
    import subprocess
    import sys

    from tests.conftest import wait_until_serving

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MARKET_DATA_DIR": str(tmp_path / "var"), "MARKET_DATABASE_URL": await databases.new(migrate=False),
           "MARKET_LOG_LEVEL": "WARNING", "MARKET_LEDGER_ORIGIN": "ledger.download.example/log",
           "MARKET_NOTICE_PERIOD": "0"}
    market = [sys.executable, "-m", "market.tools.cli"]
    proc = subprocess.Popen([*market, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", proc)
        assert proc.stdout is not None
        token = proc.stdout.readline().strip()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            me = (await http.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})).json()
            op = Party(me["id"], token, me)
            d = await bought(http, Parties(http, None, op), op, size=5 * CHUNK + 123)  # type: ignore[arg-type]
        content, order, b = d["content"], d["order"], d["buyer"]
        out = tmp_path / "download.bin"

        def download(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*market, "client", "download", order["id"], "--out", str(out), "--base-url", base,
                                   *args], env={**env, "MARKET_TOKEN": b.party.token}, capture_output=True, text=True,
                                  timeout=120)

        done = download("--verify")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == content and "verified" in done.stderr
        # Interrupted downloads resume (an interrupted download leaves its marker).
        out.write_bytes(content[:CHUNK + 7])
        out.with_name(out.name + ".downloading").write_text(
            json.dumps({"order": order["id"], "sha256": hashlib.sha256(content).hexdigest()}))
        done = download("--verify", "--quiet")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == content
        # Changed afterwards: exit 1, naming the chunk.
        changed = bytearray(content)
        changed[4 * CHUNK + 1] ^= 0x80
        out.write_bytes(bytes(changed))
        done = download("--verify", "--quiet")
        assert done.returncode == 1 and "chunk 4 " in done.stderr, done.stderr
        # A range, checked on its own.
        done = download("--range", "65000-140000", "--quiet")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == content[65000:140001]
        # Refused: exit 2.
        done = subprocess.run([*market, "client", "download", order["id"], "--out", str(tmp_path / "op.bin"),
                               "--base-url", base, "--token", op.token], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "403" in done.stderr, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_a_revocation_stops_delivery(client, parties, operator, regulator, settings) -> None:
    """An order settled before its registration is revoked gets neither the content nor a
    proof afterwards, like a freeze, and for good."""
    from market.registry.review import revoke

    d = await bought(client, parties, operator, size=1000)
    order, b = d["order"], d["buyer"]
    assert (await client.get(url(order), headers=b.auth)).status_code == 200
    await act(client, settings, regulator, revoke, d["asset"]["id"], "unlawful source")
    for tail, params in (("", None), ("/proof", {"chunk": 0})):
        body = assert_problem(await client.get(url(order, tail), params=params, headers=b.auth), 409, "no-access")
        assert "revoked" in body["detail"]
    assert len(deliveries_of(client, order["id"])) == 1  # the download before the revocation, nothing after


async def test_a_download_under_way_stops_on_revocation(client, parties, operator, regulator, settings) -> None:
    from market.core.context import Ctx
    from market.core.types import utcnow
    from market.registry.review import revoke
    from market.trading import delivery

    d = await bought(client, parties, operator, size=3 * CHUNK)
    content, order, b = d["content"], d["order"], d["buyer"]
    state = client.app.state.services

    async def start() -> Any:
        from market.accounts.models import Account
        from market.web.auth import Caller
        from market.web.credentials import AccountSnapshot

        async with state.read_sessionmaker() as s:
            account = AccountSnapshot.of(await s.get_one(Account, b.id))
            sending = await delivery.open_delivery(s, Ctx(Caller(account, "tok_test"), utcnow(), state),
                                                   order["id"], None, None)
        sending.recheck_seconds = 0
        return sending

    sending = client.blocking_portal.call(start)

    assert client.blocking_portal.call(take_piece, sending) == content[:CHUNK]
    await act(client, settings, regulator, revoke, d["asset"]["id"], "unlawful source")
    assert client.blocking_portal.call(take_piece, sending) is None
    assert sending.stopped is not None and "revoked" in sending.stopped
    document = client.blocking_portal.call(sending.finish)
    assert document is not None and document["bytes"] == CHUNK
