"""Reading a blob: only the chunks a byte range overlaps, each authenticated before
any of its bytes are used, about 1 MiB per worker-thread hop."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import anyio.to_thread

from market.storage.errors import BlobNotFound
from market.storage.files import SharedFd
from market.storage.format import BATCH_BYTES, Digest, Layout, StoredBlob, data_cipher, open_chunks, read_layout

__all__ = ["blob_layout", "read_batches", "verify_blob"]


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
