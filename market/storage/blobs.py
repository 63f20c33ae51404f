"""Encrypted, chunked blob store for data-asset content.

Content arrives as a stream of arbitrarily sized pieces, is re-cut into fixed-size
plaintext chunks, and every chunk is sealed on its own with AES-256-GCM, so that any
byte range can later be served by decrypting only the chunks it overlaps. Memory use
is bounded by a couple of batches (about 3 MiB: two plaintext batches and one
ciphertext), independent of the blob size.

Key hierarchy
-------------
Each asset has its own 32-byte data key. Only the *wrapped* data key is persisted
(by the caller, e.g. next to the asset row); it is wrapped by the master key with
AES-256-GCM rather than RFC 3394 key wrap, because GCM lets us bind the asset id as
associated data: a wrapped key copied onto another asset does not unwrap.

    wrapped = 0x01 (version) || nonce (12 random bytes) || ciphertext (32) || tag (16)
    AAD     = asset id, UTF-8

The master key is 32 raw bytes in ``<data dir>/keys/master.key`` (mode 0600).

Blob file format (version 1)
----------------------------
All integers are big-endian.

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
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import struct
import sys
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.merkle import MerkleBuilder

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "ContentTooLarge",
    "InvalidBlobId",
    "KeyFileError",
    "KeyUnwrapError",
    "MasterKey",
    "StorageError",
    "StoredBlob",
]

MAGIC = b"DEMB"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sB3xI8s")
TAG_SIZE = 16
KEY_SIZE = 32
DEFAULT_CHUNK_SIZE = 65536
MAX_CHUNK_SIZE = 1 << 24
MAX_CHUNKS = 1 << 32  # the nonce counter is 32 bits
BATCH_BYTES = 1 << 20  # plaintext handled per worker-thread hop
WRITEBACK_BYTES = 8 << 20  # written bytes between two writeback hints
MAX_BLOB_ID_LEN = 128

_BLOB_ID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_BLOB_ID_LEN}}}")
_WRAP_VERSION = 1
_WRAPPED_LEN = 1 + 12 + KEY_SIZE + TAG_SIZE


class StorageError(Exception):
    """Base class of all errors raised by this module."""


class ContentTooLarge(StorageError):
    """The uploaded stream exceeded ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"content exceeds the limit of {limit} bytes")
        self.limit = limit


class BlobNotFound(StorageError):
    """No blob is stored under this id."""


class BlobCorrupted(StorageError):
    """The blob file is malformed or failed authentication (tampering, truncation,
    or a wrong data key: GCM cannot tell these apart)."""


class KeyFileError(StorageError):
    """The master key file is unreadable or malformed."""


class KeyUnwrapError(StorageError):
    """A wrapped data key is malformed or does not authenticate for the asset id."""


class InvalidBlobId(StorageError, ValueError):
    """The blob id is not of the allowed shape."""


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


# --------------------------------------------------------------------------- keys


class MasterKey:
    """The key that wraps per-asset data keys. Never persisted anywhere but its file."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"master key must be {KEY_SIZE} bytes")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "MasterKey(<redacted>)"

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Load the key at ``path``, creating a fresh random one (mode 0600) if absent.

        Creation writes a private temp file (O_CREAT|O_EXCL, mode 0o600, so it is
        never readable by others, even briefly) and hard-links it into place, which
        fails if the file exists: concurrent first starts all end up using whichever
        key was linked first, and a half-written key file is never visible.
        Raises KeyFileError if the file exists but is not exactly 32 bytes."""
        path = Path(path)
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                try:
                    _write_all(fd, AESGCM.generate_key(bit_length=256))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # lost a creation race; use the winner's key
            finally:
                _unlink_quiet(tmp)
            _fsync_dir(path.parent)
            return cls._load(path)
        except OSError as exc:
            raise KeyFileError(f"cannot create master key file {path}: {exc}") from exc

    @classmethod
    def _load(cls, path: Path) -> MasterKey:
        try:
            with open(path, "rb") as fh:
                data = fh.read(KEY_SIZE + 1)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeyFileError(f"cannot read master key file {path}: {exc}") from exc
        if len(data) != KEY_SIZE:
            raise KeyFileError(
                f"master key file {path} must hold exactly {KEY_SIZE} bytes, "
                f"found {len(data)}{' or more' if len(data) > KEY_SIZE else ''}"
            )
        return cls(data)

    def wrap(self, asset_id: str, data_key: bytes) -> bytes:
        """Wrap ``data_key`` so that it only unwraps for ``asset_id``."""
        if len(data_key) != KEY_SIZE:
            raise ValueError(f"data key must be {KEY_SIZE} bytes")
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, bytes(data_key), asset_id.encode("utf-8"))
        return bytes([_WRAP_VERSION]) + nonce + sealed

    def new_data_key(self, asset_id: str) -> tuple[bytes, bytes]:
        """Return ``(data_key, wrapped)``: a fresh 32-byte key and its wrapped form."""
        data_key = AESGCM.generate_key(bit_length=256)
        return data_key, self.wrap(asset_id, data_key)

    def unwrap(self, asset_id: str, wrapped: bytes) -> bytes:
        """Recover a data key; raises KeyUnwrapError on tampering, a different asset
        id, or a different master key."""
        wrapped = bytes(wrapped)
        if len(wrapped) != _WRAPPED_LEN or wrapped[0] != _WRAP_VERSION:
            raise KeyUnwrapError("malformed wrapped data key")
        try:
            return self._aead.decrypt(wrapped[1:13], wrapped[13:], asset_id.encode("utf-8"))
        except InvalidTag:
            raise KeyUnwrapError(f"wrapped data key does not authenticate for asset {asset_id!r}") from None


