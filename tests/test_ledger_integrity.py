"""The ledger under stress and attack: many processes, kill -9, tampering, split views."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import TestClient
from sqlalchemy import select, text, update

from ledger import merkle, note
from ledger.errors import InconsistentError
from ledger.log import Log
from ledger.sources import HttpSource
from ledger.store import CheckpointRow, Leaf, PendingEntry, Tile
from ledger.verify import verify_log
from ledger.witness import witness_once
from market.web.app import create_app
from market.wiring.bootstrap import export_ledger
from tests.ledger_support import LedgerDatabase, eventually, ledger_database

ROOT = Path(__file__).resolve().parent.parent


def worker(ldb: LedgerDatabase, mode: str, count: int, tag: str) -> subprocess.Popen[bytes]:
    """tests/ledger_worker.py in a new process, on the same database and key."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [ldb.url, str(ldb.settings.keys_dir), ldb.log.origin, mode, str(count), tag]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "ledger_worker.py"), *args], env=env, cwd=ROOT, stderr=subprocess.PIPE,
    )


async def check_log(maker, log: Log) -> list[bytes]:
    """Gap-free, duplicate-free, root recomputes, every checkpoint consistent with every later one."""
    async with maker() as session:
        rows = (await session.execute(select(Leaf.idx, Leaf.leaf).order_by(Leaf.idx))).all()
        checkpoints = (await session.execute(select(CheckpointRow.size, CheckpointRow.root, CheckpointRow.note)
                                             .order_by(CheckpointRow.size))).all()
        assert (await session.execute(select(PendingEntry.seq))).all() == []
    assert [r[0] for r in rows] == list(range(len(rows)))
    leaves = [bytes(r[1]) for r in rows]
    assert len(set(leaves)) == len(leaves)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    verifier = note.Verifier.from_vkey(log.vkey)
    sizes = [c[0] for c in checkpoints]
    assert sizes == sorted(set(sizes)) and sizes[-1] == len(leaves)
    for size, root, text_ in checkpoints:
        cp, _ = note.open_checkpoint(text_, verifier)
        assert (cp.size, cp.root) == (size, bytes(root))
        assert bytes(root) == merkle.root(hashes[:size])
    # Consistency proofs from the stored tiles between checkpoints (all pairs when few).
    pairs = [(a, b) for i, a in enumerate(sizes) for b in sizes[i:]]
    if len(pairs) > 400:
        pairs = pairs[:: len(pairs) // 400]
    async with maker() as session:
        for a, b in pairs:
            proof = await log.consistency_proof(session, a, b)
            merkle.verify_consistency(a, b, merkle.root(hashes[:a]), merkle.root(hashes[:b]), proof)
    return leaves


@pytest.fixture
async def fresh(databases, tmp_path):
    async with ledger_database(databases, tmp_path) as ldb:
        yield ldb


@pytest.mark.slow
async def test_many_processes_append_and_integrate_at_once(fresh: LedgerDatabase) -> None:
    procs = [worker(fresh, "append", 40, f"p{i}") for i in range(4)]
    procs.append(worker(fresh, "integrate", 5, "integrator"))
    for p in procs:
        _, err = await asyncio.to_thread(p.communicate, timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    await fresh.integrate()
    leaves = await check_log(fresh.maker, fresh.log)
    assert len(leaves) == 160
    seen = sorted((e["data"]["tag"], e["data"]["n"]) for e in map(json.loads, leaves))
    assert seen == sorted((f"p{i}", n) for i in range(4) for n in range(40))


@pytest.mark.slow
async def test_kill_minus_nine_during_integration_loses_nothing(fresh: LedgerDatabase) -> None:
    await fresh.append(600, subject="test:crash")

    async def integrated_at_least(size: int) -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # the worker must still run
        async with fresh.maker() as session:
            return (await session.execute(text("SELECT COALESCE(MAX(size), 0) FROM ledger_checkpoints"))).scalar() >= size

    for round_ in range(3):
        proc = worker(fresh, "integrate", 0, "crash")
        # Let it integrate a while, then kill it without warning, mid-transaction or not.
        goal = 100 * (round_ + 1)
        await eventually(lambda goal=goal: integrated_at_least(goal), f"the worker integrated {goal}")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        assert proc.returncode == -signal.SIGKILL
    await fresh.integrate()
    leaves = await check_log(fresh.maker, fresh.log)
    assert sorted(json.loads(leaf)["data"]["n"] for leaf in leaves) == list(range(600))


@pytest.fixture
async def served(databases, tmp_path):
    """A market with 300 integrated entries: (settings, log, session maker)."""
    async with ledger_database(databases, tmp_path) as ldb:
        async with ldb.maker() as session:
            await ldb.log.append_many(session, [("test.event", f"test:t{i % 7}", "market", {"n": i}) for i in range(300)])
            await session.commit()
        await ldb.integrate()
        yield ldb.settings, ldb.log, ldb.maker


async def test_verify_log_passes_on_an_honest_log(served, tmp_path) -> None:
    settings, log, maker = served
    out = tmp_path / "export"
    assert await export_ledger(settings, out) == 300
    report = await asyncio.to_thread(verify_log, out, log.vkey, tmp_path / "state", workers=1)
    assert report.ok, report.error
    assert report.entries_checked == 300
    with TestClient(app=create_app(settings)) as client:
        http = HttpSource("http://testserver.local", client=client)
        report = verify_log(http, log.vkey, tmp_path / "state", workers=1)
        assert report.ok, report.error
        assert report.consistency_checked


async def _export_and_verify(settings, log, tmp_path, name):
    out = tmp_path / name
    await export_ledger(settings, out)
    return await asyncio.to_thread(verify_log, out, log.vkey, None, workers=1)


async def test_tampered_leaf_is_named(served, tmp_path) -> None:
    settings, log, maker = served
    async with maker() as session:
        leaf = bytes((await session.execute(select(Leaf.leaf).where(Leaf.idx == 123))).scalar())
        forged = leaf.replace(b'"n":123', b'"n":124')
        assert forged != leaf
        await session.execute(update(Leaf).where(Leaf.idx == 123).values(leaf=forged))
        await session.commit()
    report = await _export_and_verify(settings, log, tmp_path, "leaf")
    assert not report.ok
    assert report.failed_entry == 123, report.error
    assert "123" in report.error


async def test_tampered_tile_hash_is_named(served, tmp_path) -> None:
    settings, log, maker = served
    async with maker() as session:
        data = bytearray((await session.execute(select(Tile.data).where(Tile.level == 0, Tile.idx == 1))).scalar())
        data[5 * 32] ^= 0x01  # hash of leaf 261
        await session.execute(update(Tile).where(Tile.level == 0, Tile.idx == 1).values(data=bytes(data)))
        await session.commit()
    report = await _export_and_verify(settings, log, tmp_path, "tile")
    assert not report.ok
    assert report.failed_tile is not None and "0/001" in report.failed_tile, report.error


async def test_tampered_checkpoint_is_refused(served, tmp_path) -> None:
    settings, log, maker = served
    async with maker() as session:
        row = (await session.execute(select(CheckpointRow).order_by(CheckpointRow.size.desc()).limit(1))).scalar()
        lines = row.note.split("\n")
        lines[1] = "299"  # claim a smaller tree under the same signature
        await session.execute(update(CheckpointRow).where(CheckpointRow.size == row.size).values(note="\n".join(lines)))
        await session.commit()
    report = await _export_and_verify(settings, log, tmp_path, "checkpoint")
    assert not report.ok and "checkpoint" in report.error


async def test_witness_cosigns_and_refuses_a_fork(databases, tmp_path) -> None:
    witness_key = Ed25519PrivateKey.generate()
    witness_name = "witness.regulator.example/w1"
    witness_vkey = note.CosignatureSigner(witness_name, witness_key).vkey

    # Two markets sharing one signing key (a dishonest operator), with different histories.
    shared = tmp_path / "shared"
    markets = []
    for label, count in (("honest", 5), ("fork", 8)):
        async with ledger_database(databases, shared, ledger_witnesses=witness_vkey) as ldb:
            await ldb.append(count, subject="test:w", history=label)
            await ldb.integrate()
            log = ldb.log
            markets.append(ldb.settings)

    state = tmp_path / "witness.state"
    with TestClient(app=create_app(markets[0])) as honest:
        src = HttpSource("http://testserver.local", client=honest)
        result = witness_once("http://testserver.local", log.vkey, witness_key, state, witness_name, source=src)
        assert result.size == 5 and result.status_code == 200
        served_note = honest.get("/v1/ledger/checkpoint").text
        cp, opened = note.open_checkpoint(served_note, note.Verifier.from_vkey(log.vkey),
                                          [note.Verifier.from_vkey(witness_vkey)])
        assert cp.size == 5 and len(opened.verified_by) == 2
    before = state.read_text()
    with TestClient(app=create_app(markets[1])) as forked:
        src = HttpSource("http://testserver.local", client=forked)
        with pytest.raises(InconsistentError):
            witness_once("http://testserver.local", log.vkey, witness_key, state, witness_name, source=src)
        # Nothing was cosigned on the fork, and the witness kept its state.
        assert "witness.regulator.example" not in forked.get("/v1/ledger/checkpoint").text
    assert state.read_text() == before


async def test_cosignature_errors(served, tmp_path) -> None:
    settings, log, maker = served
    known = note.CosignatureSigner("witness.example/known", Ed25519PrivateKey.generate())
    stranger = note.CosignatureSigner("witness.example/stranger", Ed25519PrivateKey.generate())
    settings = settings.model_copy(update={"ledger_witnesses": known.vkey})
    with TestClient(app=create_app(settings)) as client:
        signed = client.get("/v1/ledger/checkpoint").text
        body = note.parse_checkpoint(signed.split("\n\n")[0] + "\n").body()
        now = int(time.time())

        r = client.post("/v1/ledger/cosignatures", content=signed + stranger.signature_line(body, now),
                        headers={"Content-Type": "text/plain"})
        assert r.status_code == 422, r.text

        good = known.signature_line(body, now)
        bad = good[:-6] + ("A" if good[-6] != "A" else "B") + good[-5:]
        r = client.post("/v1/ledger/cosignatures", content=signed + bad, headers={"Content-Type": "text/plain"})
        assert r.status_code == 422, r.text

        other = note.Signer(log.origin, Ed25519PrivateKey.generate())
        never = other.sign_note(body)
        r = client.post("/v1/ledger/cosignatures", content=never + known.signature_line(body, now),
                        headers={"Content-Type": "text/plain"})
        assert r.status_code == 409, r.text

        forged_body = note.Checkpoint(log.origin, 300, b"\x00" * 32).body()
        r = client.post("/v1/ledger/cosignatures",
                        content=log.signer.sign_note(forged_body) + known.signature_line(forged_body, now),
                        headers={"Content-Type": "text/plain"})
        assert r.status_code == 409, r.text

        r = client.post("/v1/ledger/cosignatures", content=b"\xff\xfe", headers={"Content-Type": "text/plain"})
        assert r.status_code == 422
        r = client.post("/v1/ledger/cosignatures", content="not a note", headers={"Content-Type": "text/plain"})
        assert r.status_code == 422
        assert "witness.example" not in client.get("/v1/ledger/checkpoint").text

        r = client.post("/v1/ledger/cosignatures", content=signed + good, headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        assert client.get("/v1/ledger/checkpoint").text == signed + good
        assert client.get("/v1/ledger/tlog/checkpoint").text == signed + good
