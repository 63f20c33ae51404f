"""Offline verification of bundles and whole logs (RFC 9162 proofs, C2SP tlog-tiles,
signed-note checkpoints), with no database and no market code.

- ``verify_bundle``: a certificate or contract with its ledger leaf, inclusion
  proof and checkpoint, as served by the market::

      {"document": {...}, "ledger": {"index": 12, "leaf": "<base64>",
       "checkpoint": "<signed note>", "inclusion_proof": ["<base64>", ...], "vkey": "..."}}

  ``index`` is null (and checkpoint and proof absent or null) while the entry is
  pending. It checks the document hash, the entry signature, the
  checkpoint signature and the inclusion proof (RFC 9162 §2.1.3.2), trusting only
  the vkey given.
- ``verify_log``: reads a whole C2SP tlog-tiles log, checks every entry's
  canonical form and signature (in worker processes, which also hash the leaves),
  recomputes every hash tile and the root, compares them with what is served,
  and, given a state file, checks consistency (RFC 9162 §2.1.4.2) with the
  checkpoint stored there before storing the new one.

Neither needs a database or the market's code; both report rather than raise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .entry import parse_entry, parse_signed, signed_bytes, verify_entry
from .errors import InconsistentError, LedgerError, MalformedError, VerificationError
from .merkle import HASH_SIZE, leaf_hash, prove_consistency, verify_consistency, verify_inclusion
from .note import ALG_ED25519, Checkpoint, Verifier, open_checkpoint
from .sources import (
    LogSource,
    SourceTileReader,
    decode_hash,
    load_state,
    open_source,
    read_entry_bundle,
    read_tile,
    save_state,
)
from .tiles import TILE_WIDTH, TileMemory, TileRecorder, decode_entry_bundle, entries_path, integrate, tile_path

__all__ = ["BundleReport", "Report", "check_consistency", "log_verifier", "verify_bundle", "verify_log"]

PARALLEL_THRESHOLD = 8192  # entries; below this, verify in-process
TILES_PER_TASK = 16  # 4,096 entries per worker task
_FULL_TILE = TILE_WIDTH * HASH_SIZE


def log_verifier(vkey: str) -> Verifier:
    """The verifier of a log's vkey; MalformedError unless it is an Ed25519 note key."""
    verifier = Verifier.from_vkey(vkey)
    if verifier.alg != ALG_ED25519:
        raise MalformedError("the log's vkey must be an Ed25519 note key (alg 0x01)")
    return verifier


# --- bundles -------------------------------------------------------------------------


@dataclass
class BundleReport:
    """The outcome of ``verify_bundle``: valid, pending (not yet in the log), invalid, or
    ``not-a-bundle`` (the input is no bundle at all: not JSON, or JSON with neither
    ``document`` nor ``ledger``, such as an error response saved in its place).

    ``problem`` holds the ``status``, ``title`` and ``detail`` of such an input when it
    is an RFC 9457 problem document, so a tool can say what the server had answered.
    """

    status: Literal["valid", "pending", "invalid", "not-a-bundle"]
    failed_check: str | None = None
    error: str | None = None
    index: int | None = None
    checkpoint: Checkpoint | None = None
    entry: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None


def _problem_summary(value: Any) -> dict[str, Any] | None:
    """``status``, ``title`` and ``detail`` of an RFC 9457 problem document, else None."""
    if not isinstance(value, dict) or not isinstance(value.get("title"), str):
        return None
    if not isinstance(value.get("type"), str) and not isinstance(value.get("status"), int):
        return None
    return {k: value[k] for k in ("status", "title", "detail") if isinstance(value.get(k), (str, int))}


