"""``market client download``: a buyer fetches an order's content and checks it against
the commitment the market signed into the contract (交易凭证).

- The whole content: streamed to ``--out`` with a progress bar, resumed with ``Range``
  (and ``If-Range``, the commitment's SHA-256 as the ETag) when the file is already
  partly there; at the end its SHA-256 is checked against the server's ``Repr-Digest``.
- ``--verify``: the file's size and SHA-256 must equal the commitment's, and every chunk
  must prove, with its RFC 9162 inclusion proof, against the commitment's Merkle root.
- ``--verify`` also checks the order's delivery receipts (``GET /v1/orders/{id}/deliveries``):
  each receipt whose batch is on the ledger must prove, with its RFC 9162 inclusion
  proof, to be a leaf of the Merkle root in its batch's ``delivery.sent`` document, and
  that document's bundle must verify (docs/LEDGER.md §6) with the log key (``--vkey``, else
  the market's ``/v1/ledger/key``). Receipts whose batch is still open are counted as
  pending (the latest download's, until the batch's window passes).
- ``--range A-B``: only the chunks covering bytes A..B are fetched, each checked
  against the Merkle root with its proof, and bytes A..B written to ``--out``: any part
  of a multi-gigabyte asset checked against the certificate without the rest.

The commitment is the contract's (the revision registered at settlement), or for
``--revision N`` of a subscription the asset's registration certificate when it
commits to revision N. The server's proofs are only ever checked against that root,
never against the root the server sends along.

Exit status: 0 on success, 1 when a check fails (the message names the chunk), 2 when
the market cannot be reached or refuses (an HTTP error).
"""

import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import rfc8785

from ledger import merkle
from ledger.bundle import verify_bundle
from ledger.errors import LedgerError
from market.tools.endpoint import unreachable

OK, CHECK_FAILED, HTTP_FAILED = 0, 1, 2
_PIECE = 1 << 20


class HttpFailure(Exception):
    """The market answered with an error, or could not be reached."""


class CheckFailed(Exception):
    """What was received does not match the commitment."""


