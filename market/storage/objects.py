"""``S3BlobStore``: blobs in an S3-compatible object store (AWS S3, MinIO, Ceph, Garage),
so that any number of market processes on any number of machines share the content
with no shared disk (docs/storage.md).

The objects are the blob files of ``market.storage.format`` byte for byte, under the
same names (``blob_name``) below the store's prefix: the market encrypts before a byte
leaves the process, so the bucket holds ciphertext only. A write streams as a
multipart upload (parts of ``part_size``, at most ``concurrency`` in flight), never
holding the blob whole; an object appears only once its upload completes. A read asks
for the byte range of exactly the chunks it needs, in one request streamed and
decrypted as it arrives.

The client is ``obstore`` (Rust's ``object_store``): async, streaming multipart
uploads and ranged reads, credentials from the standard AWS variables.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import obstore
from obstore.exceptions import BaseError as ObjectStoreError
from obstore.store import S3Store

from market.storage.errors import BlobCorrupted, BlobNotFound, BlobStoreUnavailable
from market.storage.format import (
    BATCH_BYTES,
    DEFAULT_CHUNK_SIZE,
    HEADER,
    Layout,
    StoredBlob,
    chunk_batches,
    chunks_span,
    data_cipher,
    decrypt_chunks,
    parse_layout,
)
from market.storage.store import BlobStore, FileBlobStore, blob_name
from market.storage.writer import SealedStream

__all__ = ["CONCURRENCY", "PART_SIZE", "S3BlobStore", "open_blob_store", "parse_s3_url"]

PART_SIZE = 8 << 20  # bytes of a multipart upload's part (S3's minimum is 5 MiB)
CONCURRENCY = 4  # parts of one upload in flight at once


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// address: {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def open_blob_store(spec: str, endpoint_url: str, blobs_dir: Path) -> BlobStore:
    """The store ``MARKET_BLOB_STORE`` names: ``file`` (blobs under ``blobs_dir``) or
    ``s3://bucket/prefix`` (at ``endpoint_url``, or AWS's endpoint if empty)."""
    if spec == "file":
        return FileBlobStore(blobs_dir)
    return S3BlobStore(spec, endpoint_url)


class S3BlobStore(BlobStore):
    """Blobs as objects ``<prefix>/ab/cd/<blob id>.blob`` in a bucket. With an
    ``endpoint_url`` (MinIO and the like) requests are path-style, and plain http is
    allowed for it."""

    def __init__(self, url: str, endpoint_url: str = "", chunk_size: int = DEFAULT_CHUNK_SIZE,
                 part_size: int = PART_SIZE, concurrency: int = CONCURRENCY) -> None:
        super().__init__(chunk_size)
        bucket, prefix = parse_s3_url(url)
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.part_size, self.concurrency = part_size, concurrency
        config: dict[str, Any] = {}
        # A download streams for as long as its buyer takes, so the whole request has no
        # tight limit; a store that stops sending is noticed by the read timeout.
        client: dict[str, Any] = {"connect_timeout": timedelta(seconds=5), "timeout": timedelta(hours=24),
                                  "read_timeout": timedelta(seconds=120)}
        if endpoint_url:
            config.update(endpoint=endpoint_url.rstrip("/"), virtual_hosted_style_request=False)
            client["allow_http"] = endpoint_url.startswith("http://")
        # A store that does not answer is said so within seconds (a 503 to the
        # client), not after the client library's default of minutes of retries.
        retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=15)}
        self._store = S3Store(bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
                              client_options=client, retry_config=retry)  # type: ignore[arg-type]

    def describe(self) -> str:
        return self.url

    async def exists(self, blob_id: str) -> bool:
        try:
            await self._call(obstore.head_async(self._store, blob_name(blob_id)), blob_id)
        except BlobNotFound:
            return False
        return True

    async def write(
        self,
        blob_id: str,
        data_key: bytes,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
    ) -> StoredBlob:
        """See ``BlobStore.write``: a multipart upload of the ciphertext as it is
        sealed. On failure the upload is aborted, so no object appears (and an object
        of the same id stays as it was)."""
        name = blob_name(blob_id)
        stream = SealedStream(blob_id, data_key, self.chunk_size, chunks, max_bytes)
        # The source's own errors (ContentTooLarge, a client gone away, a blob missing
        # from the store a copy reads) come out of the upload unchanged; only the
        # store's own are BlobStoreUnavailable.
        try:
            await obstore.put_async(self._store, name, stream, chunk_size=self.part_size,
                                    max_concurrency=self.concurrency)
        except FileNotFoundError:  # what S3 says of a write to a bucket that does not exist
            raise BlobStoreUnavailable(f"the bucket of {self.url} does not exist") from None
        except ObjectStoreError as exc:
            raise BlobStoreUnavailable(f"the object store failed to store blob {blob_id!r}: {exc}") from exc
        return stream.result()

    async def delete(self, blob_id: str) -> bool:
        name = blob_name(blob_id)
        if not await self.exists(blob_id):
            return False
        await self._call(obstore.delete_async(self._store, name), blob_id)
        return True

    async def _layout(self, blob_id: str) -> Layout:
        return (await self._head(blob_id))[1]

    async def _head(self, blob_id: str) -> tuple[str | None, Layout]:
        """The object's ETag and the blob's layout, in one ranged GET of its header."""
        got = await self._call(obstore.get_async(self._store, blob_name(blob_id),
                                                 options={"range": (0, HEADER.size)}), blob_id)
        header = bytes(await self._call(got.bytes_async(), blob_id))
        return got.meta["e_tag"], parse_layout(header, got.meta["size"])

    async def _batches(
        self, blob_id: str, data_key: bytes, start: int, end: int | None
    ) -> AsyncGenerator[tuple[Layout, int, list[bytes]]]:
        """One GET of exactly the records the range needs (after the header's), streamed:
        the records are cut into batches and decrypted as they arrive, so what is held
        stays about two batches whatever the length. ``If-Match``: an object replaced
        since its header was read is not spliced in."""
        aead = data_cipher(data_key)
        bid = blob_id.encode("ascii")
        etag, lay = await self._head(blob_id)
        batches = list(chunk_batches(lay, start, end))
        if not batches:
            return
        offset = chunks_span(lay, *batches[0])[0]
        last_offset, last_length = chunks_span(lay, *batches[-1])
        options: dict[str, Any] = {"range": (offset, last_offset + last_length)}
        if etag:
            options["if_match"] = etag
        got = await self._call(obstore.get_async(self._store, blob_name(blob_id), options=options), blob_id)  # type: ignore[arg-type]
        pieces = aiter(got.stream(min_chunk_size=BATCH_BYTES))
        buffer = bytearray()
        for a, b in batches:
            need = chunks_span(lay, a, b)[1]
            while len(buffer) < need:
                piece = await self._call(anext(pieces, None), blob_id)
                if piece is None:
                    raise BlobCorrupted("blob is shorter than its layout requires")
                buffer += piece
            with memoryview(buffer) as view:
                raw = bytes(view[:need])  # one copy (a bytearray slice would make two)
            del buffer[:need]
            yield lay, a, await anyio.to_thread.run_sync(decrypt_chunks, raw, lay, aead, bid, a, b)

    @staticmethod
    async def _call(request: Any, blob_id: str) -> Any:
        """Await a request of the client, its errors said in the store's terms."""
        try:
            return await request
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {blob_id!r}") from None
        except ObjectStoreError as exc:
            raise BlobStoreUnavailable(f"the object store failed on blob {blob_id!r}: {exc}") from exc
