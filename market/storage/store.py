"""``BlobStore``: encrypted, chunked blobs of data-asset content, one file per blob.

The file format is in ``market.storage.format``, the key hierarchy in
``market.storage.keys``; this module names and shards the files and ties writing
(``market.storage.writer``) and reading (``market.storage.reader``) together.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio.to_thread

from market.storage.errors import InvalidBlobId
from market.storage.files import fsync_dir
from market.storage.format import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, StoredBlob
from market.storage.reader import HashedPiece, blob_layout, read_batches, read_hashed, verify_blob
from market.storage.writer import write_blob

__all__ = ["MAX_BLOB_ID_LEN", "BlobStore"]

MAX_BLOB_ID_LEN = 128

_BLOB_ID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_BLOB_ID_LEN}}}")


class BlobStore:
    """Encrypted blobs under ``root``, sharded as ``root/ab/cd/<blob id>.blob``
    where ``abcd`` starts the SHA-256 of the blob id.

    ``chunk_size`` applies to new blobs; existing blobs are read with the chunk size
    recorded in their own header."""

    def __init__(self, root: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        self.root = Path(root)
        self.chunk_size = chunk_size

    def _path(self, blob_id: str) -> Path:
        if (
            not isinstance(blob_id, str)
            or not _BLOB_ID_RE.fullmatch(blob_id)
            or blob_id.startswith(".")  # also keeps ids apart from our ".tmp" files
            or ".." in blob_id
        ):
            raise InvalidBlobId(f"invalid blob id {blob_id!r}")
        h = hashlib.sha256(blob_id.encode("ascii")).hexdigest()
        return self.root / h[:2] / h[2:4] / f"{blob_id}.blob"

    def exists(self, blob_id: str) -> bool:
        return self._path(blob_id).is_file()

    async def write(
        self,
        blob_id: str,
        data_key: bytes,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
    ) -> StoredBlob:
        """Encrypt the stream into blob ``blob_id`` and return its commitment.

        The blob appears atomically (temp file in the same directory, fsync,
        ``os.replace``), replacing any blob with the same id only on success. On any
        failure - ContentTooLarge (raised as soon as more than ``max_bytes`` have
        arrived), an error from ``chunks``, cancellation - the temp file is removed
        and nothing else is touched. The next batch is received while the previous
        one is hashed, encrypted and written; memory use is about 3 MiB (two
        plaintext batches and one of ciphertext) whatever the size."""
        return await write_blob(self._path(blob_id), blob_id, data_key, self.chunk_size, chunks, max_bytes)

    async def open_range(
        self, blob_id: str, data_key: bytes, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the decrypted plaintext of bytes [start, end) (``end`` exclusive and
        clamped to the size; None means to the end), in pieces of at most one chunk.

        Only the chunks overlapping the range are read, each authenticated before
        any of its bytes are yielded. Being an async generator, errors surface on the
        first iteration: BlobNotFound, BlobCorrupted (tampered file or wrong key),
        ValueError (negative start, or end < start)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range [{start}, {end})")
        # aclosing: if our consumer stops early, the inner generator (which holds
        # the fd) is closed now rather than whenever it is garbage-collected.
        async with aclosing(read_batches(self._path(blob_id), blob_id, data_key, start, end)) as batches:
            async for lay, first, plain in batches:
                cs = lay.chunk_size
                stop = lay.size if end is None else min(end, lay.size)
                for i, pt in enumerate(plain, first):
                    lo, hi = max(0, start - i * cs), min(len(pt), stop - i * cs)
                    yield pt if lo == 0 and hi == len(pt) else pt[lo:hi]

    async def open_hashed_range(
        self, blob_id: str, data_key: bytes, start: int = 0, end: int | None = None, hashed: bool = True
    ) -> AsyncIterator[HashedPiece]:
        """As ``open_range``, each piece with the SHA-256 of the range up to its end if
        ``hashed`` (for a receipt of exactly the bytes sent). Decryption and hashing run
        in a worker thread, one batch (about 1 MiB) ahead of the consumer."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid range [{start}, {end})")
        async with aclosing(read_hashed(self._path(blob_id), blob_id, data_key, start, end, hashed)) as pieces:
            async for piece in pieces:
                yield piece

    async def sha256(self, blob_id: str, data_key: bytes, start: int, end: int) -> str:
        """The SHA-256 (hex) of the plaintext bytes [start, end), each chunk authenticated."""
        digest = hashlib.sha256()
        async for piece in self.open_hashed_range(blob_id, data_key, start, end):
            digest = piece.sha256
        return digest.hexdigest()

    async def verify(self, blob_id: str, data_key: bytes) -> StoredBlob:
        """Decrypt the whole blob and recompute its commitment (for audits)."""
        return await verify_blob(self._path(blob_id), blob_id, data_key)

    async def size(self, blob_id: str) -> int:
        """Plaintext size, from the header and file length (not authenticated)."""
        return (await blob_layout(self._path(blob_id), blob_id)).size

    async def delete(self, blob_id: str) -> bool:
        """Remove the blob; returns False if it did not exist."""
        path = self._path(blob_id)
        try:
            await anyio.to_thread.run_sync(os.unlink, path)
        except FileNotFoundError:
            return False
        await anyio.to_thread.run_sync(fsync_dir, path.parent)
        return True
