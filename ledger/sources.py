"""Where offline tools read a log from: a tlog-tiles tree on disk or over HTTP.

Both sources serve the C2SP tlog-tiles layout: ``checkpoint``, ``tile/<L>/<N>[.p/<W>]``
and ``tile/entries/<N>[.p/<W>]``. Over HTTP they sit under ``<base>/v1/ledger/tlog/``,
next to the market's ``<base>/v1/ledger/checkpoint`` and
``<base>/v1/ledger/proofs/consistency?first=&second=``. On disk they sit under the
directory given. Per tlog-tiles, a client that asks for a partial tile which has
since grown full may get nothing; it then reads the full tile and keeps its prefix.

Also here: the state file of a monitor, which holds the last signed checkpoint note
it accepted, written atomically.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from .errors import LedgerError, MalformedError
from .merkle import HASH_SIZE
from .note import MAX_NOTE_SIZE
from .tiles import TILE_WIDTH, TileKey, decode_entry_bundle, entries_path, tile_path, tile_width

__all__ = [
    "DirSource",
    "HttpError",
    "HttpSource",
    "LogSource",
    "SourceTileReader",
    "decode_hash",
    "load_state",
    "open_source",
    "read_entry_bundle",
    "read_tile",
    "save_state",
]

MAX_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 0xFFFF)
_MAX_JSON = 1 << 20


class LogSource:
    """Reads files of a tlog-tiles tree by relative path; None when absent."""

    name: str

    def read(self, path: str, max_size: int) -> bytes | None:
        raise NotImplementedError

    def consistency_proof(self, first: int, second: int) -> list[bytes] | None:
        """The log's consistency proof between two sizes, or None if it serves none."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> LogSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DirSource(LogSource):
    """A tlog-tiles tree in a directory, as ``market ledger export DIR`` writes it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.name = str(root)
        if not self.root.is_dir():
            raise LedgerError(f"{self.name}: not a directory")

    def read(self, path: str, max_size: int) -> bytes | None:
        p = self.root / path
        try:
            with open(p, "rb") as f:
                data = f.read(max_size + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LedgerError(f"cannot read {path}: {e.strerror}") from None
        if len(data) > max_size:
            raise MalformedError(f"{path} is over {max_size} bytes")
        return data


class HttpError(LedgerError):
    """A request answered with an unexpected HTTP status.

    ``problem`` is the RFC 9457 problem document the server sent with it, if any
    (``type``, ``title``, ``detail``), so that a tool can show the server's reason.
    """

    def __init__(self, method: str, url_path: str, status: int, body: bytes) -> None:
        self.status = status
        self.problem = _problem(body)
        reason = ""
        if self.problem:
            said = ": ".join(str(self.problem[k]) for k in ("title", "detail") if self.problem.get(k))
            reason = f" ({said})" if said else ""
        super().__init__(f"{method} {url_path}: HTTP {status}{reason}")

    @property
    def kind(self) -> str:
        """The last segment of the problem's ``type`` URI (e.g. ``bad-cosignature``), or ''."""
        kind = (self.problem or {}).get("type")
        return kind.rstrip("/").rsplit("/", 1)[-1] if isinstance(kind, str) else ""


_MAX_ERROR_BODY = 64 * 1024


def _problem(body: bytes) -> dict[str, Any] | None:
    if not body or len(body) > _MAX_ERROR_BODY:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    found = {k: doc[k] for k in ("type", "title", "detail") if isinstance(doc.get(k), str)}
    return found or None


def _head(r: httpx.Response) -> bytes:
    """At most ``_MAX_ERROR_BODY + 1`` bytes of a streamed error response."""
    chunks, total = [], 0
    for chunk in r.iter_bytes():
        chunks.append(chunk)
        total += len(chunk)
        if total > _MAX_ERROR_BODY:
            break
    return b"".join(chunks)


def _transport_failure(base: str, e: httpx.HTTPError) -> str:
    """What went wrong below HTTP, and what to check."""
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect to {base} ({type(e).__name__}); check the URL and that the log's server is running"
    if isinstance(e, httpx.TimeoutException):
        return f"{base} did not answer in time ({type(e).__name__}); try again later"
    return f"{type(e).__name__} talking to {base}; check the URL and try again"