@dataclass(frozen=True)
class Commitment:
    revision: int
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int

    @property
    def chunks(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    @classmethod
    def of(cls, document: dict[str, Any]) -> "Commitment":
        c = document["commitment"]
        return cls(int(c["revision"]), c["sha256"], int(c["size"]), c["merkle_root"], int(c["chunk_size"]))


def parse_byte_range(text: str) -> tuple[int, int]:
    """``A-B`` (inclusive, A <= B) as a pair; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise ValueError(f"--range takes FIRST-LAST byte offsets (inclusive), e.g. 0-1048575; got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
        return f"{r.status_code} {body.get('title', '')}: {body.get('detail', '')}".strip()
    except ValueError:
        return f"{r.status_code} {r.reason_phrase}"


def _failed(http: httpx.Client, path: str, exc: httpx.HTTPError, then: str = "") -> HttpFailure:
    """Nothing listening (or no such host) is said with the market's URL, and nothing
    was received so there is nothing to resume; anything else names the request."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return HttpFailure(unreachable(str(http.base_url), exc))
    return HttpFailure(f"GET {path}: {exc}{then}")


def _get_json(http: httpx.Client, path: str, **params: Any) -> Any:
    try:
        r = http.get(path, params=params or None)
    except httpx.HTTPError as exc:
        raise _failed(http, path, exc) from None
    if r.status_code != 200:
        raise HttpFailure(f"GET {path}: {_problem(r)}")
    return r.json()


def commitment_for(http: httpx.Client, order_id: str, revision: int | None) -> Commitment:
    """The commitment to check against: the contract's, or the certificate's for another revision."""
    contract = _get_json(http, f"/v1/orders/{order_id}/contract")["document"]
    committed = Commitment.of(contract)
    if revision is None or revision == committed.revision:
        return committed
    certificate = _get_json(http, f"/v1/assets/{contract['asset']['id']}/certificate")["document"]
    registered = Commitment.of(certificate)
    if registered.revision != revision:
        raise HttpFailure(f"neither the contract (revision {committed.revision}) nor the asset's certificate "
                          f"(revision {registered.revision}) commits to revision {revision}")
    return registered


def _proof(http: httpx.Client, order_id: str, c: Commitment, index: int) -> list[bytes]:
    p = _get_json(http, f"/v1/orders/{order_id}/content/proof", chunk=index, revision=c.revision)
    if p.get("chunk") != index or p.get("size") != c.size or p.get("chunk_size") != c.chunk_size:
        raise CheckFailed(f"chunk {index}: the proof is for another chunk or content "
                          f"(chunk {p.get('chunk')}, size {p.get('size')}, chunk size {p.get('chunk_size')})")
    try:
        return [base64.b64decode(h, validate=True) for h in p["hashes"]]
    except (binascii.Error, TypeError, KeyError) as exc:
        raise CheckFailed(f"chunk {index}: the proof is malformed ({exc})") from None


def check_chunk(http: httpx.Client, order_id: str, c: Commitment, index: int, data: bytes) -> None:
    """``data`` is chunk ``index``, by its inclusion proof under the commitment's root."""
    hashes = _proof(http, order_id, c, index)
    try:
        merkle.verify_inclusion(index, c.chunks, merkle.leaf_hash(data), hashes, bytes.fromhex(c.merkle_root))
    except LedgerError as exc:
        raise CheckFailed(f"chunk {index} (bytes {index * c.chunk_size}-{index * c.chunk_size + len(data) - 1}) "
                          f"does not prove against the certificate's Merkle root: {exc}") from None


def check_receipts(http: httpx.Client, order_id: str, vkey: str | None = None) -> tuple[int, int]:
    """Every delivery receipt of the order whose batch is on the ledger, proven against
    its batch's bundle: ``(proven, pending)``. Raises CheckFailed naming the first that
    does not prove."""
    vkey = vkey or _get_json(http, "/v1/ledger/key")["vkey"]
    proven = pending = 0
    checked: dict[str, Any] = {}  # batch id -> its verified document
    cursor: str | None = None
    while True:
        page = _get_json(http, f"/v1/orders/{order_id}/deliveries", limit=500, **({"cursor": cursor} if cursor else {}))
        for item in page["items"]:
            receipt, batch_id = item["receipt"], item["batch"]
            where = f"the receipt of bytes {receipt['range'][0]}-{receipt['range'][1]} sent at {receipt['sent_at']}"
            if receipt.get("order") != order_id:
                raise CheckFailed(f"{where} is about another order ({receipt.get('order')})")
            batch = page["batches"].get(str(batch_id)) if batch_id is not None else None
            if batch is None or batch["bundle"] is None:
                pending += 1
                continue
            if str(batch_id) not in checked:
                report = verify_bundle(batch["bundle"], vkey)
                if report.status == "pending":
                    pending += 1
                    continue
                if report.status != "valid":
                    raise CheckFailed(f"{where}: its batch's ledger bundle is {report.status}: {report.error}")
                document = batch["bundle"]["document"]
                if document.get("order") != order_id:
                    raise CheckFailed(f"{where}: its batch's document is about another order")
                checked[str(batch_id)] = document
            document = checked[str(batch_id)]
            try:
                proof = [base64.b64decode(h, validate=True) for h in item["inclusion_proof"]]
                merkle.verify_inclusion(item["position"], document["receipts"],
                                        merkle.leaf_hash(rfc8785.dumps(receipt)), proof,
                                        bytes.fromhex(document["merkle_root"]))
            except (LedgerError, binascii.Error, TypeError, ValueError) as exc:
                raise CheckFailed(f"{where} does not prove against its batch's Merkle root: {exc}") from None
            proven += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return proven, pending


def _chunks_of(path: Path, chunk_size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def _progress(total: int, label: str, show: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not show, transient=False)


def _stream_into(r: httpx.Response, fh: Any, progress: Any, task: Any) -> int:
    n = 0
    for piece in r.iter_bytes(_PIECE):
        fh.write(piece)
        n += len(piece)
        progress.update(task, advance=len(piece))
    return n


def _marker(out: Path) -> Path:
    return out.with_name(out.name + ".downloading")


def _claim_out(out: Path, order_id: str, c: Commitment | None) -> None:
    """Resume only a download of this order's content: a file already at ``out`` that no
    unfinished download of it left there is never appended to (nor overwritten)."""
    marker = _marker(out)
    mine = json.dumps({"order": order_id, "sha256": c.sha256 if c is not None else None})
    if out.exists() and not (marker.exists() and marker.read_text() == mine):
        if c is not None and out.stat().st_size == c.size:
            return  # complete (or altered since): the checks decide, naming any bad chunk
        raise HttpFailure(f"{out} is already there and is not an unfinished download of order {order_id}: "
                          "give another --out, or remove it")
    marker.write_text(mine)


def fetch_whole(http: httpx.Client, order_id: str, out: Path, c: Commitment | None, revision: int | None,
                show: bool) -> str | None:
    """Download to ``out``, resuming what is there. Returns the ``Repr-Digest`` SHA-256 (hex)."""
    _claim_out(out, order_id, c)
    try:
        return _fetch_whole(http, order_id, out, c, revision, show)
    finally:
        if out.exists() and c is not None and out.stat().st_size >= c.size:
            _marker(out).unlink(missing_ok=True)  # nothing left to resume


def _fetch_whole(http: httpx.Client, order_id: str, out: Path, c: Commitment | None, revision: int | None,
                 show: bool) -> str | None:
    have = out.stat().st_size if out.exists() else 0
    params = {"revision": revision} if revision is not None else None
    headers = {}
    if have and (c is None or have < c.size):
        headers["Range"] = f"bytes={have}-"
        if c is not None:
            headers["If-Range"] = f'"{c.sha256}"'
    elif c is not None and have == c.size:
        return None  # complete already: the checks decide
    path = f"/v1/orders/{order_id}/content"
    try:
        with http.stream("GET", path, params=params, headers=headers) as r:
            if r.status_code == 416 and have:
                return None  # nothing beyond what is there; the checks decide
            if r.status_code not in (200, 206):
                r.read()
                raise HttpFailure(f"GET {path}: {_problem(r)}")
            digest = _repr_digest(r.headers.get("repr-digest"))
            length = int(r.headers.get("content-length", "0"))
            start = 0
            if r.status_code == 206:
                sent = re.match(r"bytes (\d+)-", r.headers.get("content-range", ""))
                if sent is None:
                    raise HttpFailure(f"GET {path}: a partial answer without a Content-Range")
                start = int(sent.group(1))
                if start != have:
                    raise HttpFailure(f"GET {path}: asked to resume at byte {have}, got a range from {start}")
            total = start + length
            with _progress(total, f"order {order_id}", show) as progress, \
                    out.open("r+b" if start else "wb") as fh:
                task = progress.add_task("download", total=total, completed=start)
                fh.seek(start)
                fh.truncate()
                got = _stream_into(r, fh, progress, task)
            if got != length:
                raise HttpFailure(f"GET {path}: the download stopped after {start + got} of {total} bytes; "
                                  "run the command again to resume")
            return digest
    except httpx.HTTPError as exc:
        raise _failed(http, path, exc, "; run the command again to resume") from None


def _repr_digest(header: str | None) -> str | None:
    match = re.search(r"sha-256=:([A-Za-z0-9+/=]+):", header or "")
    return base64.b64decode(match.group(1)).hex() if match else None


def verify_file(http: httpx.Client, order_id: str, out: Path, c: Commitment, show: bool) -> None:
    """Size and SHA-256 against the commitment, then every chunk by its proof (naming
    the first that fails, also when the SHA-256 already did)."""
    size = out.stat().st_size
    sha = hashlib.sha256()
    for chunk in _chunks_of(out, 1 << 20):
        sha.update(chunk)
    whole_ok = size == c.size and sha.hexdigest() == c.sha256
    with _progress(c.chunks, "proofs", show) as progress:
        task = progress.add_task("proofs", total=c.chunks)
        for index, chunk in enumerate(_chunks_of(out, c.chunk_size)):
            if index >= c.chunks:
                break
            check_chunk(http, order_id, c, index, chunk)
            progress.update(task, advance=1)
    if size != c.size:
        raise CheckFailed(f"the file is {size} bytes; the commitment says {c.size}")
    if not whole_ok:
        raise CheckFailed(f"the file's SHA-256 {sha.hexdigest()} is not the commitment's {c.sha256}")


def fetch_range(http: httpx.Client, order_id: str, out: Path, c: Commitment, first: int, last: int,
                show: bool) -> None:
    """Fetch the chunks covering bytes first..last, check each by its proof, write the bytes."""
    if first >= c.size:
        raise CheckFailed(f"--range starts at byte {first}, beyond the content's {c.size} bytes")
    last = min(last, c.size - 1)
    c0, c1 = first // c.chunk_size, last // c.chunk_size
    lo, hi = c0 * c.chunk_size, min((c1 + 1) * c.chunk_size, c.size) - 1
    path = f"/v1/orders/{order_id}/content"
    try:
        r = http.get(path, params={"revision": c.revision}, headers={"Range": f"bytes={lo}-{hi}",
                                                                     "If-Range": f'"{c.sha256}"'})
    except httpx.HTTPError as exc:
        raise _failed(http, path, exc) from None
    if r.status_code not in (200, 206):
        raise HttpFailure(f"GET {path}: {_problem(r)}")
    data = r.content if r.status_code == 206 else r.content[lo:hi + 1]
    if len(data) != hi - lo + 1:
        raise CheckFailed(f"asked for bytes {lo}-{hi}, got {len(data)} bytes")
    with _progress(c1 - c0 + 1, "proofs", show) as progress:
        task = progress.add_task("proofs", total=c1 - c0 + 1)
        for index in range(c0, c1 + 1):
            at = (index - c0) * c.chunk_size
            check_chunk(http, order_id, c, index, data[at:at + c.chunk_size])
            progress.update(task, advance=1)
    out.write_bytes(data[first - lo:last - lo + 1])


def download(http: httpx.Client, order_id: str, out: Path, *, verify: bool = False,
             byte_range: tuple[int, int] | None = None, revision: int | None = None,
             show: bool = True, err: TextIO = sys.stderr, vkey: str | None = None) -> int:
    """The command: returns its exit status, having said why on ``err``."""
    try:
        if byte_range is not None:
            ranged = commitment_for(http, order_id, revision)
            fetch_range(http, order_id, out, ranged, *byte_range, show=show)
            print(f"bytes {byte_range[0]}-{min(byte_range[1], ranged.size - 1)} of revision {ranged.revision} verified "
                  f"against Merkle root {ranged.merkle_root} and written to {out}", file=err)
            return OK
        c = commitment_for(http, order_id, revision) if verify else None
        pinned = c.revision if c is not None else revision
        served_sha = fetch_whole(http, order_id, out, c, pinned, show)
        if served_sha is not None:
            actual = hashlib.sha256()
            for chunk in _chunks_of(out, 1 << 20):
                actual.update(chunk)
            if actual.hexdigest() != served_sha and not verify:
                raise CheckFailed(f"the file's SHA-256 {actual.hexdigest()} is not the Repr-Digest sent "
                                  f"({served_sha}); delete {out} and download again")
        if verify:
            assert c is not None
            verify_file(http, order_id, out, c, show)
            print(f"{out}: {c.size} bytes, SHA-256 {c.sha256} and all {c.chunks} chunks verified against "
                  f"the commitment of revision {c.revision}", file=err)
            proven, pending = check_receipts(http, order_id, vkey)
            print(f"delivery receipts: {proven} proven against their delivery.sent entries on the ledger, "
                  f"{pending} pending (their batch is not on the ledger yet)", file=err)
        else:
            print(f"{out}: downloaded", file=err)
        return OK
    except CheckFailed as exc:
        print(f"verification failed: {exc}", file=err)
        return CHECK_FAILED
    except HttpFailure as exc:
        print(f"error: {exc}", file=err)
        return HTTP_FAILED


def client_for(base_url: str, token: str, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                        timeout=timeout, follow_redirects=False)