# -------------------------------------------------------------------- file helpers


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]  # rare: short read (signal, or the file shrank underneath us)
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise BlobCorrupted("blob file is shorter than its layout requires")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    # Makes a rename/link/mkdir inside ``path`` survive a crash.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: Path) -> None:
    if path.is_dir():
        return
    _makedirs(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    _fsync_dir(path.parent)


class _SharedFd:
    """A file descriptor used by worker threads on behalf of one coroutine.

    asyncio cancellation does not wait for a thread started by ``to_thread.run_sync``,
    so the coroutine's cleanup can run while a worker still uses the fd. Closing the
    fd right then could make that worker write into (or read from) whatever file
    reuses the number next; so ``close`` is deferred to the worker if one is busy.
    ``on_close`` runs once, after the fd is closed (used to remove a temp file)."""

    def __init__(self, fd: int, on_close: Callable[[], None] | None = None) -> None:
        self._fd = fd
        self._on_close = on_close
        self._state = threading.Lock()
        self._busy = False
        self._closed = False

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(fd, *args)``; meant to be called in a worker thread."""
        with self._state:
            if self._closed:
                raise StorageError("file was closed")
            self._busy = True
        try:
            return fn(self._fd, *args)
        finally:
            with self._state:
                self._busy = False
                finish = self._closed
            if finish:
                self._finish()

    def close(self) -> None:
        """Idempotent and non-blocking; safe to call from the event loop."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            finish = not self._busy
        if finish:
            self._finish()

    def _finish(self) -> None:
        try:
            os.close(self._fd)
        finally:
            if self._on_close is not None:
                self._on_close()


# -------------------------------------------------------------------- blob format


def _aead(data_key: bytes) -> AESGCM:
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"data key must be {KEY_SIZE} bytes")
    return AESGCM(bytes(data_key))


def _aad(header: bytes, index: int, last: bool, blob_id: bytes) -> bytes:
    return b"".join((header, struct.pack(">IB", index, last), blob_id))


@dataclass(frozen=True, slots=True)
class _Layout:
    header: bytes
    chunk_size: int
    nonce_prefix: bytes
    n_chunks: int
    size: int

    def record_len(self, index: int) -> int:
        if index < self.n_chunks - 1:
            return self.chunk_size + TAG_SIZE
        return self.size - (self.n_chunks - 1) * self.chunk_size + TAG_SIZE