class HttpSource(LogSource):
    """The market's ledger API at a base URL (http or https)."""

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise LedgerError(f"{base_url}: want an http:// or https:// URL")
        self.base = base_url.rstrip("/")
        self.name = self.base
        self._own = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=False)

    def get(self, url_path: str, max_size: int, params: dict[str, Any] | None = None) -> bytes | None:
        """GET ``<base>/<url_path>``: the body, None on 404, LedgerError otherwise."""
        url = f"{self.base}/{url_path}"
        try:
            with self.client.stream("GET", url, params=params) as r:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise HttpError("GET", url_path, r.status_code, _head(r))
                chunks, total = [], 0
                for chunk in r.iter_bytes():
                    total += len(chunk)
                    if total > max_size:
                        raise MalformedError(f"GET {url_path}: response over {max_size} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise LedgerError(f"GET {url_path}: {_transport_failure(self.base, e)}") from None

    def post(self, url_path: str, body: bytes, content_type: str) -> httpx.Response:
        """POST ``body``; the response whatever its status (``HttpError`` builds the message)."""
        try:
            return self.client.post(f"{self.base}/{url_path}", content=body, headers={"Content-Type": content_type})
        except httpx.HTTPError as e:
            raise LedgerError(f"POST {url_path}: {_transport_failure(self.base, e)}") from None

    def read(self, path: str, max_size: int) -> bytes | None:
        return self.get(f"v1/ledger/tlog/{path}", max_size)

    def consistency_proof(self, first: int, second: int) -> list[bytes] | None:
        data = self.get("v1/ledger/proofs/consistency", _MAX_JSON, {"first": first, "second": second})
        if data is None:
            raise LedgerError(f"consistency proof {first} -> {second}: not found")
        try:
            doc = json.loads(data)
        except ValueError:
            raise MalformedError("consistency proof: not JSON") from None
        if not isinstance(doc, dict) or doc.get("first") != first or doc.get("second") != second:
            raise MalformedError(f"consistency proof: want first {first} and second {second}")
        hashes = doc.get("hashes")
        if not isinstance(hashes, list) or len(hashes) > 128:
            raise MalformedError("consistency proof: hashes must be a list")
        return [decode_hash(h, "consistency proof hash") for h in hashes]

    def close(self) -> None:
        if self._own:
            self.client.close()


def decode_hash(s: Any, what: str) -> bytes:
    """Decode the canonical standard base64 of a 32-byte hash; raises MalformedError."""
    if not isinstance(s, str) or len(s) != 44:
        raise MalformedError(f"{what}: want the base64 of {HASH_SIZE} bytes")
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:
        raise MalformedError(f"{what}: invalid base64") from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != s:
        raise MalformedError(f"{what}: want the canonical base64 of {HASH_SIZE} bytes")
    return raw


def open_source(source: str | os.PathLike[str]) -> LogSource:
    """Return an HttpSource for an http(s) URL, else a DirSource."""
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return HttpSource(source)
    return DirSource(source)


def read_tile(src: LogSource, level: int, index: int, width: int) -> bytes | None:
    """Read hash tile (level, index) at ``width`` hashes, falling back to its full version."""
    data = src.read(tile_path(level, index, width), MAX_TILE_BYTES)
    if data is None and width < TILE_WIDTH:
        data = src.read(tile_path(level, index), MAX_TILE_BYTES)
        if data is not None and len(data) == MAX_TILE_BYTES:
            data = data[: width * HASH_SIZE]
    return data


def read_entry_bundle(src: LogSource, index: int, width: int) -> bytes | None:
    """Read entry bundle ``index`` holding ``width`` entries, falling back to its full version."""
    data = src.read(entries_path(index, width), MAX_BUNDLE_BYTES)
    if data is None and width < TILE_WIDTH:
        full = src.read(entries_path(index), MAX_BUNDLE_BYTES)
        if full is not None:
            leaves = decode_entry_bundle(full)
            if len(leaves) == TILE_WIDTH:
                pos = sum(2 + len(leaf) for leaf in leaves[:width])
                data = full[:pos]
    return data


class SourceTileReader:
    """A ``TileReader`` over a source, for the tree of ``tree_size``."""

    def __init__(self, src: LogSource, tree_size: int) -> None:
        self.src = src
        self.tree_size = tree_size

    def read_tiles(self, keys: list[TileKey]) -> dict[TileKey, bytes]:
        out = {}
        for level, index in keys:
            width = tile_width(self.tree_size, level, index)
            if width == 0:
                continue
            data = read_tile(self.src, level, index, width)
            if data is not None:
                out[(level, index)] = data
        return out


# --- monitor state -------------------------------------------------------------------


def load_state(path: str | os.PathLike[str]) -> str | None:
    """Return the checkpoint note stored in a state file, or None if there is no file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_NOTE_SIZE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_NOTE_SIZE:
        raise MalformedError(f"state file {os.fspath(path)} is too large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError(f"state file {os.fspath(path)} is not UTF-8") from None


def save_state(path: str | os.PathLike[str], note_text: str) -> None:
    """Store a checkpoint note in a state file atomically (write, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(note_text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