def verify_bundle(bundle: dict[str, Any] | bytes | str, vkey: str) -> BundleReport:
    """Check a bundle ``{"document", "ledger": {...}}`` against the log key ``vkey``.

    Checks, in order: the bundle's shape; the leaf's form (canonical entry JSON);
    ``data.document_sha256`` of the leaf
    against the SHA-256 of the RFC 8785 form of ``document``; the leaf's entry
    signature by the vkey's key (its kid must be the vkey's key id); then, unless
    the entry is pending (``index`` null and no checkpoint or proof), the
    checkpoint's signature by the vkey and the inclusion proof against the
    checkpoint's root and size. The bundle's own ``vkey`` is never trusted.
    """
    check = "bundle"
    try:
        check = "vkey"
        verifier = log_verifier(vkey)
        check = "bundle"
        if isinstance(bundle, (bytes, str)):
            if len(bundle) > 16 << 20:
                raise MalformedError("bundle is over 16 MiB")
            try:
                bundle = json.loads(bundle)
            except (ValueError, RecursionError):
                return BundleReport("not-a-bundle", failed_check=check, error="not JSON")
        if not isinstance(bundle, dict) or ("document" not in bundle and "ledger" not in bundle):
            problem = _problem_summary(bundle)
            what = "an error response (RFC 9457 problem)" if problem else "JSON without document and ledger"
            return BundleReport("not-a-bundle", failed_check=check, error=what, problem=problem)
        if "document" not in bundle or not isinstance(bundle.get("ledger"), dict):
            raise MalformedError('bundle must be {"document": ..., "ledger": {...}}')
        led = bundle["ledger"]
        leaf_b64 = led.get("leaf")
        if not isinstance(leaf_b64, str):
            raise MalformedError("ledger.leaf must be a base64 string")
        try:
            leaf = base64.b64decode(leaf_b64, validate=True)
        except ValueError:
            raise MalformedError("ledger.leaf is not base64") from None
        index = led.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise MalformedError("ledger.index must be null or an integer >= 0")

        check = "leaf"
        entry = parse_entry(leaf)
        check = "document hash"
        want = entry["data"].get("document_sha256")
        try:
            got = hashlib.sha256(rfc8785.dumps(bundle["document"])).hexdigest()
        except (rfc8785.CanonicalizationError, RecursionError) as e:
            raise MalformedError(f"document cannot be canonicalised: {e}") from None
        if want != got:
            raise VerificationError(f"leaf has document_sha256 {want!r}, the document hashes to {got}")

        check = "entry signature"
        verify_entry(leaf, verifier.ed25519, verifier.key_id)

        if index is None:
            check = "bundle"
            if led.get("checkpoint") is not None or led.get("inclusion_proof"):
                raise MalformedError("a pending bundle (index null) must have no checkpoint or proof")
            return BundleReport("pending", entry=entry)

        check = "checkpoint signature"
        note = led.get("checkpoint")
        if not isinstance(note, str):
            raise MalformedError("ledger.checkpoint must be a signed note")
        checkpoint, _ = open_checkpoint(note, verifier)

        check = "inclusion proof"
        proof = led.get("inclusion_proof")
        if not isinstance(proof, list) or len(proof) > 64:
            raise MalformedError("ledger.inclusion_proof must be a list of base64 hashes")
        hashes = [decode_hash(h, "inclusion proof hash") for h in proof]
        verify_inclusion(index, checkpoint.size, leaf_hash(leaf), hashes, checkpoint.root)
        return BundleReport("valid", index=index, checkpoint=checkpoint, entry=entry)
    except LedgerError as e:
        return BundleReport("invalid", failed_check=check, error=str(e))


# --- whole logs ----------------------------------------------------------------------


@dataclass
class Report:
    """The outcome of ``verify_log``. ``error`` names the first check that failed."""

    ok: bool = False
    source: str = ""
    size: int | None = None
    root: bytes | None = None
    entries_checked: int = 0
    error: str | None = None
    failed_entry: int | None = None
    failed_tile: str | None = None
    previous_size: int | None = None
    consistency_checked: bool = False
    seconds: float = 0.0
    workers: int = 1
    checkpoint_note: str | None = field(default=None, repr=False)


class _Failure(Exception):
    def __init__(self, message: str, entry: int | None = None, tile: str | None = None) -> None:
        super().__init__(message)
        self.entry = entry
        self.tile = tile


# Worker-process state: the log key, set once by _init_worker.
_worker_key: tuple[Ed25519PublicKey, str] | None = None


def _init_worker(public_key: bytes, kid: str) -> None:
    global _worker_key
    _worker_key = (Ed25519PublicKey.from_public_bytes(public_key), kid)


def _check_bundles(first_tile: int, bundles: list[tuple[int, bytes]]) -> tuple[bytes, tuple[int, str] | None]:
    """Worker task: ``_check_bundles_with`` under the key set by ``_init_worker``."""
    assert _worker_key is not None
    return _check_bundles_with(*_worker_key, first_tile, bundles)


def _check_bundles_with(
    key: Ed25519PublicKey, kid: str, first_tile: int, bundles: list[tuple[int, bytes]]
) -> tuple[bytes, tuple[int, str] | None]:
    """Verify consecutive entry bundles; return (their leaf hashes, first failure or None).

    A failure is (entry index, message); the hashes then stop before that entry.
    """
    sha256 = hashlib.sha256
    hashes: list[bytes] = []
    index = first_tile * TILE_WIDTH
    for n, (width, data) in enumerate(bundles):
        try:
            leaves = decode_entry_bundle(data, width)
        except MalformedError as e:
            return b"".join(hashes), (index, f"entry bundle {entries_path(first_tile + n, width)}: {e}")
        for leaf in leaves:
            try:
                entry, signature = parse_signed(leaf)
                if entry["sig"]["kid"] != kid:
                    raise VerificationError(f"signed by key id {entry['sig']['kid']}, want {kid}")
                key.verify(signature, signed_bytes(leaf, entry))
            except InvalidSignature:
                return b"".join(hashes), (index, f"entry {index}: signature does not verify")
            except LedgerError as e:
                return b"".join(hashes), (index, f"entry {index}: {e}")
            hashes.append(sha256(b"\x00" + leaf).digest())
            index += 1
    return b"".join(hashes), None