def _read_layout(fd: int) -> _Layout:
    """Parse the header and derive the chunk count and plaintext size from the
    file length. Structural only: authenticity is checked when chunks are read."""
    header = os.pread(fd, HEADER.size, 0)
    if len(header) != HEADER.size:
        raise BlobCorrupted("blob file is shorter than its header")
    magic, version, chunk_size, prefix = HEADER.unpack(header)
    if magic != MAGIC:
        raise BlobCorrupted("not a blob file (bad magic)")
    if version != FORMAT_VERSION:
        raise BlobCorrupted(f"unsupported blob format version {version}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise BlobCorrupted(f"invalid chunk size {chunk_size}")
    body = os.fstat(fd).st_size - HEADER.size
    record = chunk_size + TAG_SIZE
    n_chunks = max(1, -(-body // record))
    last_len = body - (n_chunks - 1) * record - TAG_SIZE
    # The writer never produces a torn tag, nor an empty last chunk after others.
    if last_len < 0 or (last_len == 0 and n_chunks > 1):
        raise BlobCorrupted("blob file is truncated")
    size = (n_chunks - 1) * chunk_size + last_len
    return _Layout(header, chunk_size, prefix, n_chunks, size)


def _open_chunks(fd: int, lay: _Layout, aead: AESGCM, bid: bytes, a: int, b: int) -> list[bytes]:
    """Read and authenticate-decrypt chunks [a, b) with a single read."""
    record = lay.chunk_size + TAG_SIZE
    length = (b - 1 - a) * record + lay.record_len(b - 1)
    raw = memoryview(_pread_exact(fd, length, HEADER.size + a * record))
    out = []
    pos = 0
    for i in range(a, b):
        n = lay.record_len(i)
        nonce = lay.nonce_prefix + i.to_bytes(4, "big")
        aad = _aad(lay.header, i, i == lay.n_chunks - 1, bid)
        try:
            out.append(aead.decrypt(nonce, raw[pos : pos + n], aad))
        except InvalidTag:
            raise BlobCorrupted(
                f"chunk {i} failed authentication (tampered, truncated, reordered, or wrong key)"
            ) from None
        pos += n
    return out


class _Digest:
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


class _Sealer:
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
        """Encrypt and append ``data`` (whole chunks, except that the final batch
        may end in a short chunk, or be empty for empty content)."""
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
        if self.written == 0:
            _write_all(fd, self.header)
            self.written = len(self.header)
        _write_all(fd, self.out[:pos])
        self.written += pos
        if self.written - self.unflushed >= WRITEBACK_BYTES:
            _start_writeback(fd, self.unflushed, self.written - self.unflushed)
            self.unflushed = self.written


def _start_writeback(fd: int, offset: int, length: int) -> None:
    # Only a hint: durability comes from the fsync in _commit. On Linux, DONTNEED
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


_LINUX_FADVISE = sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")


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

    def __init__(self, file: _SharedFd, sealer: _Sealer, digest: _Digest, depth: int) -> None:
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


def _absorb(digest: _Digest, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(memoryview(chunk))  # a view, so leaf slicing does not copy


def _commit(fd: int, tmp: Path, final: Path) -> None:
    os.fsync(fd)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


# -------------------------------------------------------------------------- store


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
        path = self._path(blob_id)
        aead = _aead(data_key)
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        bid = blob_id.encode("ascii")
        prefix = secrets.token_bytes(8)
        header = HEADER.pack(MAGIC, FORMAT_VERSION, self.chunk_size, prefix)
        sealer = _Sealer(aead, header, prefix, bid, self.chunk_size)
        digest = _Digest(self.chunk_size)
        batch_len = len(sealer.out) // (self.chunk_size + TAG_SIZE) * self.chunk_size
        # Filled in turn: one receives while the pipeline processes the other.
        batch = memoryview(bytearray(batch_len))
        spare = memoryview(bytearray(batch_len))

        await anyio.to_thread.run_sync(_makedirs, path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        # Opened on the loop (a quick metadata call) rather than in a thread so that
        # a cancellation can never strand an fd that a worker opened.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        file = _SharedFd(fd, on_close=partial(_unlink_quiet, tmp))
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
        async with aclosing(self._batches(blob_id, data_key, start, end)) as batches:
            async for lay, first, plain in batches:
                cs = lay.chunk_size
                stop = lay.size if end is None else min(end, lay.size)
                for i, pt in enumerate(plain, first):
                    lo, hi = max(0, start - i * cs), min(len(pt), stop - i * cs)
                    yield pt if lo == 0 and hi == len(pt) else pt[lo:hi]

    async def verify(self, blob_id: str, data_key: bytes) -> StoredBlob:
        """Decrypt the whole blob and recompute its commitment (for audits)."""
        digest: _Digest | None = None
        async with aclosing(self._batches(blob_id, data_key, 0, None)) as batches:
            async for lay, _, plain in batches:
                if digest is None:
                    digest = _Digest(lay.chunk_size)
                await anyio.to_thread.run_sync(_absorb, digest, plain)
        if digest is None:  # empty blob: no chunk was read, so ask the header
            digest = _Digest((await self._layout(blob_id)).chunk_size)
        return digest.result(blob_id)

    async def _batches(
        self, blob_id: str, data_key: bytes, start: int, end: int | None
    ) -> AsyncIterator[tuple[_Layout, int, list[bytes]]]:
        """Yield (layout, index of first chunk, decrypted chunks) for the chunks
        overlapping [start, end), about 1 MiB per worker-thread hop."""
        path = self._path(blob_id)
        aead = _aead(data_key)
        bid = blob_id.encode("ascii")
        file = self._open_existing(path, blob_id)
        try:
            lay: _Layout = await anyio.to_thread.run_sync(file.call, _read_layout)
            stop = lay.size if end is None else min(end, lay.size)
            if start >= stop:
                return
            first, last = start // lay.chunk_size, (stop - 1) // lay.chunk_size
            per_batch = max(1, BATCH_BYTES // lay.chunk_size)
            for a in range(first, last + 1, per_batch):
                b = min(a + per_batch, last + 1)
                yield lay, a, await anyio.to_thread.run_sync(file.call, _open_chunks, lay, aead, bid, a, b)
        finally:
            file.close()

    async def size(self, blob_id: str) -> int:
        """Plaintext size, from the header and file length (not authenticated)."""
        return (await self._layout(blob_id)).size

    async def _layout(self, blob_id: str) -> _Layout:
        file = self._open_existing(self._path(blob_id), blob_id)
        try:
            return await anyio.to_thread.run_sync(file.call, _read_layout)
        finally:
            file.close()

    async def delete(self, blob_id: str) -> bool:
        """Remove the blob; returns False if it did not exist."""
        path = self._path(blob_id)
        try:
            await anyio.to_thread.run_sync(os.unlink, path)
        except FileNotFoundError:
            return False
        await anyio.to_thread.run_sync(_fsync_dir, path.parent)
        return True

    @staticmethod
    def _open_existing(path: Path, blob_id: str) -> _SharedFd:
        # Opened on the loop for the same reason as in write().
        try:
            return _SharedFd(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {blob_id!r}") from None
