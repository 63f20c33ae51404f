"""The S3 blob store (market.storage.objects) against a real S3 HTTP API (moto on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path

import pytest

from market.storage import (
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
    ContentTooLarge,
    FileBlobStore,
    S3BlobStore,
    open_blob_store,
)
from market.storage.objects import parse_s3_url
from market.storage.store import blob_name
from tests.storage.moto_s3 import S3Server
from tests.storage.test_blobs import KEY, OTHER_KEY, payload, pieces, read_all, ref_commitment

MiB = 1 << 20


@pytest.fixture
def store_url(moto_server: S3Server) -> str:
    return moto_server.bucket() + "/content/blobs"


def s3_store(moto_server: S3Server, url: str, **options: int) -> S3BlobStore:
    return S3BlobStore(url, moto_server.url, **options)


@pytest.mark.asyncio
@pytest.mark.parametrize(("chunk_size", "size"), [(1000, 0), (1000, 999), (1000, 1000), (4096, 250_001)])
async def test_round_trip_whole_and_ranged(moto_server: S3Server, store_url: str, chunk_size: int,
                                           size: int) -> None:
    store = s3_store(moto_server, store_url, chunk_size=chunk_size)
    data = payload(size, seed=size)
    stored = await store.write("ast_abc.r1", KEY, pieces(data), 10**7)
    assert (stored.sha256, stored.merkle_root) == ref_commitment(data, chunk_size)
    assert stored.size == size and await store.size("ast_abc.r1") == size
    assert await read_all(store, "ast_abc.r1") == data
    for start, end in [(0, 1), (chunk_size - 1, chunk_size + 1), (size // 3, size - 7), (size - 1, None), (5, 5)]:
        if 0 <= start <= size and (end is None or start <= end):
            assert await read_all(store, "ast_abc.r1", start=start, end=end) == data[start:end], (start, end)
    assert await store.verify("ast_abc.r1", KEY) == stored
    assert await store.exists("ast_abc.r1")


@pytest.mark.asyncio
async def test_the_object_is_ciphertext_in_the_blob_file_format(moto_server: S3Server, store_url: str,
                                                                 tmp_path: Path) -> None:
    """Under the prefix and the same name as a blob file; the plaintext appears nowhere
    in it, and the file store reads it as one of its own."""
    store = s3_store(moto_server, store_url)
    data = payload(300_000, seed=7)
    await store.write("ast_x.r2", KEY, pieces(data), 10**7)
    key = f"content/blobs/{blob_name('ast_x.r2')}"
    assert moto_server.keys(store_url) == [key]
    raw = moto_server.get(store_url, key)
    for at in range(0, len(data) - 32, 4096):
        assert data[at : at + 32] not in raw
    (tmp_path / blob_name("ast_x.r2")).parent.mkdir(parents=True)
    (tmp_path / blob_name("ast_x.r2")).write_bytes(raw)
    assert await read_all(FileBlobStore(tmp_path), "ast_x.r2") == data


@pytest.mark.asyncio
async def test_a_large_blob_is_uploaded_in_parts(moto_server: S3Server, store_url: str) -> None:
    store = s3_store(moto_server, store_url, part_size=5 * MiB)
    block = payload(MiB, seed=3)
    total = 12 * MiB + 12345

    async def source():
        sent = 0
        while sent < total:
            n = min(len(block), total - sent)
            yield block[:n]
            sent += n
            await asyncio.sleep(0)

    stored = await store.write("big", KEY, source(), total)
    expected = (block * 13)[:total]
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    etag = moto_server.etag(store_url, f"content/blobs/{blob_name('big')}")
    assert etag.endswith('-3"'), etag  # a multipart upload's ETag counts its parts: 12 MiB+ in 5 MiB parts
    assert await read_all(store, "big", start=5 * MiB - 3, end=10 * MiB + 5) == expected[5 * MiB - 3 : 10 * MiB + 5]
    assert await store.verify("big", KEY) == stored


@pytest.mark.asyncio
async def test_delete_and_missing_object(moto_server: S3Server, store_url: str) -> None:
    store = s3_store(moto_server, store_url)
    await store.write("gone", KEY, pieces(b"soon gone"), 100)
    assert await store.delete("gone") is True
    assert await store.delete("gone") is False
    assert not await store.exists("gone")
    assert moto_server.keys(store_url) == []
    with pytest.raises(BlobNotFound):
        await read_all(store, "gone")
    with pytest.raises(BlobNotFound):
        await store.size("gone")
    with pytest.raises(BlobNotFound):
        await store.verify("gone", KEY)


@pytest.mark.asyncio
async def test_failed_uploads_leave_nothing_and_keep_the_previous_object(moto_server: S3Server,
                                                                         store_url: str) -> None:
    store = s3_store(moto_server, store_url, part_size=5 * MiB)
    await store.write("kept", KEY, pieces(b"the first content"), 100)

    async def too_much():
        for _ in range(12):
            yield b"x" * MiB

    with pytest.raises(ContentTooLarge):
        await store.write("kept", KEY, too_much(), 11 * MiB)

    async def failing():
        for _ in range(7):
            yield b"y" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write("lost", KEY, failing(), 100 * MiB)
    assert await read_all(store, "kept") == b"the first content"
    assert moto_server.keys(store_url) == [f"content/blobs/{blob_name('kept')}"]
    assert moto_server.uploads_in_progress(store_url) == 0


@pytest.mark.asyncio
async def test_tampered_object_and_wrong_key_are_refused(moto_server: S3Server, store_url: str) -> None:
    store = s3_store(moto_server, store_url, chunk_size=1000)
    await store.write("t", KEY, pieces(payload(5000)), 10**6)
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t", key=OTHER_KEY)
    key = f"content/blobs/{blob_name('t')}"
    raw = bytearray(moto_server.get(store_url, key))
    raw[2500] ^= 1
    moto_server.put(store_url, key, bytes(raw))
    assert await read_all(store, "t", start=0, end=1000) == payload(5000)[:1000]  # chunk 0 untouched
    with pytest.raises(BlobCorrupted):
        await store.verify("t", KEY)
    moto_server.put(store_url, key, bytes(raw[:-5]))  # truncated
    with pytest.raises(BlobCorrupted):
        await read_all(store, "t", start=4500)


@pytest.mark.asyncio
async def test_an_unreachable_store_is_said_so(moto_server: S3Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    store = S3BlobStore("s3://nowhere/p", f"http://127.0.0.1:{port}")
    with pytest.raises(BlobStoreUnavailable):
        await read_all(store, "x")
    with pytest.raises(BlobStoreUnavailable):
        await store.write("x", KEY, pieces(b"data"), 100)
    missing_bucket = S3BlobStore("s3://no-such-bucket", moto_server.url)
    with pytest.raises((BlobStoreUnavailable, BlobNotFound)):
        await read_all(missing_bucket, "x")
    with pytest.raises(BlobStoreUnavailable):
        await missing_bucket.write("x", KEY, pieces(b"data"), 100)


def test_store_addresses(tmp_path: Path) -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("bucket/a", "s3:///a", "file"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)
    assert isinstance(open_blob_store("file", "", tmp_path), FileBlobStore)
    s3 = open_blob_store("s3://bucket/pre", "http://127.0.0.1:9", tmp_path)
    assert isinstance(s3, S3BlobStore) and s3.describe() == "s3://bucket/pre"


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_upload_is_never_held_whole(moto_server: S3Server, store_url: str) -> None:
    """128 MiB in 8 MiB parts, at most 4 in flight: this process's memory grows by what
    is in flight (well under 64 MiB), not by the blob."""
    import threading

    import psutil

    store = s3_store(moto_server, store_url)
    block = os.urandom(MiB)
    total = 128 * MiB

    async def source():
        for _ in range(total // MiB):
            yield block

    proc = psutil.Process()
    baseline = peak = proc.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stored = await store.write("large", KEY, source(), total)
    finally:
        done.set()
        sampler.join()
    assert stored.size == total and stored.sha256 == hashlib.sha256(block * 128).hexdigest()
    growth = peak - baseline
    print(f"peak RSS growth while uploading 128 MiB: {growth / MiB:.1f} MiB")
    assert growth < 64 * MiB


def test_the_settings_refuse_a_store_they_cannot_name(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from market.core.config import Settings

    good = Settings(_env_file=None, data_dir=tmp_path, blob_store="s3://my-bucket/a/b",  # type: ignore[call-arg]
                    s3_endpoint_url="http://minio:9000")
    assert (good.blob_store, good.s3_endpoint_url) == ("s3://my-bucket/a/b", "http://minio:9000")
    assert Settings(_env_file=None, data_dir=tmp_path).blob_store == "file"  # type: ignore[call-arg]
    for bad in ("s3:/bucket", "s3://B", "disk", "s3://", "/var/blobs"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, data_dir=tmp_path, blob_store=bad)  # type: ignore[call-arg]
    for bad in ("minio:9000", "ftp://x", "http://a b"):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, data_dir=tmp_path, s3_endpoint_url=bad)  # type: ignore[call-arg]
