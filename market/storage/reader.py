"""Reading a blob file: only the chunks a byte range overlaps, each authenticated
before any of its bytes are used, about 1 MiB per worker-thread hop."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio.to_thread

from market.storage.errors import BlobNotFound
from market.storage.files import SharedFd
from market.storage.format import Layout, chunk_batches, data_cipher, open_chunks, read_layout

__all__ = ["blob_layout", "read_batches"]


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
        for a, b in chunk_batches(lay, start, end):
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
