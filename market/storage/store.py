"""``BlobStore``: encrypted, chunked blobs of data-asset content, and where they live.

The format is in ``market.storage.format``, the key hierarchy in
``market.storage.keys``. ``BlobStore`` is the interface the market uses (write,
range reads, verify, size, delete, exists) with what every store shares: the shape of
blob ids and the cutting of a byte range into decrypted pieces. ``FileBlobStore``
keeps blobs as files on local disk (``market.storage.writer``, ``market.storage.reader``);
``market.storage.objects.S3BlobStore`` keeps them in an S3-compatible object store.
Either way only ciphertext leaves the process.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from market.storage.errors import InvalidBlobId
from market.storage.files import fsync_dir
from market.storage.format import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, Digest, Layout, StoredBlob
from market.storage.reader import blob_layout, read_batches
from market.storage.writer import write_blob

__all__ = ["MAX_BLOB_ID_LEN", "BlobStore", "FileBlobStore", "HashedPiece", "blob_name"]

MAX_BLOB_ID_LEN = 128

_BLOB_ID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_BLOB_ID_LEN}}}")


def blob_name(blob_id: str) -> str:
    """Where a blob lives, relative to the store's root: ``ab/cd/<blob id>.blob`` where
    ``abcd`` starts the SHA-256 of the id (the same in every store, so that a copy
    between stores keeps each name). InvalidBlobId for an id of the wrong shape."""
    if (
        not isinstance(blob_id, str)
        or not _BLOB_ID_RE.fullmatch(blob_id)
        or blob_id.startswith(".")  # also keeps ids apart from the file store's ".tmp" files
        or ".." in blob_id
    ):
        raise InvalidBlobId(f"invalid blob id {blob_id!r}")
    h = hashlib.sha256(blob_id.encode("ascii")).hexdigest()
    return f"{h[:2]}/{h[2:4]}/{blob_id}.blob"


@dataclass(frozen=True, slots=True)
class HashedPiece:
    """A piece of a range's plaintext (at most one chunk) and ``sha256``: the SHA-256 of
    the range from its first byte to the end of this piece (a hashlib object of its own),
    or None when the range is read without hashing."""

    data: bytes
    sha256: Any


def _hashed(running: Any, pieces: list[bytes]) -> list[HashedPiece]:
    out = []
    for data in pieces:
        running.update(data)
        out.append(HashedPiece(data, running.copy()))
    return out


class BlobStore(ABC):
    """Encrypted blobs by id. ``chunk_size`` applies to new blobs; existing blobs are
    read with the chunk size recorded in their own header."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        self.chunk_size = chunk_size

    @abstractmethod
    def describe(self) -> str:
        """Where the blobs are, for operators (a directory, or ``s3://bucket/prefix``)."""

    @abstractmethod
    async def exists(self, blob_id: str) -> bool:
        """Whether a blob is stored under this id."""

    @abstractmethod
    async def write(
        self,
        blob_id: str,
        data_key: bytes,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
    ) -> StoredBlob:
        """Encrypt the stream into blob ``blob_id`` and return its commitment.

        The blob appears atomically, replacing any blob with the same id only on
        success. On any failure - ContentTooLarge (raised as soon as more than
        ``max_bytes`` have arrived), an error from ``chunks``, cancellation -
        nothing is stored. The stream is never held whole: memory stays bounded
        whatever the size."""

    @abstractmethod
    async def delete(self, blob_id: str) -> bool:
        """Remove the blob; returns False if it did not exist."""

    @abstractmethod
    def _batches(
        self, blob_id: str, data_key: bytes, start: int, end: int | None
    ) -> AsyncGenerator[tuple[Layout, int, list[bytes]]]:
        """(layout, index of first chunk, decrypted chunks) for the chunks overlapping
        [start, end); BlobNotFound if there is no such blob."""

    @abstractmethod
    async def _layout(self, blob_id: str) -> Layout:
        """The blob's layout, from its header and length (not authenticated)."""

    async def open_range(
        self, blob_id: str, data_key: bytes, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the decrypted plaintext of bytes [start, end) (``end`` exclusive and
        clamped to the size; None means to the end), in pieces of at most one chunk.

        Only the chunks overlapping the range are read, each authenticated before
        any of its bytes are yielded. Being an async generator, errors surface on the
        first iteration: BlobNotFound, BlobCorrupted (tampered blob or wrong key),
        BlobStoreUnavailable (an object store did not answer), ValueError (negative
        start, or end < start)."""
        async with aclosing(self.open_hashed_range(blob_id, data_key, start, end, hashed=False)) as pieces:
            async for piece in pieces:
                yield piece.data

    async def open_hashed_range(
        self, blob_id: str, data_key: bytes, start: int = 0, end: int | None = None, hashed: bool = True
    ) -> AsyncGenerator[HashedPiece]:
        """As ``open_range``, each piece with the SHA-256 of the range up to its end if
        ``hashed`` (for a receipt of exactly the bytes sent). The hashing runs in a worker
        thread, a batch (about 1 MiB) at a time, not on the event loop."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range [{start}, {end})")
        running = hashlib.sha256() if hashed else None
        # aclosing: if our consumer stops early, the inner generator (which holds
        # the file or the connection) is closed now rather than when collected.
        async with aclosing(self._batches(blob_id, data_key, start, end)) as batches:
            async for lay, first, plain in batches:
                cs = lay.chunk_size
                stop = lay.size if end is None else min(end, lay.size)
                cut = []
                for i, pt in enumerate(plain, first):
                    lo, hi = max(0, start - i * cs), min(len(pt), stop - i * cs)
                    cut.append(pt if lo == 0 and hi == len(pt) else pt[lo:hi])
                if running is None:
                    for data in cut:
                        yield HashedPiece(data, None)
                else:
                    for piece in await anyio.to_thread.run_sync(_hashed, running, cut):
                        yield piece

    async def sha256(self, blob_id: str, data_key: bytes, start: int, end: int) -> str:
        """The SHA-256 (hex) of the plaintext bytes [start, end), each chunk authenticated."""
        digest = hashlib.sha256()
        async with aclosing(self.open_hashed_range(blob_id, data_key, start, end)) as pieces:
            async for piece in pieces:
                digest = piece.sha256
        return digest.hexdigest()

    async def verify(self, blob_id: str, data_key: bytes) -> StoredBlob:
        """Decrypt the whole blob and recompute its commitment (for audits)."""
        digest: Digest | None = None
        async with aclosing(self._batches(blob_id, data_key, 0, None)) as batches:
            async for lay, _, plain in batches:
                if digest is None:
                    digest = Digest(lay.chunk_size)
                await anyio.to_thread.run_sync(_absorb, digest, plain)
        if digest is None:  # empty blob: no chunk was read, so ask the header
            digest = Digest((await self._layout(blob_id)).chunk_size)
        return digest.result(blob_id)

    async def size(self, blob_id: str) -> int:
        """Plaintext size, from the header and the blob's length (not authenticated)."""
        return (await self._layout(blob_id)).size


