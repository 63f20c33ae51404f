"""Offline tools: verify-bundle, verify-log (directory and URL), --state, witness."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import ledger.verify as verify_mod
from ledger import merkle, tiles
from ledger.__main__ import main
from ledger.entry import sign_entry
from ledger.errors import InconsistentError
from ledger.note import Checkpoint, CosignatureSigner, Verifier, open_checkpoint, sign_checkpoint
from ledger.sources import DirSource, HttpSource
from ledger.verify import check_consistency, verify_bundle, verify_log
from ledger.witness import witness_once
from tests.ledger.ledgertestutil import T0, FakeMarket, make_leaves, serve, signer, write_log

S = signer(1)
OTHER = signer(2)  # same origin, another key
ROOT_DIR = Path(__file__).resolve().parents[2]


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


# --- bundles -------------------------------------------------------------------------

DOCUMENT = {"kind": "trade_contract", "order": "ord_42", "amount": 4200, "buyer": "acct_1", "note": "Zoë"}


def make_bundle(document=DOCUMENT, index: int | None = 5, size: int = 9, log_signer=S) -> dict:
    digest = hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    _, leaf = sign_entry(S, "trade.settled", "order:ord_42", "acct_1", {"document_sha256": digest}, T0)
    led: dict = {"index": index, "leaf": b64(leaf), "vkey": S.vkey}
    if index is not None:
        leaves = make_leaves(S, size)
        leaves[index] = leaf
        hashes = [merkle.leaf_hash(x) for x in leaves]
        cp = Checkpoint(S.name, size, merkle.root(hashes))
        led["checkpoint"] = sign_checkpoint(log_signer, cp)
        led["inclusion_proof"] = [b64(h) for h in merkle.inclusion_proof(index, size, hashes)]
    else:
        led["checkpoint"] = None
        led["inclusion_proof"] = None
    return {"document": document, "ledger": led}


def run_bundle(tmp_path: Path, bundle, vkey: str = S.vkey) -> int:
    f = tmp_path / "bundle.json"
    f.write_text(bundle if isinstance(bundle, str) else json.dumps(bundle))
    return main(["verify-bundle", str(f), "--vkey", vkey])


def test_bundle_valid(tmp_path, capsys):
    assert run_bundle(tmp_path, make_bundle()) == 0
    assert "valid: entry 5" in capsys.readouterr().out
    report = verify_bundle(make_bundle(), S.vkey)
    assert report.status == "valid" and report.index == 5 and report.checkpoint.size == 9


def test_bundle_pending(tmp_path, capsys):
    assert run_bundle(tmp_path, make_bundle(index=None)) == 2
    assert "pending" in capsys.readouterr().out
    no_keys = make_bundle(index=None)
    del no_keys["ledger"]["checkpoint"], no_keys["ledger"]["inclusion_proof"]
    assert verify_bundle(no_keys, S.vkey).status == "pending"


def test_bundle_document_byte_changed(tmp_path, capsys):
    bundle = make_bundle()
    bundle["document"]["amount"] = 4201
    assert run_bundle(tmp_path, bundle) == 1
    assert "document hash" in capsys.readouterr().err
    pending = make_bundle(index=None)
    pending["document"]["note"] = "Zoe"
    assert verify_bundle(pending, S.vkey).status == "invalid"


def test_bundle_checkpoint_signed_by_another_key(tmp_path, capsys):
    assert run_bundle(tmp_path, make_bundle(log_signer=OTHER)) == 1
    assert "checkpoint signature" in capsys.readouterr().err


def test_bundle_vkey_inside_is_not_trusted(tmp_path):
    bundle = make_bundle(log_signer=OTHER)
    bundle["ledger"]["vkey"] = OTHER.vkey
    assert run_bundle(tmp_path, bundle) == 1
    assert run_bundle(tmp_path, make_bundle(), vkey=OTHER.vkey) == 1  # entry signed by S


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda b: b["ledger"].__setitem__("index", 4), "inclusion proof"),
        (lambda b: b["ledger"].__setitem__("index", 9), "inclusion proof"),
        (lambda b: b["ledger"]["inclusion_proof"].pop(), "inclusion proof"),
        (lambda b: b["ledger"]["inclusion_proof"].__setitem__(0, b64(bytes(32))), "inclusion proof"),
        (lambda b: b["ledger"]["inclusion_proof"].__setitem__(0, "not base64"), "inclusion proof"),
        (lambda b: b["ledger"].__setitem__("checkpoint", b["ledger"]["checkpoint"].replace("\n9\n", "\n10\n")),
         "checkpoint signature"),
        (lambda b: b["ledger"].__setitem__("checkpoint", None), "checkpoint signature"),
        (lambda b: b["ledger"].__setitem__("leaf", b["ledger"]["leaf"][:-4]), "leaf"),
        (lambda b: b["document"].__setitem__("extra", 1), "document hash"),
        (lambda b: b["ledger"].__setitem__("index", -1), "bundle"),
        (lambda b: b.pop("document"), "bundle"),
    ],
)
def test_bundle_invalid(change, check):
    bundle = make_bundle()
    change(bundle)
    report = verify_bundle(bundle, S.vkey)
    assert report.status == "invalid" and report.failed_check == check, report


def test_bundle_leaf_signed_by_another_key():
    bundle = make_bundle()
    digest = hashlib.sha256(rfc8785.dumps(DOCUMENT)).hexdigest()
    _, leaf = sign_entry(OTHER, "trade.settled", "order:ord_42", "acct_1", {"document_sha256": digest}, T0)
    bundle["ledger"]["leaf"] = b64(leaf)
    report = verify_bundle(bundle, S.vkey)
    assert report.failed_check == "entry signature"


def test_bundle_bad_input(tmp_path, capsys):
    # A --vkey that is no log key is a usage error, not a verdict on the certificate.
    assert run_bundle(tmp_path, make_bundle(), vkey="nonsense") == 64
    assert "--vkey 'nonsense' is not the log's verifier key" in capsys.readouterr().err
    assert run_bundle(tmp_path, make_bundle(), vkey="") == 64
    assert run_bundle(tmp_path, make_bundle(), vkey=W.vkey) == 64  # a witness key (alg 0x04)
    assert main(["verify-log", str(tmp_path), "--vkey", "null"]) == 64
    # Neither a file that is no bundle nor a missing file says anything about a certificate:
    # their own statuses, never 1 ("a bundle failed a check").
    assert run_bundle(tmp_path, "{not json") == 65
    assert "not a certificate bundle" in capsys.readouterr().err
    assert run_bundle(tmp_path, [1, 2]) == 65
    assert main(["verify-bundle", str(tmp_path / "missing.json"), "--vkey", S.vkey]) == 66
    err = capsys.readouterr().err
    assert "cannot read" in err and "invalid" not in err


def test_an_error_response_saved_as_a_bundle_is_not_called_invalid(tmp_path, capsys):
    problem = {"type": "https://exchange.example/problems/not-found", "title": "Not found", "status": 404,
               "detail": "no asset ast_1", "instance": "/v1/assets/ast_1/certificate"}
    report = verify_bundle(json.dumps(problem), S.vkey)
    assert report.status == "not-a-bundle"
    assert report.problem == {"status": 404, "title": "Not found", "detail": "no asset ast_1"}
    assert run_bundle(tmp_path, problem) == 65
    err = capsys.readouterr().err
    assert err.startswith("not a certificate bundle:") and "404 Not found: no asset ast_1" in err
    assert "invalid" not in err


def test_a_damaged_bundle_is_still_invalid_not_unrecognised():
    for damaged in ({"ledger": make_bundle()["ledger"]}, {"document": DOCUMENT}, {"document": DOCUMENT, "ledger": 1}):
        assert verify_bundle(damaged, S.vkey).status == "invalid"


def test_usage_error_is_not_pending(capsys):
    with pytest.raises(SystemExit) as e:
        main(["verify-bundle"])
    assert e.value.code == 64


def test_module_runs_as_a_program(tmp_path):
    f = tmp_path / "b.json"
    f.write_text(json.dumps(make_bundle()))
    r = subprocess.run(
        [sys.executable, "-m", "ledger", "verify-bundle", str(f), "--vkey", S.vkey],
        cwd=ROOT_DIR, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr


# --- verify-log on a directory -------------------------------------------------------

LEAVES = make_leaves(S, 700)
FORK_LEAVES = make_leaves(S, 900, tag="f")


@pytest.fixture
def log_dir(tmp_path) -> Path:
    d = tmp_path / "log"
    write_log(d, S, LEAVES)
    return d


def test_verify_log_passes(log_dir, capsys):
    report = verify_log(log_dir, S.vkey)
    assert report.ok, report.error
    assert report.entries_checked == 700 and report.size == 700
    assert main(["verify-log", str(log_dir), "--vkey", S.vkey]) == 0
    assert "ok: 700 entries" in capsys.readouterr().out


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 512])
def test_verify_log_sizes(tmp_path, size):
    write_log(tmp_path, S, LEAVES[:size])
    report = verify_log(tmp_path, S.vkey)
    assert report.ok, report.error


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_log_names_tampered_entry(log_dir, capsys):
    bundle = log_dir / tiles.entries_path(1)
    leaves = tiles.decode_entry_bundle(bundle.read_bytes())
    target = 300 - 256
    pos = sum(2 + len(x) for x in leaves[:target]) + 2 + leaves[target].index(b'"amount":') + 10
    flip_byte(bundle, pos)
    report = verify_log(log_dir, S.vkey)
    assert not report.ok and report.failed_entry == 300
    assert "entry 300" in report.error
    assert main(["verify-log", str(log_dir), "--vkey", S.vkey]) == 1
    assert "entry 300" in capsys.readouterr().err


def test_verify_log_names_tampered_tile(log_dir, capsys):
    flip_byte(log_dir / "tile/0/001", 17 * 32 + 5)
    report = verify_log(log_dir, S.vkey)
    assert not report.ok and report.failed_tile == "tile/0/001"
    assert "hash 17" in report.error
    assert main(["verify-log", str(log_dir), "--vkey", S.vkey]) == 1
    assert "tile/0/001" in capsys.readouterr().err


def test_verify_log_names_tampered_partial_and_upper_tiles(log_dir):
    flip_byte(log_dir / "tile/0/002.p/188", 187 * 32)
    report = verify_log(log_dir, S.vkey)
    assert report.failed_tile == "tile/0/002.p/188" and "hash 187" in report.error
    flip_byte(log_dir / "tile/0/002.p/188", 187 * 32)
    flip_byte(log_dir / "tile/1/000.p/2", 32)
    report = verify_log(log_dir, S.vkey)
    assert report.failed_tile == "tile/1/000.p/2" and "hash 1" in report.error


def test_verify_log_missing_files(log_dir):
    (log_dir / "tile/0/000").unlink()
    assert "tile/0/000" in verify_log(log_dir, S.vkey).error
    (log_dir / tiles.entries_path(2, 188)).unlink()
    report = verify_log(log_dir, S.vkey)
    assert not report.ok and "tile/entries/002.p/188" in report.error


def test_verify_log_altered_checkpoint(log_dir):
    cp = log_dir / "checkpoint"
    note = cp.read_text()
    cp.write_text(note.replace("\n700\n", "\n699\n"))
    assert "checkpoint" in verify_log(log_dir, S.vkey).error
    root = open_checkpoint(note, Verifier.from_vkey(S.vkey))[0].root
    cp.write_text(sign_checkpoint(OTHER, Checkpoint(S.name, 700, root)))
    assert not verify_log(log_dir, S.vkey).ok
    # Correctly signed, but a root the entries do not give.
    cp.write_text(sign_checkpoint(S, Checkpoint(S.name, 700, bytes(32))))
    report = verify_log(log_dir, S.vkey)
    assert not report.ok and "root" in report.error
    cp.write_text(sign_checkpoint(S, Checkpoint(S.name, 701, bytes(32))))
    assert not verify_log(log_dir, S.vkey).ok


def test_verify_log_rejects_entries_signed_by_another_key(tmp_path):
    leaves = LEAVES[:10] + make_leaves(OTHER, 1, start=10) + LEAVES[11:20]
    write_log(tmp_path, S, leaves)
    report = verify_log(tmp_path, S.vkey)
    assert report.failed_entry == 10


def test_verify_log_in_worker_processes(log_dir, monkeypatch):
    monkeypatch.setattr(verify_mod, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(verify_mod, "TILES_PER_TASK", 1)
    report = verify_log(log_dir, S.vkey, workers=2)
    assert report.ok, report.error
    flip_byte(log_dir / tiles.entries_path(2, 188), 100)
    report = verify_log(log_dir, S.vkey, workers=2)
    assert not report.ok and report.failed_entry is not None and report.failed_entry >= 512


def _die(first_tile, bundles):
    os._exit(3)


def test_verify_log_survives_a_broken_worker_pool(log_dir, monkeypatch):
    monkeypatch.setattr(verify_mod, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(verify_mod, "TILES_PER_TASK", 1)
    monkeypatch.setattr(verify_mod, "_check_bundles", _die)  # workers die; the rest runs in-process
    report = verify_log(log_dir, S.vkey, workers=2)
    assert report.ok, report.error
    assert report.entries_checked == 700


def test_a_batch_submitted_to_an_already_broken_pool_is_still_checked(log_dir, monkeypatch):
    # Hold the reader back until the first worker has died and its future has failed:
    # the pool is marked broken before that, so the next submit() raises itself, and
    # that batch must not be lost.
    monkeypatch.setattr(verify_mod, "PARALLEL_THRESHOLD", 0)
    monkeypatch.setattr(verify_mod, "TILES_PER_TASK", 1)
    monkeypatch.setattr(verify_mod, "_check_bundles", _die)
    submitted: list[Future] = []

    class RecordingPool(ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            submitted.append(future)
            return future

    monkeypatch.setattr(verify_mod, "ProcessPoolExecutor", RecordingPool)
    read_tasks = verify_mod._bundle_tasks

    def tasks_after_the_first_worker_died(src, size):
        for n, task in enumerate(read_tasks(src, size)):
            yield task
            if n == 0:
                futures_wait(submitted[:1], timeout=60)
                assert isinstance(submitted[0].exception(timeout=0), BrokenProcessPool)

    monkeypatch.setattr(verify_mod, "_bundle_tasks", tasks_after_the_first_worker_died)
    report = verify_log(log_dir, S.vkey, workers=2)
    assert report.ok, report.error
    assert report.entries_checked == 700
    assert len(submitted) == 1  # every later batch was checked in-process


# --- --state: consistency, forks, rollbacks ------------------------------------------


def test_state_consistent_fork_and_rollback(tmp_path, capsys):
    state = tmp_path / "state"
    a, grown, fork_same, fork_larger, prefix = (tmp_path / n for n in ("a", "b", "c", "d", "e"))
    write_log(a, S, LEAVES)
    write_log(grown, S, LEAVES + make_leaves(S, 300, start=700))
    write_log(fork_same, S, FORK_LEAVES[:700])
    write_log(fork_larger, S, LEAVES[:400] + FORK_LEAVES[400:900])
    write_log(prefix, S, LEAVES[:500])

    first = verify_log(a, S.vkey, state)
    assert first.ok and not first.consistency_checked and state.exists()
    stored = state.read_text()

    for fork in (fork_same, fork_larger):
        report = verify_log(fork, S.vkey, state)
        assert not report.ok and "fork" in report.error, report.error
        assert state.read_text() == stored  # untouched
    report = verify_log(prefix, S.vkey, state)
    assert not report.ok and "decreased from 700 to 500" in report.error

    assert main(["verify-log", str(fork_larger), "--vkey", S.vkey, "--state", str(state)]) == 1
    assert "fork" in capsys.readouterr().err

    again = verify_log(a, S.vkey, state)
    assert again.ok and again.consistency_checked and again.previous_size == 700
    report = verify_log(grown, S.vkey, state)
    assert report.ok and report.consistency_checked and report.previous_size == 700
    assert "\n1000\n" in state.read_text()
    report = verify_log(a, S.vkey, state)
    assert not report.ok and "decreased from 1000 to 700" in report.error


def test_consistency_from_a_directory_reads_its_tiles(tmp_path):
    # A directory serves no consistency endpoint: the proof is built from its tiles.
    write_log(tmp_path, S, LEAVES)
    verifier = Verifier.from_vkey(S.vkey)
    new, _ = open_checkpoint((tmp_path / "checkpoint").read_text(), verifier)
    hashes = [merkle.leaf_hash(x) for x in LEAVES]
    for size in (1, 255, 256, 300, 511, 513, 699, 700):
        old = Checkpoint(S.name, size, merkle.root(hashes[:size]))
        check_consistency(DirSource(tmp_path), old, new)
    with pytest.raises(InconsistentError, match="not consistent with the stored one of size 300"):
        check_consistency(DirSource(tmp_path), Checkpoint(S.name, 300, bytes(32)), new)
    (tmp_path / "tile/0/001").unlink()  # a tile the proof from 300 needs
    with pytest.raises(InconsistentError, match="no consistency proof from size 300 to 700: tile 0/1 is missing"):
        check_consistency(DirSource(tmp_path), Checkpoint(S.name, 300, merkle.root(hashes[:300])), new)


def test_state_from_another_log_key(tmp_path):
    state = tmp_path / "state"
    state.write_text(sign_checkpoint(OTHER, Checkpoint(S.name, 1, bytes(32))))
    write_log(tmp_path / "a", S, LEAVES[:10])
    report = verify_log(tmp_path / "a", S.vkey, state)
    assert not report.ok and "state" in report.error


# --- verify-log over HTTP ------------------------------------------------------------


def test_verify_log_over_http_with_mock_transport():
    market = FakeMarket(S, LEAVES)
    source = HttpSource("http://market.test", client=market.client())
    report = verify_log(source, S.vkey)
    assert report.ok, report.error


def test_verify_log_over_http_falls_back_to_full_tiles(tmp_path):
    market = FakeMarket(S, LEAVES[:600])
    old_note = market.note
    market.set_leaves(LEAVES)  # tiles grew, but serve the older checkpoint
    market.note = old_note
    source = HttpSource("http://market.test", client=market.client())
    assert verify_log(source, S.vkey).ok


def test_verify_log_url_with_state_uses_consistency_endpoint(tmp_path, capsys):
    state = tmp_path / "state"
    market = FakeMarket(S, LEAVES[:300])
    with serve(market) as url:
        assert main(["verify-log", url, "--vkey", S.vkey, "--state", str(state)]) == 0
        market.set_leaves(LEAVES)
        assert main(["verify-log", url, "--vkey", S.vkey, "--state", str(state)]) == 0
        assert "consistent with the stored checkpoint of size 300" in capsys.readouterr().out
        market.set_leaves(LEAVES[:250] + FORK_LEAVES[250:800])
        assert main(["verify-log", url, "--vkey", S.vkey, "--state", str(state)]) == 1
        assert "fork" in capsys.readouterr().err


# --- witness -------------------------------------------------------------------------

W = CosignatureSigner("witness.test.example/w", signer(9).private_key)


def test_witness_cosigns_and_refuses_forks(tmp_path):
    state = tmp_path / "wstate"
    market = FakeMarket(S, LEAVES[:300])
    client = market.client()
    src = HttpSource("http://market.test", client=client)
    r = witness_once("http://market.test", S.vkey, W.private_key, state, W.name, now=1_800_000_000, source=src)
    assert r.size == 300 and r.previous_size is None and len(market.posted) == 1
    cp, note = open_checkpoint(market.posted[0], Verifier.from_vkey(S.vkey), [Verifier.from_vkey(W.vkey)])
    assert cp.size == 300 and [s.timestamp for s in note.verified_by if s.name == W.name] == [1_800_000_000]

    market.set_leaves(LEAVES)
    r = witness_once("http://market.test", S.vkey, W.private_key, state, W.name, source=src)
    assert r.previous_size == 300 and r.size == 700 and len(market.posted) == 2

    stored = state.read_text()
    for fork in (FORK_LEAVES[:700], LEAVES[:500] + FORK_LEAVES[500:800], LEAVES[:600]):
        market.set_leaves(fork)
        with pytest.raises(InconsistentError) as e:
            witness_once("http://market.test", S.vkey, W.private_key, state, W.name, source=src)
        assert "700" in str(e.value)
        assert state.read_text() == stored and len(market.posted) == 2


def test_witness_cli_with_keygen(tmp_path, capsys):
    keyfile = tmp_path / "witness.pem"
    assert main(["witness-keygen", "--name", "regulator.example/w", "--key", str(keyfile)]) == 0
    vkey = capsys.readouterr().out.strip()
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    assert Verifier.from_vkey(vkey).alg == 0x04
    assert main(["witness-keygen", "--name", "x", "--key", str(keyfile)]) == 1  # never overwrites

    state = tmp_path / "state"
    market = FakeMarket(S, LEAVES[:100])
    with serve(market) as url:
        assert main(["witness", url, "--vkey", S.vkey, "--key", str(keyfile), "--state", str(state)]) == 0
        market.set_leaves(LEAVES[:50])
        assert main(["witness", url, "--vkey", S.vkey, "--key", str(keyfile), "--state", str(state)]) == 1
        assert "decreased from 100 to 50" in capsys.readouterr().err
    assert len(market.posted) == 1
    open_checkpoint(market.posted[0], Verifier.from_vkey(S.vkey), [Verifier.from_vkey(vkey)])


class RefusingMarket(FakeMarket):
    def __init__(self, *args, status: int, problem: dict[str, str] | None) -> None:
        super().__init__(*args)
        self.status, self.problem = status, problem

    def handle(self, method, path, query, body):
        if method == "POST":
            return self.status, json.dumps(self.problem).encode() if self.problem else b""
        return super().handle(method, path, query, body)


@pytest.mark.parametrize(
    ("status", "problem", "says"),
    [
        (422, {"type": "https://exchange.example/problems/bad-cosignature", "title": "Unprocessable request",
               "detail": "note has no signature by a known key"}, "MARKET_LEDGER_WITNESSES"),
        (409, {"type": "https://exchange.example/problems/unknown-checkpoint", "title": "Conflict",
               "detail": "the market never signed a checkpoint of size 3 with this root"}, "run the witness again"),
        (502, None, "try again later"),
    ],
)
def test_witness_shows_the_servers_reason_and_what_to_do(tmp_path, capsys, status, problem, says):
    market = RefusingMarket(S, LEAVES[:10], status=status, problem=problem)
    with serve(market) as url:
        code = main(["witness", url, "--vkey", S.vkey, "--key", str(write_seed(tmp_path)), "--state",
                     str(tmp_path / "s"), "--name", "w.example"])
    err = capsys.readouterr().err
    assert code == 1 and f"HTTP {status}" in err and says in err, err
    if problem:
        assert problem["detail"] in err
    if status == 422:
        assert CosignatureSigner("w.example", Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)).vkey in err


def write_seed(tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(bytes([7]) * 32)
    return seed


def test_witness_key_as_raw_seed(tmp_path):
    seed = tmp_path / "seed"
    seed.write_bytes(bytes([7]) * 32)
    market = FakeMarket(S, LEAVES[:10])
    with serve(market) as url:
        code = main(["witness", url, "--vkey", S.vkey, "--key", str(seed), "--state", str(tmp_path / "s"),
                     "--name", "w.example"])
    assert code == 0 and len(market.posted) == 1
    shutil.rmtree(tmp_path)


def test_an_unreachable_log_is_named_with_what_to_check(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["verify-log", f"http://127.0.0.1:{port}", "--vkey", S.vkey]) == 1
    err = capsys.readouterr().err
    assert f"cannot connect to http://127.0.0.1:{port}" in err and "check the URL" in err
