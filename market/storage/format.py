"""The blob file format (version 1): chunks sealed one by one with AES-256-GCM, and the
content commitment computed alongside.

Content is cut into fixed-size plaintext chunks, and every chunk is sealed on its
own, so that any byte range can later be served by decrypting only the chunks it
overlaps. All integers are big-endian.

    header, 20 bytes
      0   4  magic  b"DEMB"
      4   1  format version = 1
      5   3  reserved, zero
      8   4  chunk size C: plaintext bytes per chunk (u32)
     12   8  nonce prefix: random per blob
    records, one per chunk i = 0 .. n-1
      ciphertext of chunk i (C bytes; the last chunk 1..C bytes) || GCM tag (16 bytes)

    nonce(i) = nonce prefix || u32(i)
    AAD(i)   = header (20 bytes) || u32(i) || u8(1 if i == n-1 else 0) || blob id (UTF-8)

Empty content is stored as a single sealed empty chunk, so every blob has n >= 1
and a chunk flagged "last". The plaintext size is not stored: it follows from the
file length (every record but the last is exactly C + 16 bytes). That is safe
because the AAD makes every chunk authenticate only at its own index, in its own
blob, under its own header, and with the correct "last" flag: reordered or spliced
chunks fail; truncation (or extension) makes the new final record fail, because it
was sealed with the wrong "last" flag. A range read detects this as soon as it
touches an affected chunk; a full read always does. Nonces never repeat under a
data key as long as the 64-bit random prefixes of that asset's blobs do not
collide (birthday bound ~2^32 blobs per asset) and a blob has at most 2^32 chunks.

The commitment (``StoredBlob``) is the SHA-256 of the plaintext and the RFC 9162
Merkle root over its chunks (``ledger.merkle.MerkleBuilder``).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.merkle import MerkleBuilder
from market.storage.errors import BlobCorrupted, StorageError
from market.storage.files import pread_exact, write_all
from market.storage.keys import KEY_SIZE

__all__ = [
    "BATCH_BYTES",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "TAG_SIZE",
    "Digest",
    "Layout",
    "Sealer",
    "StoredBlob",
    "data_cipher",
    "chunk_batches",
    "chunks_span",
    "decrypt_chunks",
    "open_chunks",
    "parse_layout",
    "read_layout",
]

MAGIC = b"DEMB"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sB3xI8s")
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 65536
MAX_CHUNK_SIZE = 1 << 24
MAX_CHUNKS = 1 << 32  # the nonce counter is 32 bits
BATCH_BYTES = 1 << 20  # plaintext handled per worker-thread hop
WRITEBACK_BYTES = 8 << 20  # written bytes between two writeback hints

_LINUX_FADVISE = sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Commitment to a stored blob's plaintext.

    ``merkle_root`` is the RFC 9162 root over consecutive ``chunk_size`` plaintext
    chunks (SHA-256 of the empty string for empty content)."""

    blob_id: str
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int


def data_cipher(data_key: bytes) -> AESGCM:
    """The AES-256-GCM cipher of a data key; ValueError unless it is 32 bytes."""
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"data key must be {KEY_SIZE} bytes")
    return AESGCM(bytes(data_key))


