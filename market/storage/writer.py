"""Writing a blob: a stream of arbitrarily sized pieces re-cut into batches of whole
chunks, hashed and sealed in the background while the next batch arrives.

Memory use is bounded by a couple of batches (about 3 MiB: two plaintext batches
and one ciphertext), independent of the blob size. ``write_blob`` makes a file that
appears atomically (temp file in the same directory, fsync, ``os.replace``) or not
at all; ``SealedStream`` hands the same ciphertext on as a stream of bytes, for an
object store's multipart upload.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread

from market.storage.errors import ContentTooLarge
from market.storage.files import SharedFd, fsync_dir, makedirs, unlink_quiet
from market.storage.format import FORMAT_VERSION, HEADER, MAGIC, TAG_SIZE, Digest, Sealer, StoredBlob, data_cipher

__all__ = ["SealedStream", "write_blob"]


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
    the Merkle leaf hashes, and ``seal`` (encryption, and the write or hand-over of
    the ciphertext). The two SHA-256 passes
    dominate the cost, and hashlib and AES-GCM release the GIL, so the lanes
    spread over the cores. Each lane takes the batches in order but need not
    wait for the others, so the content hash of a batch can start while the
    previous one is still being sealed.

    ``submit`` returns once at most ``depth`` batches are in flight, so that the
    caller can refill the buffer of the oldest one: memory stays bounded, and
    receiving the next batch overlaps with processing the previous ones."""

    def __init__(self, seal: Callable[[memoryview, bool], None], digest: Digest, depth: int) -> None:
        self._seal_batch, self._digest = seal, digest
        self._depth = depth
        self._content, self._merkle, self._seal = _Lane(), _Lane(), _Lane()
        self._in_flight: deque[tuple[Future[None], ...]] = deque()

    async def submit(self, data: memoryview, last: bool) -> None:
        self._in_flight.append(
            (
                self._content.submit(self._digest.update_sha, data),
                self._merkle.submit(self._digest.update_merkle, data),
                self._seal.submit(self._seal_batch, data, last),
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


async def _batches(chunks: AsyncIterable[bytes], max_bytes: int, batch_len: int
                   ) -> AsyncIterator[tuple[memoryview, bool]]:
    """Re-cut ``chunks`` into batches of ``batch_len`` bytes: (batch, last). Two
    buffers are filled in turn, so the consumer must be done with a batch before it
    asks for the one after next (``_Pipeline.submit`` with depth 1 is). Raises
    ContentTooLarge as soon as more than ``max_bytes`` have arrived."""
    batch = memoryview(bytearray(batch_len))
    spare = memoryview(bytearray(batch_len))
    total = fill = 0
    async for piece in chunks:
        view = memoryview(piece).cast("B")
        total += len(view)
        if total > max_bytes:
            raise ContentTooLarge(max_bytes)
        while view:
            if fill == batch_len:
                # More data follows, so none of these chunks is the last.
                yield batch, False
                batch, spare = spare, batch
                fill = 0
            take = min(batch_len - fill, len(view))
            batch[fill : fill + take] = view[:take]
            view = view[take:]
            fill += take
    yield batch[:fill], True


def _start(blob_id: str, data_key: bytes, chunk_size: int, max_bytes: int) -> tuple[Sealer, Digest, int]:
    """The sealer and the digest of a new blob, and its batch length."""
    aead = data_cipher(data_key)
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    prefix = secrets.token_bytes(8)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, prefix)
    sealer = Sealer(aead, header, prefix, blob_id.encode("ascii"), chunk_size)
    return sealer, Digest(chunk_size), len(sealer.out) // (chunk_size + TAG_SIZE) * chunk_size


async def write_blob(
    path: Path,
    blob_id: str,
    data_key: bytes,
    chunk_size: int,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
) -> StoredBlob:
    """Encrypt the stream into the blob file ``path`` and return its commitment.

    See ``FileBlobStore.write`` for the contract; ``path`` and ``blob_id`` are already
    checked, ``chunk_size`` is in 1..MAX_CHUNK_SIZE."""
    sealer, digest, batch_len = _start(blob_id, data_key, chunk_size, max_bytes)
    await anyio.to_thread.run_sync(makedirs, path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Opened on the loop (a quick metadata call) rather than in a thread so that
    # a cancellation can never strand an fd that a worker opened.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    file = SharedFd(fd, on_close=partial(unlink_quiet, tmp))
    pipeline = _Pipeline(partial(file.call, sealer.seal), digest, depth=1)
    try:
        async for data, last in _batches(chunks, max_bytes, batch_len):
            # Returns once the batch before it is done, and so its buffer is free again.
            await pipeline.submit(data, last)
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


class SealedStream:
    """The ciphertext of a new blob, header first, as an async iterable of bytes
    (in the file format of ``market.storage.format``), made from ``chunks`` while it
    is consumed; ``result()`` is the commitment once the stream has ended.

    Batches are hashed and sealed in the background as in ``write_blob``; each
    batch's ciphertext is handed on once sealed, so what this holds stays about
    3 MiB whatever the size. An error of ``chunks`` (or ContentTooLarge) surfaces
    from the iteration unchanged."""

    def __init__(self, blob_id: str, data_key: bytes, chunk_size: int, chunks: AsyncIterable[bytes],
                 max_bytes: int) -> None:
        self._blob_id, self._chunks, self._max_bytes = blob_id, chunks, max_bytes
        self._sealer, self._digest, self._batch_len = _start(blob_id, data_key, chunk_size, max_bytes)
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sealed: deque[bytes] = deque([self._sealer.header])
        sealer = self._sealer

        def seal(data: memoryview, last: bool) -> None:
            sealed.append(bytes(sealer.encrypt(data, last)))  # a copy: the sealer reuses its buffer

        pipeline = _Pipeline(seal, self._digest, depth=1)
        try:
            async for data, last in _batches(self._chunks, self._max_bytes, self._batch_len):
                await pipeline.submit(data, last)
                while sealed:
                    yield sealed.popleft()
            await pipeline.drain()
            while sealed:
                yield sealed.popleft()
            self._done = True
        finally:
            pipeline.cancel()

    def result(self) -> StoredBlob:
        """The commitment of the content streamed; only after the whole stream."""
        if not self._done:
            raise RuntimeError("the stream has not been consumed to its end")
        return self._digest.result(self._blob_id)
