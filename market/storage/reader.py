"""Reading a blob: only the chunks a byte range overlaps, each authenticated before
any of its bytes are used, about 1 MiB per worker-thread hop."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from market.storage.errors import BlobNotFound
from market.storage.files import SharedFd
from market.storage.format import BATCH_BYTES, Digest, Layout, StoredBlob, data_cipher, open_chunks, read_layout

__all__ = ["HashedPiece", "blob_layout", "read_batches", "read_hashed", "verify_blob"]


def _open_existing(path: Path, blob_id: str) -> SharedFd:
    # Opened on the loop rather than in a thread, so that a cancellation can never
    # strand an fd that a worker opened.
    try:
        return SharedFd(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except FileNotFoundError:
        raise BlobNotFound(f"no blob {blob_id!r}") from None


async def read_batches(
    path: Path, blob_id: str, data_key: bytes, start: int, end: int | None
) -> AsyncGenerator[tuple[Layout, int, list[bytes]]]:
    """Yield (layout, index of first chunk, decrypted chunks) for the chunks of the
    blob file ``path`` overlapping [start, end) (``end`` None: to the end)."""
    aead = data_cipher(data_key)
    bid = blob_id.encode("ascii")
    file = _open_existing(path, blob_id)
    try:
        lay: Layout = await anyio.to_thread.run_sync(file.call, read_layout)
        stop = lay.size if end is None else min(end, lay.size)
        if start >= stop:
            return
        first, last = start // lay.chunk_size, (stop - 1) // lay.chunk_size
        per_batch = max(1, BATCH_BYTES // lay.chunk_size)
        for a in range(first, last + 1, per_batch):
            b = min(a + per_batch, last + 1)
            yield lay, a, await anyio.to_thread.run_sync(file.call, open_chunks, lay, aead, bid, a, b)
    finally:
        file.close()


@dataclass(frozen=True, slots=True)
class HashedPiece:
    """A piece of a range's plaintext (at most one chunk) and ``sha256``: the SHA-256 of
    the range from its first byte to the end of this piece (a hashlib object of its own),
    or None when the range is read without hashing."""

    data: bytes
    sha256: Any


def _pieces_of(fd: int, lay: Layout, aead: Any, bid: bytes, a: int, b: int, start: int, stop: int,
               running: Any) -> list[HashedPiece]:
    """Chunks [a, b) decrypted and cut to [start, stop), each hashed onto ``running``
    (unless it is None)."""
    out = []
    for i, pt in enumerate(open_chunks(fd, lay, aead, bid, a, b), a):
        lo, hi = max(0, start - i * lay.chunk_size), min(len(pt), stop - i * lay.chunk_size)
        data = pt if lo == 0 and hi == len(pt) else pt[lo:hi]
        if running is not None:
            running.update(data)
        out.append(HashedPiece(data, None if running is None else running.copy()))
    return out


async def read_hashed(path: Path, blob_id: str, data_key: bytes, start: int, end: int | None, hashed: bool
                      ) -> AsyncGenerator[HashedPiece]:
    """The plaintext of [start, end) of the blob file ``path`` (``end`` None: to the end) in
    pieces of at most one chunk, each with the SHA-256 of the range up to its end if
    ``hashed``.

    Reading, decrypting and hashing run in a worker thread (hashlib and AES-GCM release
    the GIL), one batch ahead of the consumer: while it handles one batch's pieces, the
    next batch is being prepared, so the event loop neither hashes nor waits for a read."""
    aead = data_cipher(data_key)
    bid = blob_id.encode("ascii")
    file = _open_existing(path, blob_id)
    loop = asyncio.get_running_loop()
    ahead: asyncio.Future[list[HashedPiece]] | None = None
    try:
        lay: Layout = await anyio.to_thread.run_sync(file.call, read_layout)
        stop = lay.size if end is None else min(end, lay.size)
        if start >= stop:
            return
        first, last = start // lay.chunk_size, (stop - 1) // lay.chunk_size
        per_batch = max(1, BATCH_BYTES // lay.chunk_size)
        running = hashlib.sha256() if hashed else None

        def prepare(a: int) -> asyncio.Future[list[HashedPiece]] | None:
            # One batch at a time hashes onto ``running``: the next is asked for only
            # once the previous one is done.
            if a > last:
                return None
            return loop.run_in_executor(None, file.call, _pieces_of, lay, aead, bid, a,
                                        min(a + per_batch, last + 1), start, stop, running)

        ahead = prepare(first)
        for a in range(first, last + 1, per_batch):
            assert ahead is not None  # prepared for every batch of the range
            pieces = await ahead
            ahead = prepare(a + per_batch)  # read while these pieces are handled
            for piece in pieces:
                yield piece
    finally:
        if ahead is not None:
            ahead.cancel()  # not started: it never runs; running: its result is dropped
        file.close()


async def blob_layout(path: Path, blob_id: str) -> Layout:
    """The layout of a blob file, from its header and length (not authenticated)."""
    file = _open_existing(path, blob_id)
    try:
        return await anyio.to_thread.run_sync(file.call, read_layout)
    finally:
        file.close()


def _absorb(digest: Digest, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(memoryview(chunk))  # a view, so leaf slicing does not copy


async def verify_blob(path: Path, blob_id: str, data_key: bytes) -> StoredBlob:
    """Decrypt the whole blob file and recompute its commitment."""
    digest: Digest | None = None
    async with aclosing(read_batches(path, blob_id, data_key, 0, None)) as batches:
        async for lay, _, plain in batches:
            if digest is None:
                digest = Digest(lay.chunk_size)
            await anyio.to_thread.run_sync(_absorb, digest, plain)
    if digest is None:  # empty blob: no chunk was read, so ask the header
        digest = Digest((await blob_layout(path, blob_id)).chunk_size)
    return digest.result(blob_id)
