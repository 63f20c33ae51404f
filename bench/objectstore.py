"""The object store a benchmark's ``--store s3`` runs against: moto's S3 API on
127.0.0.1 on this machine (the test suite's server), a bucket in it, the
environment that points ``market serve`` at it, and the store's own upload rate."""

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.storage.moto_s3 import S3_ENV, start_moto, stop_moto  # noqa: E402


@contextlib.contextmanager
def store_environment(store: str) -> Iterator[dict[str, str]]:
    """``MARKET_*`` and ``AWS_*`` variables for ``--store``: nothing for ``file``; for
    ``s3``, a moto server and a fresh bucket for as long as the block runs."""
    if store == "file":
        yield {"MARKET_BLOB_STORE": "file"}
        return
    with tempfile.TemporaryDirectory(prefix="market-bench-moto-") as tmp:
        server = start_moto(Path(tmp))
        try:
            yield {**S3_ENV, "MARKET_BLOB_STORE": f"{server.bucket()}/bench", "MARKET_S3_ENDPOINT_URL": server.url,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        finally:
            stop_moto(server)


def raw_put_rate(store_env: dict[str, str], pieces: Iterable[bytes], total: int) -> float:
    """Bytes per second of a plain multipart upload of ``pieces`` to the store of
    ``store_env`` (the client alone, as the market uses it: 8 MiB parts, 4 in flight):
    the most the market's upload could reach against this store."""
    import asyncio

    import obstore
    from obstore.store import S3Store

    from market.storage.objects import CONCURRENCY, PART_SIZE, parse_s3_url

    bucket, prefix = parse_s3_url(store_env["MARKET_BLOB_STORE"])
    store = S3Store(bucket, endpoint=store_env["MARKET_S3_ENDPOINT_URL"], virtual_hosted_style_request=False,
                    client_options={"allow_http": True}, access_key_id=store_env["AWS_ACCESS_KEY_ID"],
                    secret_access_key=store_env["AWS_SECRET_ACCESS_KEY"], region=store_env["AWS_REGION"])

    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def put() -> float:
        started = time.perf_counter()
        await obstore.put_async(store, f"{prefix}/raw-put", stream(), chunk_size=PART_SIZE, max_concurrency=CONCURRENCY)
        return total / (time.perf_counter() - started)

    return asyncio.run(put())
