"""Past one machine: two ``market serve`` processes with data directories of their own
on one PostgreSQL and one object store (moto on 127.0.0.1), sharing nothing but the two
keys an operator deploys to each. Content uploaded through one is delivered through the
other, whole, by range and with chunk proofs, byte for byte; neither keeps any of it on
its disk; a blob deleted from the bucket is a problem before any body."""

import base64
import os
import shutil
from pathlib import Path

import httpx
import pytest

from ledger import merkle
from market.storage.store import blob_name
from tests.conftest import Parties, Party, assert_problem, backend, make_settings
from tests.listings.support import publish
from tests.registry_support import provider, registered_asset
from tests.serving import serving
from tests.storage.moto_s3 import S3Server
from tests.trading.support import FREE, ONE_TIME, buyer, place

CHUNK = 65536
SIZE = 3_162_728  # the size of the download the issue saw cut to nothing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(backend() != "postgresql",
                       reason="two processes share one database only on PostgreSQL (MARKET_TEST_DATABASE_URL); "
                              "SQLite is one machine's file"),
]


def deploy_keys(source: Path, target: Path) -> None:
    """What an operator deploys to every machine: the ledger key and the master key."""
    (target / "keys").mkdir(mode=0o700, parents=True)
    for key in (source / "keys").iterdir():
        shutil.copy2(key, target / "keys" / key.name)


def files_holding(root: Path, sample: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and sample in p.read_bytes()]


async def test_upload_through_one_process_download_through_another(databases, tmp_path: Path,
                                                                   moto_server: S3Server) -> None:
    store = f"{moto_server.bucket()}/content"
    env = {"MARKET_BLOB_STORE": store, "MARKET_S3_ENDPOINT_URL": moto_server.url}
    url = await databases.new()
    one = make_settings(tmp_path / "one", url)
    two = make_settings(tmp_path / "two", url)
    content = os.urandom(SIZE)
    async with serving(one, **env) as first:
        deploy_keys(one.data_dir, two.data_dir)
        async with serving(two, **env) as second, \
                httpx.AsyncClient(base_url=first.base, timeout=60) as a, \
                httpx.AsyncClient(base_url=second.base, timeout=60) as b:
            operator = Party("", first.operator_token, {})
            parties = Parties(a, one, operator)  # type: ignore[arg-type]
            holder = await provider(a, parties)
            asset = await registered_asset(a, holder, operator, content)
            listing = await publish(a, holder, asset["id"], plans=[ONE_TIME, FREE])
            who = await buyer(a, parties)
            order = await place(a, who, listing, "free")
            path = f"/v1/orders/{order['id']}/content"

            r = await b.get(path, headers=who.auth)
            assert r.status_code == 200 and len(r.content) == SIZE and r.content == content
            for first_byte, last_byte in [(0, 99), (CHUNK - 3, 5 * CHUNK + 2), (SIZE - 1000, SIZE - 1)]:
                r = await b.get(path, headers={**who.auth, "Range": f"bytes={first_byte}-{last_byte}"})
                assert r.status_code == 206 and r.content == content[first_byte:last_byte + 1]
            chunks = -(-SIZE // CHUNK)
            for chunk in (0, chunks // 2, chunks - 1):
                r = await b.get(f"{path}/proof", params={"chunk": chunk}, headers=who.auth)
                assert r.status_code == 200, r.text
                proof = r.json()
                merkle.verify_inclusion(chunk, chunks, merkle.leaf_hash(content[chunk * CHUNK:(chunk + 1) * CHUNK]),
                                        [base64.b64decode(h) for h in proof["hashes"]],
                                        bytes.fromhex(proof["merkle_root"]))

            # The bucket holds the one blob, in ciphertext; neither disk holds any of it.
            [key] = [k for k in moto_server.keys(store) if k.endswith(".blob")]
            raw = moto_server.get(store, key)
            assert len(raw) > SIZE and all(content[at:at + 64] not in raw for at in range(0, SIZE - 64, 65536))
            for data_dir in (one.data_dir, two.data_dir):
                assert files_holding(data_dir, content[:64]) == [] and files_holding(data_dir, content[-64:]) == []
                assert not (data_dir / "blobs").exists()

            # Gone from the bucket: a problem before any body, through either process.
            moto_server.delete(store, key)
            assert key.endswith(blob_name(key.split("/")[-1].removesuffix(".blob")))
            for client in (a, b):
                r = await client.get(path, headers={**who.auth, "Range": "bytes=10-20"})
                assert_problem(r, 503, "content-unavailable")
                assert r.headers["retry-after"]
