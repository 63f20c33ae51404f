"""Writing a blob: a stream of arbitrarily sized pieces re-cut into batches of whole
chunks, hashed and sealed in the background while the next batch arrives.

Memory use is bounded by a couple of batches (about 3 MiB: two plaintext batches
and one ciphertext), independent of the blob size. The file appears atomically
(temp file in the same directory, fsync, ``os.replace``) or not at all.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread

from market.storage.errors import ContentTooLarge
from market.storage.files import SharedFd, fsync_dir, makedirs, unlink_quiet
from market.storage.format import FORMAT_VERSION, HEADER, MAGIC, TAG_SIZE, Digest, Sealer, StoredBlob, data_cipher

__all__ = ["write_blob"]


def _new_pool() -> None:
    global _POOL
    _POOL = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="blob-write")


# Runs the lanes of the writes in progress. No task in it ever waits for another,
# so every write makes progress whatever the pool size. A forked child gets a
# fresh pool: the inherited one would count threads that do not exist in the
# child and never run anything.
_POOL: ThreadPoolExecutor
_new_pool()
os.register_at_fork(after_in_child=_new_pool)


class _Lane:
    """Runs the calls submitted to it one after another, in submission order, on
    the shared pool (holding no pool thread while it has nothing to do). Once a
    call fails, the later ones are cancelled rather than run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[Future[None], Callable[..., None], tuple[Any, ...]]] = deque()
        self._running = False
        self._failed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self._queue.append((future, fn, args))
            if self._running:
                return future
            self._running = True
        try:
            _POOL.submit(self._run)
        except BaseException:
            with self._lock:
                self._running = False
            raise
        return future

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                future, fn, args = self._queue.popleft()
            if self._failed:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                try:
                    fn(*args)
                except BaseException as exc:
                    self._failed = True
                    future.set_exception(exc)
                else:
                    future.set_result(None)


class _Pipeline:
    """Processes the batches of one write in the background, in order.

    Each batch goes through three lanes that run in parallel: the content hash,
    the Merkle leaf hashes, and encryption + write. The two SHA-256 passes
    dominate the cost, and hashlib and AES-GCM release the GIL, so the lanes
    spread over the cores. Each lane takes the batches in order but need not
    wait for the others, so the content hash of a batch can start while the
    previous one is still being sealed.

    ``submit`` returns once at most ``depth`` batches are in flight, so that the
    caller can refill the buffer of the oldest one: memory stays bounded, and
    receiving the next batch overlaps with processing the previous ones."""

    def __init__(self, file: SharedFd, sealer: Sealer, digest: Digest, depth: int) -> None:
        self._file, self._sealer, self._digest = file, sealer, digest
        self._depth = depth
        self._content, self._merkle, self._seal = _Lane(), _Lane(), _Lane()
        self._in_flight: deque[tuple[Future[None], ...]] = deque()

    async def submit(self, data: memoryview, last: bool) -> None:
        self._in_flight.append(
            (
                self._content.submit(self._digest.update_sha, data),
                self._merkle.submit(self._digest.update_merkle, data),
                self._seal.submit(self._file.call, self._sealer.seal, data, last),
            )
        )
        await self._wait(self._depth)

    async def drain(self) -> None:
        """Wait until every batch is processed; raise the first error, if any."""
        await self._wait(0)

    async def _wait(self, depth: int) -> None:
        while len(self._in_flight) > depth:
            for task in self._in_flight[0]:
                if not task.done():
                    await asyncio.wrap_future(task)  # on cancellation, cancels the task if not started
                task.result()
            self._in_flight.popleft()

    def cancel(self) -> None:
        """Cancel the work not started yet; work already started runs to its end."""
        for batch in self._in_flight:
            for task in batch:
                task.cancel()

    async def settle(self) -> None:
        """Cancel the work not started yet and wait for the rest to end, whatever
        its outcome."""
        self.cancel()
        while self._in_flight:
            for task in self._in_flight[0]:
                if not task.done():
                    with suppress(Exception):
                        await asyncio.wrap_future(task)
            self._in_flight.popleft()


def _commit(fd: int, tmp: Path, final: Path) -> None:
    os.fsync(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)


async def write_blob(
    path: Path,
    blob_id: str,
    data_key: bytes,
    chunk_size: int,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
) -> StoredBlob:
    """Encrypt the stream into the blob file ``path`` and return its commitment.

    See ``BlobStore.write`` for the contract; ``path`` and ``blob_id`` are already
    checked, ``chunk_size`` is in 1..MAX_CHUNK_SIZE."""
    aead = data_cipher(data_key)
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    bid = blob_id.encode("ascii")
    prefix = secrets.token_bytes(8)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, prefix)
    sealer = Sealer(aead, header, prefix, bid, chunk_size)
    digest = Digest(chunk_size)
    batch_len = len(sealer.out) // (chunk_size + TAG_SIZE) * chunk_size
    # Filled in turn: one receives while the pipeline processes the other.
    batch = memoryview(bytearray(batch_len))
    spare = memoryview(bytearray(batch_len))

    await anyio.to_thread.run_sync(makedirs, path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Opened on the loop (a quick metadata call) rather than in a thread so that
    # a cancellation can never strand an fd that a worker opened.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    file = SharedFd(fd, on_close=partial(unlink_quiet, tmp))
    pipeline = _Pipeline(file, sealer, digest, depth=1)
    try:
        total = fill = 0
        async for piece in chunks:
            view = memoryview(piece).cast("B")
            total += len(view)
            if total > max_bytes:
                raise ContentTooLarge(max_bytes)
            while view:
                if fill == batch_len:
                    # More data follows, so none of these chunks is the last.
                    # Returns once the batch before it is done, and so ``spare``
                    # is free again.
                    await pipeline.submit(batch, last=False)
                    batch, spare = spare, batch
                    fill = 0
                take = min(batch_len - fill, len(view))
                batch[fill : fill + take] = view[:take]
                view = view[take:]
                fill += take
        await pipeline.submit(batch[:fill], last=True)
        await pipeline.drain()
        await anyio.to_thread.run_sync(file.call, _commit, tmp, path)
    except Exception:
        # Let the work already started end (a batch or two: milliseconds), so
        # that the temp file is gone by the time the error surfaces. On
        # cancellation there is no waiting: the last worker removes the file.
        await pipeline.settle()
        raise
    finally:
        pipeline.cancel()
        file.close()  # after a successful commit the temp path is already gone
    return digest.result(blob_id)