def _compare_tile(src: LogSource, level: int, index: int, data: bytes) -> None:
    width = len(data) // HASH_SIZE
    path = tile_path(level, index, width)
    stored = read_tile(src, level, index, width)
    if stored is None:
        raise _Failure(f"hash tile {path} is missing", tile=path)
    if stored == data:
        return
    for i in range(width):
        if stored[i * HASH_SIZE : (i + 1) * HASH_SIZE] != data[i * HASH_SIZE : (i + 1) * HASH_SIZE]:
            raise _Failure(f"hash tile {path} differs from the entries at hash {i}", tile=path)
    raise _Failure(f"hash tile {path} is {len(stored)} bytes, want {len(data)}", tile=path)


def _bundle_tasks(src: LogSource, size: int) -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """Yield (first tile, [(width, bundle data), ...]) for every entry bundle, in order."""
    tiles = (size + TILE_WIDTH - 1) // TILE_WIDTH
    for first in range(0, tiles, TILES_PER_TASK):
        batch = []
        for n in range(first, min(first + TILES_PER_TASK, tiles)):
            width = min(TILE_WIDTH, size - n * TILE_WIDTH)
            data = read_entry_bundle(src, n, width)
            if data is None:
                path = entries_path(n, width)
                raise _Failure(f"entry bundle {path} is missing", entry=n * TILE_WIDTH, tile=path)
            batch.append((width, data))
        yield first, batch


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork is cheapest, and safe while this process runs a single thread.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _results(
    tasks: Iterator[tuple[int, list[tuple[int, bytes]]]], verifier: Verifier, workers: int
) -> Iterator[tuple[bytes, tuple[int, str] | None]]:
    """Run _check_bundles over the tasks, in order, on ``workers`` processes (1: in-process)."""
    if workers <= 1:
        key, kid = verifier.ed25519, verifier.key_id.hex()
        for first, batch in tasks:
            yield _check_bundles_with(key, kid, first, batch)
        return
    unyielded: deque[tuple[int, list[tuple[int, bytes]]]] = deque()  # in order, results not yet given
    futures: deque[Future[tuple[bytes, tuple[int, str] | None]]] = deque()
    try:
        with ProcessPoolExecutor(
            workers, mp_context=_pool_context(), initializer=_init_worker,
            initargs=(verifier.public_key, verifier.key_id.hex()),
        ) as pool:
            try:
                for first, batch in tasks:
                    unyielded.append((first, batch))  # before submit(): it raises on a broken pool
                    futures.append(pool.submit(_check_bundles, first, batch))
                    if len(futures) >= 2 * workers:
                        result = futures[0].result()
                        futures.popleft()
                        unyielded.popleft()
                        yield result
                while futures:
                    result = futures[0].result()
                    futures.popleft()
                    unyielded.popleft()
                    yield result
            finally:
                for f in futures:
                    f.cancel()
    except (BrokenProcessPool, OSError):
        # No worker processes here (a sandbox, a broken spawn): finish in this process,
        # from the first batch whose result was not yet yielded.
        key, kid = verifier.ed25519, verifier.key_id.hex()
        for first, batch in list(unyielded):
            yield _check_bundles_with(key, kid, first, batch)
        for first, batch in tasks:
            yield _check_bundles_with(key, kid, first, batch)


def _progress(total: int, enabled: bool | None) -> tuple[Callable[[int], None], Callable[[], None]]:
    if enabled is None:
        enabled = total >= 50_000 and sys.stderr.isatty()
    if not enabled:
        return (lambda n: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("entries"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )
    task = bar.add_task("entries", total=total)
    bar.start()
    return (lambda n: bar.advance(task, n)), bar.stop


def _check_entries_and_tiles(
    src: LogSource, verifier: Verifier, checkpoint: Checkpoint, report: Report, workers: int, progress: bool | None
) -> None:
    size = checkpoint.size
    mem = TileMemory()  # the right-edge partial tiles of the tree recomputed so far
    done, root = 0, hashlib.sha256(b"").digest()
    tasks = _bundle_tasks(src, size)
    # Start workers before the progress bar's thread, so that fork is safe.
    results = _results(tasks, verifier, workers if size >= PARALLEL_THRESHOLD else 1)
    advance, stop = None, None
    try:
        for hashes, failure in results:
            if advance is None:
                advance, stop = _progress(size, progress)
            if failure is not None:
                report.entries_checked = failure[0]
                raise _Failure(failure[1], entry=failure[0])
            leaf_hashes = [hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)]
            done, root, changed = integrate(done, leaf_hashes, mem)
            for (level, index), data in changed.items():
                if len(data) == _FULL_TILE:
                    mem.tiles.pop((level, index), None)
                    _compare_tile(src, level, index, data)
                else:
                    mem.keep((level, index), data)
            report.entries_checked = done
            advance(len(leaf_hashes))
    finally:
        if stop is not None:
            stop()
        results.close()
    if done != size:
        raise _Failure(f"read {done} entries, the checkpoint has {size}")
    if root != checkpoint.root:
        raise _Failure(
            f"root of the entries {root.hex()} differs from the checkpoint's {checkpoint.root.hex()}"
        )
    for (level, index), expanded in sorted(mem.tiles.items()):
        _compare_tile(src, level, index, expanded[0])


