"""The ledger over HTTP on a real database: checkpoints, entries, proofs, tiles, atomicity."""

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from ledger import merkle, note, tiles
from ledger.entry import verify_entry
from ledger.errors import MalformedError
from market.web.app import create_app
from tests.conftest import assert_problem, random_uscc
from tests.ledger_support import integrate_all, ledger_database


class LedgerHarness:
    """The app under test, its client, and a session maker of the test's own.

    The test client runs the app on another event loop; asyncpg connections belong to
    one loop, so direct database work in a test goes through an engine made here.
    """

    def __init__(self, app: Any, client: AsyncTestClient, maker: Any) -> None:
        self.app = app
        self.client = client
        self.maker = maker

    @property
    def log(self) -> Any:
        return self.app.state.services.ledger

    async def integrate(self) -> int:
        return await integrate_all(self.maker, self.log)

    async def append(self, count: int, subject: str = "account:acct_test") -> None:
        async with self.maker() as session:
            for i in range(count):
                await self.log.append(session, type="test.event", subject=subject, actor="market", data={"n": i})
            await session.commit()

    async def checkpoint(self) -> note.Checkpoint:
        r = await self.client.get("/v1/ledger/checkpoint")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        cp, _ = note.open_checkpoint(r.text, note.Verifier.from_vkey(self.log.vkey))
        return cp

@pytest.fixture
async def harness(databases, tmp_path) -> AsyncIterator[LedgerHarness]:
    async with ledger_database(databases, tmp_path) as ldb:
        app = create_app(ldb.settings)
        async with AsyncTestClient(app=app) as client:
            yield LedgerHarness(app, client, ldb.maker)

async def test_empty_log_serves_a_signed_size_zero_checkpoint(harness: LedgerHarness) -> None:
    cp = await harness.checkpoint()
    assert cp.size == 0 and cp.root == hashlib.sha256(b"").digest()
    key = (await harness.client.get("/v1/ledger/key")).json()
    assert key["vkey"] == harness.log.vkey and key["origin"] == "ledger.test.example/log"
    assert base64.b64decode(key["public_key"]) == harness.log.public_key
    tlog_cp = await harness.client.get("/v1/ledger/tlog/checkpoint")
    assert tlog_cp.text == (await harness.client.get("/v1/ledger/checkpoint")).text

async def test_entries_are_pending_then_integrated(harness: LedgerHarness) -> None:
    await harness.append(3, subject="asset:ast_one")
    r = await harness.client.get("/v1/ledger/entries", params={"subject": "asset:ast_one"})
    items = r.json()["items"]
    assert [i["index"] for i in items] == [None, None, None]
    assert [i["entry"]["data"]["n"] for i in items] == [0, 1, 2]
    assert (await harness.checkpoint()).size == 0

    assert await harness.integrate() == 3
    cp = await harness.checkpoint()
    assert cp.size == 3
    items = (await harness.client.get("/v1/ledger/entries", params={"subject": "asset:ast_one"})).json()["items"]
    assert [i["index"] for i in items] == [0, 1, 2]
    leaves = [base64.b64decode(i["leaf"]) for i in items]
    assert merkle.root([merkle.leaf_hash(leaf) for leaf in leaves]) == cp.root
    for item, leaf in zip(items, leaves, strict=True):
        assert base64.b64decode(item["leaf_hash"]) == merkle.leaf_hash(leaf)
        verify_entry(leaf, harness.log.public_key, harness.log.signer.key_id)
        one = (await harness.client.get(f"/v1/ledger/entries/{item['index']}")).json()
        assert one == item
    assert (await harness.client.get("/v1/ledger/entries", params={"subject": "asset:ast_other"})).json()["items"] == []
    assert_problem(await harness.client.get("/v1/ledger/entries/3"), 404)

