"""Tests for the encrypted blob store (market.storage: store, format, writer, reader)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
import threading
from contextlib import aclosing
from pathlib import Path

import psutil
import pytest

from market.storage import (
    BlobCorrupted,
    BlobNotFound,
    BlobStore,
    ContentTooLarge,
    FileBlobStore,
    InvalidBlobId,
    StorageError,
    StoredBlob,
)
from market.storage.format import BATCH_BYTES, HEADER, TAG_SIZE, Sealer
from tests.ledger.ledgertestutil import ref_mth

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
ODD_PIECES = [1, 7, 1000, 4097, 65537, 3, 300_000, 65535]


# ------------------------------------------------------------------ helpers


def ref_commitment(data: bytes, chunk_size: int) -> tuple[str, str]:
    leaves = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    return hashlib.sha256(data).hexdigest(), ref_mth(leaves).hex()


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest() * 2048  # 64 KiB, varied
    return (block * (size // len(block) + 1))[:size]


async def pieces(data: bytes, sizes: list[int] = ODD_PIECES):
    view, i = memoryview(data), 0
    while view:
        n = sizes[i % len(sizes)]
        yield view[:n]
        view, i = view[n:], i + 1
        await asyncio.sleep(0)


async def read_all(store: BlobStore, blob_id: str, key: bytes = KEY, start: int = 0, end: int | None = None) -> bytes:
    out = bytearray()
    async for piece in store.open_range(blob_id, key, start, end):
        assert isinstance(piece, bytes)
        out += piece
    return bytes(out)


def blob_file(root: Path, blob_id: str) -> Path:
    (path,) = [p for p in root.rglob(f"{blob_id}.blob")]
    return path


def all_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------- round trips


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "chunk_size, size",
    [(65536, n) for n in (0, 1, 65535, 65536, 65537, 5 * 65536 + 12345)]
    + [(4096, n) for n in (4095, 4096, 4097, (1 << 21) - 1, 1 << 21, (1 << 21) + 1, 3_000_001)]
    + [(1000, 0), (1000, 1), (1000, 9_999), (1000, 10_000), (1000, 10_001)],
)
async def test_round_trip_and_commitment(tmp_path: Path, chunk_size: int, size: int) -> None:
    store = FileBlobStore(tmp_path, chunk_size=chunk_size)
    data = payload(size, seed=size)
    stored = await store.write("ast_abc123.r2", KEY, pieces(data), max_bytes=size)
    sha, root = ref_commitment(data, chunk_size)
    assert stored == StoredBlob("ast_abc123.r2", sha, size, root, chunk_size)
    assert await read_all(store, "ast_abc123.r2") == data
    assert await store.size("ast_abc123.r2") == size
    assert await store.verify("ast_abc123.r2", KEY) == stored
    assert await store.exists("ast_abc123.r2")
    # Stored encrypted: the plaintext does not appear in the file.
    raw = blob_file(tmp_path, "ast_abc123.r2").read_bytes()
    assert len(raw) == HEADER.size + size + TAG_SIZE * max(1, -(-size // chunk_size))
    if size >= 64:
        assert data[:64] not in raw
    # Only the finished blob remains, and it is private.
    assert all_files(tmp_path) == ["ast_abc123.r2.blob"]
    assert stat.S_IMODE(blob_file(tmp_path, "ast_abc123.r2").stat().st_mode) == 0o600


@pytest.mark.asyncio
async def test_blob_is_read_with_its_own_chunk_size(tmp_path: Path) -> None:
    data = payload(50_000)
    await FileBlobStore(tmp_path, chunk_size=1000).write("b1", KEY, pieces(data), 10**6)
    assert await read_all(FileBlobStore(tmp_path), "b1", start=999, end=3001) == data[999:3001]


@pytest.mark.asyncio
async def test_input_types_and_empty_pieces(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=1000)

    async def mixed():
        yield b""
        yield b"abc"
        yield bytearray(b"def")
        yield memoryview(b"ghi")
        yield b""

    stored = await store.write("mixed", KEY, mixed(), 9)
    assert stored.size == 9 and await read_all(store, "mixed") == b"abcdefghi"


@pytest.mark.asyncio
async def test_concurrent_writes(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    datas = [payload(1_500_000 + i, seed=i) for i in range(3)]
    results = await asyncio.gather(*(store.write(f"c{i}", KEY, pieces(d), 10**7) for i, d in enumerate(datas)))
    for i, (d, r) in enumerate(zip(datas, results, strict=False)):
        assert r.sha256 == hashlib.sha256(d).hexdigest()
        assert await read_all(store, f"c{i}") == d


# ------------------------------------------------------------------ ranges


@pytest.mark.asyncio
async def test_range_reads_at_boundaries(tmp_path: Path) -> None:
    cs = 4096
    store = FileBlobStore(tmp_path, chunk_size=cs)
    size = 2 * (1 << 20) + 3 * cs + 17  # crosses the 1 MiB read batches
    data = payload(size, seed=7)
    await store.write("r", KEY, pieces(data), size)
    points = {
        0,
        1,
        cs - 1,
        cs,
        cs + 1,
        2 * cs,
        256 * cs - 1,
        256 * cs,
        256 * cs + 1,
        512 * cs + 5,
        size - cs,
        size - 1,
        size,
    }
    for start in sorted(points):
        for end in sorted(points | {size + 1000}):
            if end >= start:
                assert await read_all(store, "r", start=start, end=end) == data[start:end], (start, end)
    assert await read_all(store, "r", start=5) == data[5:]
    assert await read_all(store, "r", start=size + 10) == b""
    with pytest.raises(ValueError):
        await read_all(store, "r", start=-1)
    with pytest.raises(ValueError):
        await read_all(store, "r", start=10, end=9)


@pytest.mark.asyncio
async def test_range_read_touches_only_needed_chunks(tmp_path: Path) -> None:
    cs = 1000
    store = FileBlobStore(tmp_path, chunk_size=cs)
    data = payload(10 * cs)
    await store.write("r", KEY, pieces(data), len(data))
    path = blob_file(tmp_path, "r")
    raw = bytearray(path.read_bytes())
    raw[HEADER.size + 7 * (cs + TAG_SIZE) + 3] ^= 1  # damage chunk 7 only
    path.write_bytes(raw)
    assert await read_all(store, "r", start=1500, end=6999) == data[1500:6999]
    with pytest.raises(BlobCorrupted):
        await read_all(store, "r", start=6999, end=7001)


@pytest.mark.asyncio
async def test_abandoned_range_read_releases_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=1000)
    await store.write("r", KEY, pieces(payload(5000)), 5000)
    proc = psutil.Process()
    before = proc.num_fds()
    async with aclosing(store.open_range("r", KEY)) as it:
        async for _ in it:
            break
    assert proc.num_fds() == before


@pytest.mark.asyncio
async def test_hashed_range_reads_the_same_pieces_each_with_the_digest_so_far(tmp_path: Path) -> None:
    cs = 4096
    store = FileBlobStore(tmp_path, chunk_size=cs)
    size = 2 * (1 << 20) + 3 * cs + 17  # several read batches
    data = payload(size, seed=9)
    await store.write("h", KEY, pieces(data), size)
    for start, end in [(0, size), (1, size - 1), (cs - 1, 256 * cs + 1), (256 * cs, 512 * cs + 5), (size - 1, size)]:
        plain = [p async for p in store.open_range("h", KEY, start, end)]
        hashed = [p async for p in store.open_hashed_range("h", KEY, start, end)]
        assert [p.data for p in hashed] == plain, (start, end)
        at = start
        for piece in hashed:
            at += len(piece.data)
            assert piece.sha256.hexdigest() == hashlib.sha256(data[start:at]).hexdigest(), (start, at)
        assert at == end
        assert await store.sha256("h", KEY, start, end) == hashlib.sha256(data[start:end]).hexdigest()
    unhashed = [p async for p in store.open_hashed_range("h", KEY, 0, size, hashed=False)]
    assert b"".join(p.data for p in unhashed) == data and all(p.sha256 is None for p in unhashed)
    assert [p async for p in store.open_hashed_range("h", KEY, size + 5, None)] == []
    with pytest.raises(ValueError):
        await store.sha256("h", KEY, 10, 9)


@pytest.mark.asyncio
async def test_hashed_range_authenticates_every_chunk_it_yields(tmp_path: Path) -> None:
    """A damaged chunk in the second batch stops the stream before any of its bytes,
    after every piece of the batches before it."""
    cs = 1024
    store = FileBlobStore(tmp_path, chunk_size=cs)
    size = 3 * (BATCH_BYTES // cs) * cs
    data = payload(size, seed=3)
    await store.write("d", KEY, pieces(data), size)
    path = blob_file(tmp_path, "d")
    raw = bytearray(path.read_bytes())
    damaged = BATCH_BYTES // cs + 5  # in the second batch
    raw[HEADER.size + damaged * (cs + TAG_SIZE) + 3] ^= 1
    path.write_bytes(raw)
    got = bytearray()
    with pytest.raises(BlobCorrupted):
        async for piece in store.open_hashed_range("d", KEY):
            got += piece.data
    assert bytes(got) == data[:BATCH_BYTES]
    assert await store.sha256("d", KEY, 0, BATCH_BYTES) == hashlib.sha256(data[:BATCH_BYTES]).hexdigest()
    with pytest.raises(BlobCorrupted):
        await store.sha256("d", KEY, 0, size)


@pytest.mark.asyncio
async def test_abandoned_hashed_read_releases_its_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=1000)
    size = 3 * BATCH_BYTES
    await store.write("a", KEY, pieces(payload(size)), size)
    proc = psutil.Process()
    before = proc.num_fds()
    async with aclosing(store.open_hashed_range("a", KEY)) as it:
        async for _ in it:
            break
    for _ in range(100):  # a read already running closes the file when it ends
        if proc.num_fds() == before:
            break
        await asyncio.sleep(0.01)
    assert proc.num_fds() == before


# --------------------------------------------------------- failure cleanup


@pytest.mark.asyncio
async def test_too_large_keeps_previous_blobs_and_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=1000)
    old = payload(3000, seed=1)
    await store.write("ast_a.r1", KEY, pieces(old), 3000)
    pulled = 0

    async def source():
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1000

    for blob_id in ("ast_b.r1", "ast_a.r1"):  # a new id, and overwriting an existing one
        pulled = 0
        with pytest.raises(ContentTooLarge) as info:
            await store.write(blob_id, KEY, source(), max_bytes=5500)
        assert info.value.limit == 5500 and isinstance(info.value, StorageError)
        assert pulled == 6  # raised on the piece that crossed the limit
    assert await read_all(store, "ast_a.r1") == old
    assert not await store.exists("ast_b.r1")
    assert all_files(tmp_path) == ["ast_a.r1.blob"]
    # The limit itself is allowed.
    assert (await store.write("ast_c.r1", KEY, pieces(b"y" * 5500), 5500)).size == 5500


@pytest.mark.asyncio
async def test_source_error_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    await store.write("keep", KEY, pieces(b"keep me"), 100)

    async def failing():
        for _ in range(40):  # a few MiB: several batches are already on disk
            yield os.urandom(100_000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write("lost", KEY, failing(), 10**9)
    assert not await store.exists("lost")
    assert all_files(tmp_path) == ["keep.blob"]
    assert await read_all(store, "keep") == b"keep me"


async def wait_until_no_files(root: Path) -> None:
    """Poll (bounded) until the cleanup a worker thread finishes has removed every file."""
    for _ in range(1000):
        if not all_files(root):
            return
        await asyncio.sleep(0.01)
    assert all_files(root) == []


@pytest.mark.asyncio
async def test_cancellation_leaves_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    started = asyncio.Event()

    async def endless():
        while True:
            yield os.urandom(200_000)
            started.set()

    task = asyncio.create_task(store.write("cancelled", KEY, endless(), 10**12))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_no_files(tmp_path)


@pytest.mark.asyncio
async def test_cancellation_while_a_worker_seals_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    sealing, release = threading.Event(), threading.Event()
    seal = Sealer.seal

    def held_seal(self, fd, data, last):
        sealing.set()
        assert release.wait(10), "the test did not release the seal"
        seal(self, fd, data, last)

    monkeypatch.setattr(Sealer, "seal", held_seal)

    async def endless():
        while True:
            yield os.urandom(200_000)

    task = asyncio.create_task(store.write("cancelled", KEY, endless(), 10**12))
    assert await asyncio.to_thread(sealing.wait, 10), "no batch was sealed"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled write did not wait for the worker, which still holds the temp file ...
    assert len(all_files(tmp_path)) == 1 and all_files(tmp_path)[0].endswith(".tmp")
    release.set()
    # ... and removes it once it is done with it.
    await wait_until_no_files(tmp_path)


@pytest.mark.asyncio
async def test_source_error_while_a_batch_is_processed_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    await store.write("keep", KEY, pieces(b"keep me"), 100)
    sealing, failed = threading.Event(), threading.Event()
    seal = Sealer.seal

    def held_seal(self, fd, data, last):
        seal(self, fd, data, last)
        sealing.set()
        assert failed.wait(10), "the source did not fail"  # still holds the temp file when it does

    monkeypatch.setattr(Sealer, "seal", held_seal)

    async def failing():
        yield b"x" * (BATCH_BYTES + 1)  # a full batch goes to the pipeline
        assert await asyncio.to_thread(sealing.wait, 10), "the first batch was not sealed while receiving"
        failed.set()
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write("lost", KEY, failing(), 10**9)
    assert all_files(tmp_path) == ["keep.blob"]  # removed before the error surfaced


@pytest.mark.asyncio
async def test_write_error_surfaces_unwrapped_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    old = payload(10_000, seed=3)
    await store.write("ast_a.r1", KEY, pieces(old), 10**6)

    def full_disk(self, fd, data, last):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Sealer, "seal", full_disk)

    async def source():
        for _ in range(10):
            yield b"y" * 300_000

    with pytest.raises(OSError) as info:
        await store.write("ast_a.r1", KEY, source(), 10**9)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert all_files(tmp_path) == ["ast_a.r1.blob"]
    assert await read_all(store, "ast_a.r1") == old


@pytest.mark.asyncio
async def test_receiving_overlaps_processing_and_stays_bounded(tmp_path: Path, monkeypatch) -> None:
    store = FileBlobStore(tmp_path, chunk_size=4096)
    piece = 65536
    per_batch = BATCH_BYTES // piece
    asked_for_next_batch = threading.Event()  # the source delivered two whole batches
    first_sealed = threading.Event()
    seal = Sealer.seal
    first = True

    def held_seal(self, fd, data, last):
        nonlocal first
        if first:
            first = False
            # Receiving goes on while this batch is processed ...
            assert asked_for_next_batch.wait(10), "the next batch was not received meanwhile"
            seal(self, fd, data, last)
            first_sealed.set()
        else:
            seal(self, fd, data, last)

    monkeypatch.setattr(Sealer, "seal", held_seal)
    data = payload(4 * BATCH_BYTES + 123, seed=5)

    async def source():
        for i, start in enumerate(range(0, len(data), piece)):
            if i == 2 * per_batch:
                asked_for_next_batch.set()
            elif i == 2 * per_batch + 1:
                # ... but no further than filling the other buffer: the piece after
                # two batches is asked for only once the first batch is done.
                assert first_sealed.is_set(), "more than two batches were in flight"
            yield data[start : start + piece]

    stored = await store.write("b", KEY, source(), len(data))
    monkeypatch.undo()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(store, "b") == data


# --------------------------------------------------------------- tampering


async def _tamper_setup(tmp_path: Path) -> tuple[BlobStore, Path, bytearray, int]:
    cs = 1000
    store = FileBlobStore(tmp_path, chunk_size=cs)
    await store.write("t", KEY, pieces(payload(4 * cs + 500)), 10**6)
    path = blob_file(tmp_path, "t")
    return store, path, bytearray(path.read_bytes()), cs + TAG_SIZE


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["header", "nonce", "ciphertext", "tag", "last"])
async def test_flipped_byte_detected(tmp_path: Path, where: str) -> None:
    store, path, raw, rec = await _tamper_setup(tmp_path)
    offset = {
        "header": 6,  # reserved byte: only caught because the header is in the AAD
        "nonce": 14,
        "ciphertext": HEADER.size + rec + 10,
        "tag": HEADER.size + 2 * rec - 1,
        "last": len(raw) - 20,
    }[where]
    raw[offset] ^= 0x40
    path.write_bytes(raw)
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t")
    with pytest.raises(BlobCorrupted):
        await store.verify("t", KEY)


@pytest.mark.asyncio
@pytest.mark.parametrize("cut", ["last_record", "mid_record", "torn_tag", "header_only", "half_header", "empty"])
async def test_truncation_detected(tmp_path: Path, cut: str) -> None:
    store, path, raw, rec = await _tamper_setup(tmp_path)
    keep = {
        "last_record": HEADER.size + 4 * rec,  # drop the whole short last chunk
        "mid_record": HEADER.size + 3 * rec + 200,
        "torn_tag": HEADER.size + 4 * rec + 8,
        "header_only": HEADER.size,
        "half_header": 10,
        "empty": 0,
    }[cut]
    path.write_bytes(raw[:keep])
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t")


@pytest.mark.asyncio
async def test_extension_detected(tmp_path: Path) -> None:
    store, path, raw, rec = await _tamper_setup(tmp_path)
    path.write_bytes(raw[: HEADER.size + 4 * rec] + raw[HEADER.size : HEADER.size + rec] + raw[HEADER.size + 4 * rec :])
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t")


@pytest.mark.asyncio
async def test_swapped_chunks_detected(tmp_path: Path) -> None:
    store, path, raw, rec = await _tamper_setup(tmp_path)
    c1 = raw[HEADER.size + rec : HEADER.size + 2 * rec]
    c2 = raw[HEADER.size + 2 * rec : HEADER.size + 3 * rec]
    raw[HEADER.size + rec : HEADER.size + 3 * rec] = c2 + c1
    path.write_bytes(raw)
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t")
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t", start=1000, end=1001)


@pytest.mark.asyncio
async def test_blob_moved_to_another_id_detected(tmp_path: Path) -> None:
    store, _, raw, _ = await _tamper_setup(tmp_path)
    await store.write("u", KEY, pieces(b"other"), 100)
    blob_file(tmp_path, "u").write_bytes(raw)  # same key, same layout, other id
    with pytest.raises(BlobCorrupted):
        await read_all(store, "u")


@pytest.mark.asyncio
async def test_wrong_data_key_fails(tmp_path: Path) -> None:
    store, _, _, _ = await _tamper_setup(tmp_path)
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t", key=OTHER_KEY)
    with pytest.raises(ValueError):
        await read_all(store, "t", key=b"short")


# ------------------------------------------------------------ misc store API


@pytest.mark.asyncio
async def test_missing_and_delete(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    assert not await store.exists("nope")
    with pytest.raises(BlobNotFound):
        await read_all(store, "nope")
    with pytest.raises(BlobNotFound):
        await store.size("nope")
    assert await store.delete("nope") is False
    await store.write("gone", KEY, pieces(b"abc"), 10)
    assert await store.delete("gone") is True
    assert not await store.exists("gone")
    with pytest.raises(BlobNotFound):
        await read_all(store, "gone")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "blob_id",
    ["", ".", "..", "a/b", "a\\b", "a..b", ".hidden", "x" * 129, "caf\u00e9", "a b", "a\x00b", "../etc", 42, None],
)
async def test_invalid_blob_ids_rejected(tmp_path: Path, blob_id) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(InvalidBlobId):
        await store.write(blob_id, KEY, pieces(b"x"), 10)
    with pytest.raises(InvalidBlobId):
        await store.exists(blob_id)
    with pytest.raises(InvalidBlobId):
        await read_all(store, blob_id)
    with pytest.raises(InvalidBlobId):
        await store.delete(blob_id)
    assert all_files(tmp_path) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("blob_id", ["ast_abc123.r2", "A-b_c.1", "x" * 128, "a.b.c"])
async def test_valid_blob_ids_accepted(tmp_path: Path, blob_id: str) -> None:
    store = FileBlobStore(tmp_path)
    await store.write(blob_id, KEY, pieces(b"ok"), 10)
    assert await read_all(store, blob_id) == b"ok"


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileBlobStore(tmp_path, chunk_size=0)
    with pytest.raises(ValueError):
        FileBlobStore(tmp_path, chunk_size=(1 << 24) + 1)


# ------------------------------------------------------------------- memory


@pytest.mark.slow
@pytest.mark.asyncio
async def test_memory_stays_flat_for_large_stream(tmp_path: Path) -> None:
    total = 512 << 20
    store = FileBlobStore(tmp_path)
    await store.write("warmup", KEY, pieces(payload(3 << 20)), 10**9)  # warm thread pool etc.

    block = memoryview(os.urandom(1 << 20))
    expected = hashlib.sha256()

    async def source():
        sizes, sent, i = [65536 * 3 + 17, 12345, 1 << 20, 999_999, 4096], 0, 0
        while sent < total:
            n = min(sizes[i % len(sizes)], total - sent)
            piece = block[:n]
            expected.update(piece)
            yield piece
            sent, i = sent + n, i + 1

    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stored = await store.write("big", KEY, source(), max_bytes=total)
    finally:
        done.set()
        sampler.join()
    growth = peak - baseline
    print(f"peak RSS growth while writing 512 MiB: {growth / 2**20:.1f} MiB")
    assert stored.size == total and stored.sha256 == expected.hexdigest()
    assert growth < 64 << 20