def _absorb(digest: Digest, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(memoryview(chunk))  # a view, so leaf slicing does not copy


class FileBlobStore(BlobStore):
    """Blobs as files under ``root``, named by ``blob_name`` (``root/ab/cd/<id>.blob``):
    the embedded default."""

    def __init__(self, root: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        super().__init__(chunk_size)
        self.root = Path(root)

    def _path(self, blob_id: str) -> Path:
        return self.root / blob_name(blob_id)

    def describe(self) -> str:
        return str(self.root)

    async def exists(self, blob_id: str) -> bool:
        return self._path(blob_id).is_file()

    async def write(
        self,
        blob_id: str,
        data_key: bytes,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
    ) -> StoredBlob:
        """See ``BlobStore.write``. The file appears by temp file in the same
        directory, fsync and ``os.replace``; on failure the temp file is removed. The
        next batch is received while the previous one is hashed, encrypted and
        written; memory use is about 3 MiB (two plaintext batches and one of
        ciphertext) whatever the size."""
        return await write_blob(self._path(blob_id), blob_id, data_key, self.chunk_size, chunks, max_bytes)

    def _batches(
        self, blob_id: str, data_key: bytes, start: int, end: int | None
    ) -> AsyncGenerator[tuple[Layout, int, list[bytes]]]:
        return read_batches(self._path(blob_id), blob_id, data_key, start, end)

    async def _layout(self, blob_id: str) -> Layout:
        return await blob_layout(self._path(blob_id), blob_id)

    async def delete(self, blob_id: str) -> bool:
        path = self._path(blob_id)
        try:
            await anyio.to_thread.run_sync(os.unlink, path)
        except FileNotFoundError:
            return False
        await anyio.to_thread.run_sync(fsync_dir, path.parent)
        return True