async def test_entry_ranges(harness: LedgerHarness) -> None:
    await harness.append(7)
    await harness.integrate()
    page = (await harness.client.get("/v1/ledger/entries", params={"start": 2, "limit": 3})).json()
    assert [i["index"] for i in page["items"]] == [2, 3, 4] and page["next_start"] == 5
    assert page["next_cursor"] == "5"
    page = (await harness.client.get("/v1/ledger/entries", params={"cursor": page["next_cursor"], "limit": 3})).json()
    assert [i["index"] for i in page["items"]] == [5, 6] and page["next_start"] is None and page["next_cursor"] is None
    assert len((await harness.client.get("/v1/ledger/entries")).json()["items"]) == 7  # default limit 50
    for params in ({"start": -1}, {"limit": 0}, {"limit": 501}, {"cursor": "x1"}, {"start": 10**30}):
        assert_problem(await harness.client.get("/v1/ledger/entries", params=params), 422)

async def test_absurd_numbers_are_refused_not_crashed(harness: LedgerHarness) -> None:
    await harness.append(3)
    await harness.integrate()
    huge = 10**23
    for path in (f"/v1/ledger/entries/{huge}", f"/v1/ledger/entries/{2**63}",
                 "/v1/ledger/tlog/tile/0/x999/x999/x999/x999/x999/x999/000",
                 "/v1/ledger/tlog/tile/entries/x999/x999/x999/x999/x999/x999/000"):
        assert_problem(await harness.client.get(path), 404)
    for path, params in (("/v1/ledger/proofs/inclusion", {"index": 0, "size": huge}),
                         ("/v1/ledger/proofs/consistency", {"first": 1, "second": huge})):
        assert_problem(await harness.client.get(path, params=params), 422)
    assert (await harness.client.get("/v1/ledger/entries/2")).status_code == 200

async def test_every_inclusion_and_consistency_proof_over_http(harness: LedgerHarness) -> None:
    # Integrate in uneven batches so tiles are rewritten across several checkpoints.
    for batch in (1, 2, 5, 13, 19):
        await harness.append(batch)
        await harness.integrate()
    size = (await harness.checkpoint()).size
    assert size == 40
    leaves = [base64.b64decode(i["leaf"]) for i in
              (await harness.client.get("/v1/ledger/entries", params={"limit": 100})).json()["items"]]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    roots = {n: merkle.root(hashes[:n]) for n in range(size + 1)}
    for n in range(1, size + 1):
        for i in range(n):
            r = await harness.client.get("/v1/ledger/proofs/inclusion", params={"index": i, "size": n})
            body = r.json()
            assert base64.b64decode(body["root"]) == roots[n]
            proof = [base64.b64decode(h) for h in body["hashes"]]
            merkle.verify_inclusion(i, n, hashes[i], proof, roots[n])
    for m in range(0, size + 1):
        for n in range(m, size + 1):
            body = (await harness.client.get("/v1/ledger/proofs/consistency", params={"first": m, "second": n})).json()
            merkle.verify_consistency(m, n, roots[m], roots[n], [base64.b64decode(h) for h in body["hashes"]])
    for params in ({"index": 40, "size": 40}, {"index": 0, "size": 41}, {"index": 5, "size": 3}):
        assert_problem(await harness.client.get("/v1/ledger/proofs/inclusion", params=params), 404)
    assert_problem(await harness.client.get("/v1/ledger/proofs/consistency", params={"first": 5, "second": 41}), 404)
    assert_problem(await harness.client.get("/v1/ledger/proofs/consistency", params={"first": 6, "second": 5}), 404)
    assert_problem(await harness.client.get("/v1/ledger/proofs/inclusion", params={"index": "x", "size": 3}), 422)

