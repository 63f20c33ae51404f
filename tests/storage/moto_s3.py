"""An S3 HTTP API on 127.0.0.1 for tests: moto's server, one per test session.

Use the ``moto_server`` fixture (session-scoped): an ``S3Server`` whose ``url`` is the
endpoint (``MARKET_S3_ENDPOINT_URL``) and whose ``bucket()`` creates a fresh bucket and
returns its ``s3://`` address. Requests are path-style (``http://127.0.0.1:PORT/bucket/key``),
as the market makes them when given an endpoint. The credentials (``S3_ENV``) are
moto's to accept and set in this process's environment by the fixture, where the
client reads them as it would in production (the standard AWS variables).

The server is moto's WSGI application run by this file (``python moto_s3.py PORT_FILE``)
on a port the kernel picks, written to ``PORT_FILE``: no race for a free port, nothing
listening on other interfaces, and the state in memory only.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
          "AWS_DEFAULT_REGION": "us-east-1"}
START_TIMEOUT = 30.0


@dataclass
class S3Server:
    """A running moto server: its endpoint, and plain HTTP helpers to look behind the market."""

    url: str
    process: subprocess.Popen[bytes]

    def bucket(self) -> str:
        """Create a new bucket; its ``s3://`` address (for ``MARKET_BLOB_STORE``)."""
        name = f"market-{uuid.uuid4().hex[:12]}"
        r = httpx.put(f"{self.url}/{name}", timeout=10)
        assert r.status_code == 200, r.text
        return f"s3://{name}"

    def keys(self, store_url: str) -> list[str]:
        """The keys of the objects in the bucket of ``store_url``."""
        bucket = store_url.removeprefix("s3://").split("/")[0]
        r = httpx.get(f"{self.url}/{bucket}", params={"list-type": "2"}, timeout=10)
        assert r.status_code == 200, r.text
        text = r.text
        return [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]

    def get(self, store_url: str, key: str) -> bytes:
        bucket = store_url.removeprefix("s3://").split("/")[0]
        r = httpx.get(f"{self.url}/{bucket}/{key}", timeout=60)
        assert r.status_code == 200, r.text
        return r.content

    def etag(self, store_url: str, key: str) -> str:
        bucket = store_url.removeprefix("s3://").split("/")[0]
        r = httpx.head(f"{self.url}/{bucket}/{key}", timeout=10)
        assert r.status_code == 200, r.text
        return r.headers["etag"]

    def put(self, store_url: str, key: str, body: bytes) -> None:
        """Replace an object behind the market's back."""
        import obstore

        obstore.put(self._signed(store_url), key, body)

    def delete(self, store_url: str, key: str) -> None:
        """Delete an object behind the market's back."""
        import obstore

        obstore.delete(self._signed(store_url), key)

    def _signed(self, store_url: str) -> Any:
        """A client of the bucket of ``store_url``: moto refuses anonymous changes to an
        object the market wrote."""
        from obstore.store import S3Store

        bucket = store_url.removeprefix("s3://").split("/")[0]
        return S3Store(bucket, endpoint=self.url, virtual_hosted_style_request=False,
                       client_options={"allow_http": True}, **_credentials())  # type: ignore[misc]

    def uploads_in_progress(self, store_url: str) -> int:
        """Multipart uploads begun and neither completed nor aborted."""
        bucket = store_url.removeprefix("s3://").split("/")[0]
        r = httpx.get(f"{self.url}/{bucket}", params={"uploads": ""}, timeout=10)
        assert r.status_code == 200, r.text
        return r.text.count("<Upload>")


def _credentials() -> dict[str, str]:
    return {"access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region": S3_ENV["AWS_REGION"]}


def start_moto(workdir: Path) -> S3Server:
    """Start a moto server (this file run as a script); returns once it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file, log_path = workdir / "port", workdir / "moto.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(port_file)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"moto did not answer within {START_TIMEOUT} s")
        if port_file.exists():
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:  # ListBuckets
                    return S3Server(url, process)
            except httpx.TransportError:
                pass
        time.sleep(0.05)


def stop_moto(server: S3Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the session, with the AWS variables the client reads set."""
    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server)


def _serve(port_file: Path) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(server.port))
    os.replace(partial, port_file)
    server.serve_forever()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