def _aad(header: bytes, index: int, last: bool, blob_id: bytes) -> bytes:
    return b"".join((header, struct.pack(">IB", index, last), blob_id))


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the records of a blob file are: from its header and length."""

    header: bytes
    chunk_size: int
    nonce_prefix: bytes
    n_chunks: int
    size: int

    def record_len(self, index: int) -> int:
        if index < self.n_chunks - 1:
            return self.chunk_size + TAG_SIZE
        return self.size - (self.n_chunks - 1) * self.chunk_size + TAG_SIZE


def read_layout(fd: int) -> Layout:
    """The layout of the blob file open as ``fd``, from its header and length."""
    return parse_layout(os.pread(fd, HEADER.size, 0), os.fstat(fd).st_size)


def parse_layout(header: bytes, length: int) -> Layout:
    """Parse the header and derive the chunk count and plaintext size from the blob's
    length in bytes. Structural only: authenticity is checked when chunks are read."""
    if len(header) != HEADER.size:
        raise BlobCorrupted("blob file is shorter than its header")
    magic, version, chunk_size, prefix = HEADER.unpack(header)
    if magic != MAGIC:
        raise BlobCorrupted("not a blob file (bad magic)")
    if version != FORMAT_VERSION:
        raise BlobCorrupted(f"unsupported blob format version {version}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise BlobCorrupted(f"invalid chunk size {chunk_size}")
    body = length - HEADER.size
    record = chunk_size + TAG_SIZE
    n_chunks = max(1, -(-body // record))
    last_len = body - (n_chunks - 1) * record - TAG_SIZE
    # The writer never produces a torn tag, nor an empty last chunk after others.
    if last_len < 0 or (last_len == 0 and n_chunks > 1):
        raise BlobCorrupted("blob file is truncated")
    size = (n_chunks - 1) * chunk_size + last_len
    return Layout(header, chunk_size, prefix, n_chunks, size)


def chunk_batches(lay: Layout, start: int, end: int | None,
                  batch_bytes: int = BATCH_BYTES) -> Iterator[tuple[int, int]]:
    """The chunks overlapping the plaintext bytes [start, end) (``end`` None: to the
    end), in batches [a, b) of about ``batch_bytes``, each read and decrypted at once."""
    stop = lay.size if end is None else min(end, lay.size)
    if start >= stop:
        return
    first, last = start // lay.chunk_size, (stop - 1) // lay.chunk_size
    per_batch = max(1, batch_bytes // lay.chunk_size)
    for a in range(first, last + 1, per_batch):
        yield a, min(a + per_batch, last + 1)


def chunks_span(lay: Layout, a: int, b: int) -> tuple[int, int]:
    """Where the records of chunks [a, b) are in the blob: (offset, length)."""
    record = lay.chunk_size + TAG_SIZE
    return HEADER.size + a * record, (b - 1 - a) * record + lay.record_len(b - 1)


def open_chunks(fd: int, lay: Layout, aead: AESGCM, bid: bytes, a: int, b: int) -> list[bytes]:
    """Read and authenticate-decrypt chunks [a, b) with a single read."""
    offset, length = chunks_span(lay, a, b)
    return decrypt_chunks(pread_exact(fd, length, offset), lay, aead, bid, a, b)


def decrypt_chunks(raw: bytes, lay: Layout, aead: AESGCM, bid: bytes, a: int, b: int) -> list[bytes]:
    """Authenticate-decrypt the records of chunks [a, b), read as one span (``chunks_span``)."""
    view = memoryview(raw)
    out = []
    pos = 0
    for i in range(a, b):
        n = lay.record_len(i)
        if pos + n > len(view):
            raise BlobCorrupted("blob is shorter than its layout requires")
        nonce = lay.nonce_prefix + i.to_bytes(4, "big")
        aad = _aad(lay.header, i, i == lay.n_chunks - 1, bid)
        try:
            out.append(aead.decrypt(nonce, view[pos : pos + n], aad))
        except InvalidTag:
            raise BlobCorrupted(
                f"chunk {i} failed authentication (tampered, truncated, reordered, or wrong key)"
            ) from None
        pos += n
    return out


class Digest:
    """The content commitment, computed while streaming: SHA-256 of the plaintext
    and the Merkle tree over its ``chunk_size`` chunks."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.sha = hashlib.sha256()
        self.merkle = MerkleBuilder()
        self.size = 0

    def update(self, data: memoryview) -> None:
        """Absorb the next batch: whole chunks, except possibly the final batch."""
        self.update_sha(data)
        self.update_merkle(data)

    def update_sha(self, data: memoryview) -> None:
        self.sha.update(data)
        self.size += len(data)

    def update_merkle(self, data: memoryview) -> None:
        for k in range(0, len(data), self.chunk_size):  # empty content: no leaves
            self.merkle.append(data[k : k + self.chunk_size])

    def result(self, blob_id: str) -> StoredBlob:
        return StoredBlob(blob_id, self.sha.hexdigest(), self.size, self.merkle.root().hex(), self.chunk_size)


class Sealer:
    """Encrypts and appends batches, after the header; one batch at a time."""

    def __init__(self, aead: AESGCM, header: bytes, prefix: bytes, bid: bytes, chunk_size: int) -> None:
        self.aead, self.header, self.prefix, self.bid = aead, header, prefix, bid
        self.chunk_size = chunk_size
        self.next_index = 0
        self.written = 0  # bytes of the file written so far
        self.unflushed = 0  # where the bytes not yet sent to disk start
        per_batch = max(1, BATCH_BYTES // chunk_size)
        self.out = memoryview(bytearray(per_batch * (chunk_size + TAG_SIZE)))

    def seal(self, fd: int, data: memoryview, last: bool) -> None:
        """Encrypt and append ``data`` to the blob file ``fd`` (the header first)."""
        records = self.encrypt(data, last)
        if self.written == 0:
            write_all(fd, self.header)
            self.written = len(self.header)
        write_all(fd, records)
        self.written += len(records)
        if self.written - self.unflushed >= WRITEBACK_BYTES:
            _start_writeback(fd, self.unflushed, self.written - self.unflushed)
            self.unflushed = self.written

    def encrypt(self, data: memoryview, last: bool) -> memoryview:
        """The records of ``data`` (whole chunks, except that the final batch may end
        in a short chunk, or be empty for empty content): a view of a buffer that
        the next call overwrites."""
        cs = self.chunk_size
        n = max(1, -(-len(data) // cs))
        if self.next_index + n > MAX_CHUNKS:
            raise StorageError("blob exceeds the format's 2^32 chunk limit")
        pos = 0
        for k in range(n):
            chunk = data[k * cs : (k + 1) * cs]
            index = self.next_index + k
            record = self.out[pos : pos + len(chunk) + TAG_SIZE]
            nonce = self.prefix + index.to_bytes(4, "big")
            self.aead.encrypt_into(nonce, chunk, _aad(self.header, index, last and k == n - 1, self.bid), record)
            pos += len(record)
        self.next_index += n
        return self.out[:pos]


def _start_writeback(fd: int, offset: int, length: int) -> None:
    # Only a hint: durability comes from the writer's final fsync. On Linux, DONTNEED
    # on a range starts the writeback of its dirty pages without waiting for it;
    # it evicts only clean pages, so the dirty ones just written stay cached
    # (merely moved to the inactive list). The disk then works while later
    # batches arrive, rather than all at once in the final fsync, a serial step
    # that otherwise takes a sizeable part of a large upload; and dirty pages do
    # not pile up.
    if _LINUX_FADVISE:
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