async def test_tiles_match_the_tree(harness: LedgerHarness) -> None:
    await harness.append(300)
    await harness.integrate()
    cp = await harness.checkpoint()
    assert cp.size == 300
    full = await harness.client.get("/v1/ledger/tlog/tile/entries/000")
    assert full.status_code == 200 and "immutable" in full.headers["cache-control"]
    part = await harness.client.get("/v1/ledger/tlog/tile/entries/001.p/44")
    assert part.status_code == 200 and "immutable" not in part.headers["cache-control"]
    leaves = tiles.decode_entry_bundle(full.content) + tiles.decode_entry_bundle(part.content)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    assert merkle.root(hashes) == cp.root
    level0 = (await harness.client.get("/v1/ledger/tlog/tile/0/000")).content
    assert level0 == b"".join(hashes[:256])
    level0p = (await harness.client.get("/v1/ledger/tlog/tile/0/001.p/44")).content
    assert level0p == b"".join(hashes[256:])
    level1 = (await harness.client.get("/v1/ledger/tlog/tile/1/000.p/1")).content
    assert level1 == merkle.root(hashes[:256])
    # Any width up to the current one is served; past it, or malformed, is 404.
    assert (await harness.client.get("/v1/ledger/tlog/tile/0/001.p/10")).content == b"".join(hashes[256:266])
    for path in ("tile/0/001.p/45", "tile/0/002", "tile/entries/001", "tile/0/1", "tile/0/001.p/0", "tile/x/000"):
        assert_problem(await harness.client.get(f"/v1/ledger/tlog/{path}"), 404)

async def test_business_change_and_entry_commit_together(harness: LedgerHarness) -> None:
    """DESIGN §2.1: a failed transaction leaves neither the account nor its entry."""
    from sqlmodel import select

    from ledger.store import PendingEntry
    from market.accounts import service
    from market.accounts.models import Account
    from market.accounts.schemas import AccountCreate
    from market.core.context import Ctx
    from market.core.types import utcnow

    data = AccountCreate(name="Atomic Co", kind="enterprise", roles=["provider"], uscc=random_uscc())
    async with harness.maker() as session:
        account, _ = await service.create_account(session, Ctx(None, utcnow(), harness.app.state.services), data)
        await session.flush()
        assert (await session.exec(select(PendingEntry))).all()  # written in this transaction
        await session.rollback()  # e.g. a later step failed
    async with harness.maker() as session:
        assert (await session.exec(select(Account).where(Account.id == account.id))).first() is None
        assert (await session.exec(select(PendingEntry))).all() == []

    # And the other way: when the ledger refuses the entry, the business row is not written.
    async with harness.maker() as session:
        with pytest.raises(MalformedError, match="want at most 65535"):
            await harness.log.append(session, type="test.big", subject="asset:ast_x", actor="market",
                                     data={"blob": "x" * 70_000})
        await session.rollback()
    async with harness.maker() as session:
        assert (await session.exec(select(PendingEntry))).all() == []

async def test_integration_is_serialised(harness: LedgerHarness) -> None:
    """Concurrent integrators in one process: gap-free, duplicate-free, each checkpoint once."""
    import asyncio

    await harness.append(50)

    async def one() -> int:
        async with harness.maker() as session:
            return await harness.log.integrate(session, max_batch=7)

    done = 0
    while done < 50:
        done += sum(await asyncio.gather(*(one() for _ in range(4))))
    assert done == 50
    items = (await harness.client.get("/v1/ledger/entries", params={"limit": 100})).json()["items"]
    assert [i["index"] for i in items] == list(range(50))
    assert sorted(i["entry"]["data"]["n"] for i in items) == list(range(50))

async def test_account_events_carry_no_personal_data(harness: LedgerHarness) -> None:
    name, code = "张三的数据公司", random_uscc()
    r = await harness.client.post("/v1/accounts", json={"name": name, "kind": "enterprise", "roles": ["provider"], "uscc": code})
    account = r.json()["account"]
    await harness.integrate()
    items = (await harness.client.get("/v1/ledger/entries", params={"subject": f"account:{account['id']}"})).json()["items"]
    assert items
    for item in items:
        leaf = base64.b64decode(item["leaf"]).decode()
        assert name not in leaf and code not in leaf

async def test_entry_types_are_a_closed_list(harness: LedgerHarness) -> None:
    from market.core import audit
    from market.core.context import Ctx

    ctx = Ctx.system(harness.app.state.services)
    async with harness.maker() as session:
        with pytest.raises(ValueError, match="unknown ledger entry type"):
            await audit.record(session, ctx, "asset.registred", "asset:ast_x", "market", {})
        entry = await audit.record(session, ctx, "asset.registered", "asset:ast_x", "market", {})
        assert entry["type"] == "asset.registered"
        await session.rollback()
