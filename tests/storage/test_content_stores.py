"""Content over HTTP on either blob store: uploads and downloads through an app whose
content lives in an S3 API (moto on 127.0.0.1), byte for byte, whole and by range, with
chunk proofs; and a blob that is missing or unreadable is a problem before any of the
body, on the file store and on the object store alike."""

import base64
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ledger import merkle
from market.registry.models import AssetRevision
from market.storage import FileBlobStore, S3BlobStore
from market.storage.store import blob_name
from tests.conftest import assert_problem
from tests.registry_support import own_app
from tests.storage.moto_s3 import S3Server
from tests.trading.test_delivery import CHUNK, bought, url

RETRY_AFTER = "30"


def blob_of(client: Any, asset_id: str) -> str:
    """The blob id of the asset's registered revision."""
    async def run() -> str:
        async with client.app.state.services.read_sessionmaker() as s:
            rev = (await s.execute(select(AssetRevision).where(AssetRevision.asset_id == asset_id)
                                   .order_by(AssetRevision.revision.desc()))).scalars().first()  # type: ignore[attr-defined]
            return rev.blob_id

    return client.blocking_portal.call(run)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def assert_unavailable(client: Any, order: dict[str, Any], auth: dict[str, str], proof: bool = True) -> None:
    """Content (and a proof, unless the process still has the chunk tree in memory) are
    503 problems with a retry hint: nothing of a body was sent."""
    answers = [await client.get(url(order), headers=auth),
               await client.get(url(order), headers={**auth, "Range": "bytes=100-200"})]
    if proof:
        answers.append(await client.get(url(order, "/proof"), params={"chunk": 0}, headers=auth))
    for r in answers:
        assert_problem(r, 503, "content-unavailable")
        assert r.headers["retry-after"] == RETRY_AFTER


async def test_a_missing_blob_file_is_a_problem_before_any_body(client, parties, operator, settings) -> None:
    d = await bought(client, parties, operator, size=3 * CHUNK + 5)
    store = client.app.state.services.blobs
    assert isinstance(store, FileBlobStore)
    blob = blob_of(client, d["asset"]["id"])
    path = settings.blobs_dir / blob_name(blob)
    kept = path.read_bytes()
    path.unlink()
    await assert_unavailable(client, d["order"], d["buyer"].auth)
    # Restored, it is served again; then tampered with, it is a 500 (no retry mends it).
    path.write_bytes(kept)
    r = await client.get(url(d["order"]), headers=d["buyer"].auth)
    assert r.status_code == 200 and r.content == d["content"]
    bad = bytearray(kept)
    bad[100] ^= 1
    path.write_bytes(bytes(bad))
    assert_problem(await client.get(url(d["order"]), headers=d["buyer"].auth), 500, "content-corrupted")


async def test_content_in_the_object_store_over_http(databases, tmp_path, moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    store_url = f"{bucket}/market"
    async with own_app(databases, tmp_path, blob_store=store_url, s3_endpoint_url=moto_server.url) as m:
        client = m.client
        assert isinstance(client.app.state.services.blobs, S3BlobStore)
        d = await bought(client, m.parties, m.operator, size=40 * CHUNK + 1234)  # 2.5 MiB: ranges over reads
        content, order, auth = d["content"], d["order"], d["buyer"].auth
        blob = blob_of(client, d["asset"]["id"])

        r = await client.get(url(order), headers=auth)
        assert r.status_code == 200 and r.content == content
        for first, last in [(0, 0), (CHUNK - 1, CHUNK), (5, 40 * CHUNK), (len(content) - 10, len(content) - 1)]:
            r = await client.get(url(order), headers={**auth, "Range": f"bytes={first}-{last}"})
            assert r.status_code == 206 and r.content == content[first:last + 1], (first, last)
        for chunk in (0, 17, 40):
            r = await client.get(url(order, "/proof"), params={"chunk": chunk}, headers=auth)
            assert r.status_code == 200, r.text
            proof = r.json()
            root = bytes.fromhex(proof["merkle_root"])
            leaf = merkle.leaf_hash(content[chunk * CHUNK:(chunk + 1) * CHUNK])
            merkle.verify_inclusion(chunk, proof["size"] // CHUNK + 1, leaf,
                                    [base64.b64decode(h) for h in proof["hashes"]], root)

        # The bucket holds the ciphertext; the data directory nothing of the content.
        key = f"market/{blob_name(blob)}"
        assert key in moto_server.keys(store_url)
        raw = moto_server.get(store_url, key)
        assert all(content[at:at + 32] not in raw for at in range(0, len(content) - 32, 8192))
        assert not (tmp_path / "blobs").exists() or files_under(tmp_path / "blobs") == []
        assert not any(content[:64] in p.read_bytes() for p in files_under(tmp_path) if p.stat().st_size < 1 << 26)

        # Tampered with in the bucket: 500; gone from it: 503, before any body.
        bad = bytearray(raw)
        bad[-100] ^= 1
        moto_server.put(store_url, key, bytes(bad))
        assert_problem(await client.get(url(order), headers={**auth, "Range": f"bytes={len(content) - 5}-"}),
                       500, "content-corrupted")
        moto_server.delete(store_url, key)
        await assert_unavailable(client, order, auth, proof=False)  # its proofs were computed above


async def test_an_unreachable_object_store_is_a_503(databases, tmp_path, moto_server: S3Server) -> None:
    """Content uploaded, then the store stops answering (its endpoint moved): 503 and a
    retry hint, not a 500 and not a truncated 200."""
    store_url = moto_server.bucket()
    async with own_app(databases, tmp_path, blob_store=store_url, s3_endpoint_url=moto_server.url) as m:
        d = await bought(m.client, m.parties, m.operator, size=CHUNK + 1)
        services = m.client.app.state.services
        with socket_nothing_listens() as nowhere:
            services.blobs = S3BlobStore(store_url, nowhere)
            await assert_unavailable(m.client, d["order"], d["buyer"].auth)


def socket_nothing_listens() -> Any:
    """An http:// address on 127.0.0.1 where nothing listens."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def address() -> Any:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}"

    return address()

