"""Offline verification of whole logs (RFC 9162 proofs, C2SP tlog-tiles, signed-note
checkpoints), with no database and no market code; bundles are checked by
``ledger.bundle`` (re-exported here).

- ``verify_log``: reads a whole C2SP tlog-tiles log, checks every entry's
  canonical form and signature (in worker processes, which also hash the leaves),
  recomputes every hash tile and the root, compares them with what is served,
  and, given a state file, checks consistency (RFC 9162 §2.1.4.2) with the
  checkpoint stored there before storing the new one.

It needs no database or market code, and reports rather than raises.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bundle import BundleReport, verify_bundle
from .entry import parse_signed, signed_bytes
from .errors import InconsistentError, LedgerError, MalformedError, VerificationError
from .merkle import HASH_SIZE, prove_consistency, verify_consistency
from .note import Checkpoint, Verifier, log_verifier, open_checkpoint
from .sources import (
    LogSource,
    SourceTileReader,
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
) -> Generator[tuple[bytes, tuple[int, str] | None]]:
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
