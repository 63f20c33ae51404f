"""The object store a benchmark's ``--store s3`` runs against: moto's S3 API on
127.0.0.1 on this machine (the test suite's server), a bucket in it, and the
environment that points ``market serve`` at it."""

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
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