def _consistency_from_tiles(src: LogSource, first: int, second: int) -> list[bytes]:
    """RFC 9162 PROOF(first, D[0:second]) from the source's tiles of tree ``second``,
    reading each tile it needs once. MissingTileError if the source lacks one."""
    recorder = TileRecorder()
    prove_consistency(first, second, recorder)  # a dry run names the tiles
    memory = TileMemory()
    for key, data in SourceTileReader(src, second).read_tiles(sorted(recorder.keys)).items():
        memory.keep(key, data)
    return prove_consistency(first, second, memory)


def check_consistency(src: LogSource, old: Checkpoint, new: Checkpoint) -> None:
    """Check that ``new`` extends ``old``; raises InconsistentError naming both sizes.

    The proof comes from the source's consistency endpoint, or, for a directory,
    is built from its tiles (``merkle.prove_consistency`` over the tiles it reads).
    """
    if new.size < old.size:
        raise InconsistentError(f"checkpoint size decreased from {old.size} to {new.size} (rollback)")
    if new.size == old.size and new.root != old.root:
        raise InconsistentError(
            f"checkpoint of size {new.size} has root {new.root.hex()}, the stored one of the same size "
            f"has {old.root.hex()} (fork)"
        )
    proof: list[bytes] = []
    if 0 < old.size < new.size:
        try:
            served = src.consistency_proof(old.size, new.size)
            if served is None:
                served = _consistency_from_tiles(src, old.size, new.size)
        except (LedgerError, ValueError) as e:
            raise InconsistentError(f"no consistency proof from size {old.size} to {new.size}: {e}") from None
        proof = served
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except (VerificationError, MalformedError) as e:
        raise InconsistentError(
            f"checkpoint of size {new.size} is not consistent with the stored one of size {old.size} (fork): {e}"
        ) from None


def verify_log(
    source: str | os.PathLike[str] | LogSource,
    vkey: str,
    state_path: str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    progress: bool | None = None,
) -> Report:
    """Verify a whole log at ``source`` (base URL, directory or LogSource) under the log key ``vkey``.

    Checks the checkpoint signature, every entry (canonical, signed by the vkey's
    key), every hash tile and the root. With ``state_path``, checks consistency
    with the checkpoint stored there (refusing a rollback or fork) and then stores
    the new one. ``workers`` defaults to the CPUs available. Returns a Report; its
    ``error`` names the first entry, tile or proof that failed.
    """
    started = time.monotonic()
    report = Report(source=source.name if isinstance(source, LogSource) else os.fspath(source))
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    report.workers = workers
    src: LogSource | None = None
    try:
        verifier = log_verifier(vkey)
        src = source if isinstance(source, LogSource) else open_source(source)
        note = src.read("checkpoint", 1 << 20)
        if note is None:
            raise _Failure("checkpoint is missing")
        try:
            checkpoint, _ = open_checkpoint(note, verifier)
        except LedgerError as e:
            raise _Failure(f"checkpoint: {e}") from None
        report.size, report.root = checkpoint.size, checkpoint.root
        report.checkpoint_note = note.decode("utf-8")
        _check_entries_and_tiles(src, verifier, checkpoint, report, workers, progress)
        if state_path is not None:
            previous = load_state(state_path)
            if previous is not None:
                try:
                    old, _ = open_checkpoint(previous, verifier)
                except LedgerError as e:
                    raise _Failure(f"state file: stored checkpoint does not verify: {e}") from None
                report.previous_size = old.size
                try:
                    check_consistency(src, old, checkpoint)
                except InconsistentError as e:
                    raise _Failure(str(e)) from None
                report.consistency_checked = True
            save_state(state_path, report.checkpoint_note)
        report.ok = True
    except _Failure as f:
        report.error, report.failed_entry, report.failed_tile = str(f), f.entry, f.tile
    except LedgerError as e:
        report.error = str(e)
    finally:
        if src is not None and src is not source:
            src.close()
        report.seconds = time.monotonic() - started
    return report
