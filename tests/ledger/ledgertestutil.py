"""Shared helpers for the ledger tests (and the blob store's): deterministic keys,
signed entries, the RFC 9162 tree hash written recursively from the spec, and a
tlog-tiles directory tree written the way ``market ledger export`` lays it out."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import merkle, tiles
from ledger.entry import sign_entry
from ledger.errors import MalformedError
from ledger.note import Checkpoint, Signer, sign_checkpoint

ORIGIN = "ledger.test.example/log"
T0 = datetime(2026, 11, 27, 6, 42, 0, 123456, tzinfo=UTC)


def key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def signer(seed: int = 1, name: str = ORIGIN) -> Signer:
    return Signer(name, key(seed))


def make_leaves(s: Signer, n: int, start: int = 0, tag: str = "a") -> list[bytes]:
    """n signed entries, deterministic for (signer, start, tag)."""
    leaves = []
    for i in range(start, start + n):
        _, leaf = sign_entry(
            s,
            "trade.settled",
            f"order:ord_{tag}{i:08d}",
            f"acct_{i % 97:04d}",
            {"amount": i * 100, "document_sha256": f"{i:064x}", "parties": [f"acct_{i % 7}", "acct_x"]},
            T0 + timedelta(seconds=i),
        )
        leaves.append(leaf)
    return leaves


def ref_k(n: int) -> int:
    """The split of RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over leaf data, recursively: the reference the
    fast implementations are checked against."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = ref_k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def build_tiles(leaves: list[bytes], batch: int = 1000) -> tuple[bytes, dict[tuple[int, int], bytes]]:
    """Integrate the leaves in batches; return (root, {(level, index): tile data})."""
    mem = tiles.TileMemory()
    size, root = 0, merkle.EMPTY_ROOT
    for i in range(0, max(len(leaves), 1), batch):
        hashes = [merkle.leaf_hash(x) for x in leaves[i : i + batch]]
        size, root, changed = tiles.integrate(size, hashes, mem)
        for key, data in changed.items():
            mem.keep(key, data)
    return root, mem.read_tiles(list(mem.tiles))


def write_log(directory: Path, s: Signer, leaves: list[bytes]) -> str:
    """Write checkpoint, entry bundles and hash tiles for the leaves; return the checkpoint note."""
    root, hash_tiles = build_tiles(leaves)
    size = len(leaves)
    for (level, index), data in hash_tiles.items():
        width = len(data) // 32
        p = directory / tiles.tile_path(level, index, width)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for n in range(0, size, tiles.TILE_WIDTH):
        chunk = leaves[n : n + tiles.TILE_WIDTH]
        p = directory / tiles.entries_path(n // tiles.TILE_WIDTH, len(chunk))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(tiles.encode_entry_bundle(chunk))
    note = sign_checkpoint(s, Checkpoint(s.name, size, root))
    (directory / "checkpoint").write_text(note, encoding="utf-8")
    return note


class FakeMarket:
    """Serves a log the way the market's ledger API does (tlog-tiles, checkpoint,
    consistency proofs) and records cosignatures posted to it."""

    def __init__(self, s: Signer, leaves: list[bytes]) -> None:
        self.signer = s
        self.posted: list[str] = []
        self.set_leaves(leaves)

    def set_leaves(self, leaves: list[bytes]) -> None:
        self.leaves = list(leaves)
        self.root, self.tiles = build_tiles(self.leaves)
        self.note = sign_checkpoint(self.signer, Checkpoint(self.signer.name, len(leaves), self.root))

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        import json

        if method == "POST" and path == "/v1/ledger/cosignatures":
            self.posted.append(body.decode())
            return 201, b""
        if method != "GET":
            return 405, b""
        if path in ("/v1/ledger/checkpoint", "/v1/ledger/tlog/checkpoint"):
            return 200, self.note.encode()
        if path == "/v1/ledger/proofs/consistency":
            first, second = int(query["first"]), int(query["second"])
            if not 0 < first <= second <= len(self.leaves):
                return 400, b""
            hashes = [merkle.leaf_hash(x) for x in self.leaves[:second]]
            proof = merkle.consistency_proof(first, second, hashes)
            doc = {"first": first, "second": second, "hashes": [base64.b64encode(h).decode() for h in proof]}
            return 200, json.dumps(doc).encode()
        prefix = "/v1/ledger/tlog/"
        if not path.startswith(prefix):
            return 404, b""
        try:
            level, index, width = tiles.parse_tile_path(path[len(prefix) :])
        except MalformedError:
            return 404, b""
        if level == "entries":
            chunk = self.leaves[index * 256 : index * 256 + 256]
            if len(chunk) < width:
                return 404, b""
            return 200, tiles.encode_entry_bundle(chunk[:width])
        data = self.tiles.get((level, index))
        if data is None or len(data) < width * 32:
            return 404, b""
        return 200, data[: width * 32]

    def client(self):
        import httpx

        def app(request: httpx.Request) -> httpx.Response:
            status, body = self.handle(
                request.method, request.url.path, dict(request.url.params), request.content
            )
            return httpx.Response(status, content=body)

        return httpx.Client(transport=httpx.MockTransport(app))


class serve:
    """Run a FakeMarket on a loopback HTTP server: ``with serve(m) as url: ...``."""

    def __init__(self, market: FakeMarket) -> None:
        self.market = market

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        market = self.market

        class Handler(BaseHTTPRequestHandler):
            def _run(self, method: str) -> None:
                u = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, out = market.handle(method, u.path, dict(parse_qsl(u.query)), body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:
                self._run("GET")

            def do_POST(self) -> None:
                self._run("POST")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
