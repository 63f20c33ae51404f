"""Replay (DESIGN §4.3, "trust but verify"): a regulator checks, from outside the market,
that the trades it is shown are the trades the public log committed to.

``replay(url, vkey, token)``:

1. verifies the public log with the ledger library's own verifier (``ledger.verify_log``,
   the code behind ``python -m ledger verify-log``: the checkpoint's signature, every
   entry's canonical form and signature, every hash tile and the root), keeping, from
   the very bytes it verified, each confidential entry (``trade.*``, ``delivery.*``,
   ``payout.*``, docs/LEDGER.md §2) below the checkpoint's size;
2. reads every document through ``GET /v1/oversight/documents`` (all pages) and checks
   each against its entry: SHA-256 of the RFC 8785 canonical JSON of the document must
   equal the entry's ``data.document_sha256``. Findings: ``missing`` (an entry with no
   document), ``extra`` (a document for no confidential entry, or served twice),
   ``altered`` (a hash mismatch, or a document naming another event or subject), and
   ``entry`` (a confidential entry not shaped as docs/LEDGER.md §2 says). Salted details
   (``audit.salted``: a reason's text, a draft's commitment, a count of conflicts) are
   checked the same way: every digest under a key ending in ``_salted_sha256`` in a
   verified entry's data, or in a verified confidential document, must be served (in the
   item's ``salted``) as a document with that SHA-256, naming the entry's event and
   subject; one served for no such key is ``extra``;
3. recomputes the overview from the verified documents alone — settled orders from the
   ``trade.settled`` contracts (price, currency, buyer, provider, asset category and
   grade, ``settled_at``), refunds from the ``trade.refunded`` documents, counted on the
   day of their signed entry and under the dimensions of the contract they undo — and
   compares it with ``GET /v1/oversight/overview`` over a period covering the whole log:
   every total and series value that differs is a ``total`` finding.

4. with the regulator authority's vkey (``--authority``), checks every regulator decision
   in the log against the enrollments that authority signed (``replay_acts``): a
   decision signed by a key it did not enroll, or not signed at all, is an ``act``
   finding; an enrollment that does not verify is an ``enrollment`` finding.

Registrations are not trades (no document holds them) and are not compared. The
replay is exact on a quiet market; trades made while it runs may show as differences
(run it again). It reports rather than raises, except when it cannot finish at all
(``ReplayError``: the server unreachable, the token refused, a response not as
docs/API.md says).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import rfc8785

from ledger.entry import parse_entry
from ledger.errors import LedgerError
from ledger.note import log_verifier
from ledger.sources import HttpSource
from ledger.tiles import TILE_WIDTH, decode_entry_bundle, parse_tile_path
from ledger.verify import verify_log
from market.oversight.replay_acts import (
    ACT_ENTRY_TYPES,
    ENROLLED,
    ActRef,
    check_acts,
    refs_from_documents,
)
from market.oversight.replay_totals import (
    Entry,
    Finding,
    ReplayError,
    compare,
    period_of,
    recompute,
)

__all__ = ["Finding", "ReplayError", "ReplayReport", "format_report", "recompute", "replay"]

CONFIDENTIAL_PREFIXES = ("trade.", "delivery.", "payout.")
REGULATOR_TYPES = (ENROLLED, *ACT_ENTRY_TYPES)
SALTED_SUFFIX = "_salted_sha256"  # keys naming salted details (market.core.audit.salted)
_TYPE_MARKS = tuple(f'"type":"{p}'.encode() for p in (*CONFIDENTIAL_PREFIXES, *REGULATOR_TYPES))
_SALTED_MARK = f'{SALTED_SUFFIX}":'.encode()
PAGE = 500  # documents per request (the API's maximum)
MAX_PAGE_BYTES = 64 << 20
MAX_OVERVIEW_BYTES = 64 << 20


@dataclass
class ReplayReport:
    ok: bool = False
    url: str = ""
    log_ok: bool = False
    size: int | None = None
    root: str | None = None
    entries_checked: int = 0
    confidential_entries: int = 0
    documents_checked: int = 0
    salted_checked: int = 0  # salted details (reasons, draft commitments, conflict counts) checked
    totals_compared: bool = False
    acts_checked: int | None = None  # regulator decisions that hold (None: no --authority given)
    period: dict[str, str] | None = None
    recomputed: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def salted_digests(data: Any) -> tuple[str, ...]:
    """The digests a verified entry's data or document names under ``*_salted_sha256`` keys."""
    if not isinstance(data, dict):
        return ()
    return tuple(v for k, v in sorted(data.items()) if isinstance(k, str) and k.endswith(SALTED_SUFFIX)
                 and isinstance(v, str))


# -- step 1: the log, verified, and its confidential entries ---------------------------------


class _RecordingSource(HttpSource):
    """An HttpSource that keeps, from every entry bundle it hands the verifier, the
    confidential entries (by index) and the first entry's time. Only indexes below the
    verified checkpoint's size are used afterwards, so what is kept is what was verified."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        super().__init__(base_url, client)
        self.confidential: dict[int, Entry] = {}
        self.enrollments: dict[int, tuple[str, dict[str, Any]]] = {}
        self.acts: dict[int, ActRef] = {}
        self.salted: dict[int, Entry] = {}  # other entries naming salted details
        self.first_time: str | None = None

    def read(self, path: str, max_size: int) -> bytes | None:
        data = super().read(path, max_size)
        if data is not None and path.startswith("tile/entries/"):
            self._keep(path, data)
        return data

    def _keep(self, path: str, data: bytes) -> None:
        try:
            _, tile, width = parse_tile_path(path)
            leaves = decode_entry_bundle(data, width if width < TILE_WIDTH else None)
        except (LedgerError, ValueError):
            return  # the verifier reports it
        for n, leaf in enumerate(leaves):
            index = tile * TILE_WIDTH + n
            if index == 0:
                self.first_time = _time_of(leaf)
            if not any(mark in leaf for mark in _TYPE_MARKS) and _SALTED_MARK not in leaf:
                continue
            try:
                entry = parse_entry(leaf)
            except LedgerError:
                continue
            if entry["type"] == ENROLLED:
                self.enrollments[index] = (entry["subject"], entry["data"])
                continue
            if entry["type"] in ACT_ENTRY_TYPES:
                self.acts[index] = ActRef(index, entry["type"], entry["subject"], entry["actor"],
                                          entry["data"].get("act"))
                continue
            if not entry["type"].startswith(CONFIDENTIAL_PREFIXES):
                named = salted_digests(entry["data"])
                if named:
                    self.salted[index] = Entry(entry["type"], entry["subject"], entry["time"], None, named)
                continue
            data_ = entry["data"]
            digest = data_.get("document_sha256") if entry["actor"] == "market" and set(data_) == {
                "document_sha256"} else None
            if not (isinstance(digest, str) and len(digest) == 64):
                digest = None
            self.confidential[index] = Entry(entry["type"], entry["subject"], entry["time"], digest)


def _time_of(leaf: bytes) -> str | None:
    try:
        return str(parse_entry(leaf)["time"])
    except LedgerError:
        return None


# -- step 2: the documents -------------------------------------------------------------------


def document_digest(document: Any) -> str:
    """Hex SHA-256 of the RFC 8785 canonical JSON of ``document`` (docs/LEDGER.md §2)."""
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def _get_json(client: httpx.Client, url: str, token: str, params: dict[str, Any], max_bytes: int) -> Any:
    try:
        r = client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as e:
        raise ReplayError(f"GET {url}: {type(e).__name__}; check the URL and that the market is running") from None
    if r.status_code != 200:
        detail = ""
        try:
            body = r.json()
            detail = f" ({body.get('title', '')}: {body.get('detail', '')})" if isinstance(body, dict) else ""
        except ValueError:
            pass
        raise ReplayError(f"GET {url}: HTTP {r.status_code}{detail}")
    if len(r.content) > max_bytes:
        raise ReplayError(f"GET {url}: response over {max_bytes} bytes")
    try:
        return r.json()
    except ValueError:
        raise ReplayError(f"GET {url}: not JSON") from None


def _check_salted(index: int, entry: Entry, named: tuple[str, ...], served: Any, report: ReplayReport) -> None:
    """The salted details ``named`` by entry ``index`` (or its verified document) against
    the item's ``salted`` map (digest → document)."""
    if served is None:
        served = {}
    if not isinstance(served, dict):
        raise ReplayError("GET /v1/oversight/documents: want \"salted\" an object of documents by digest")
    where = f"entry {index} ({entry.type} {entry.subject})"
    for digest in sorted(set(served) - set(named)):
        report.findings.append(Finding("extra", f"{where}: a salted document {digest} was served that it does not "
                                       "name", index, entry.type, entry.subject))
    for digest in named:
        document = served.get(digest)
        if document is None:
            report.findings.append(Finding("missing", f"{where}: no document served for the salted detail {digest}",
                                           index, entry.type, entry.subject))
            continue
        got = document_digest(document)
        if got != digest:
            report.findings.append(Finding("altered", f"{where}: a salted document's SHA-256 {got} differs from "
                                           f"the {digest} it names", index, entry.type, entry.subject))
        elif not isinstance(document, dict) or (document.get("event"), document.get("subject")) != (
                entry.type, entry.subject):
            report.findings.append(Finding("altered", f"{where}: its salted document {digest} names another event "
                                           "or subject", index, entry.type, entry.subject))
        else:
            report.salted_checked += 1


def _check_documents(client: httpx.Client, base: str, token: str, size: int, entries: dict[int, Entry],
                     report: ReplayReport, salted: dict[int, Entry] | None = None) -> dict[int, dict[str, Any]]:
    """Read every page of documents; return the verified ones by index, adding findings."""
    salted = salted or {}
    verified: dict[int, dict[str, Any]] = {}
    served: set[int] = set()
    start: int | None = 0
    while start is not None and start < size:
        page = _get_json(client, f"{base}/v1/oversight/documents", token, {"start": start, "limit": PAGE},
                         MAX_PAGE_BYTES)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise ReplayError("GET /v1/oversight/documents: want {\"items\": [...], \"next\": …}")
        following = page.get("next")
        if following is not None and (not isinstance(following, int) or isinstance(following, bool)
                                      or following <= start):
            raise ReplayError(f"GET /v1/oversight/documents?start={start}: next {following!r} does not go forward")
        for item in page["items"]:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int) or "document" not in item:
                raise ReplayError("GET /v1/oversight/documents: want items {\"index\", \"document\"}")
            index, document = item["index"], item["document"]
            if index >= size:
                continue  # integrated after the checkpoint verified: not part of this replay
            entry = entries.get(index)
            if index in served:
                report.findings.append(Finding("extra", f"entry {index}: a document was served twice", index))
                continue
            served.add(index)
            if entry is None and index in salted:
                if document is not None:
                    report.findings.append(Finding(
                        "extra", f"entry {index}: a document was served for an entry that is not a confidential "
                        "trade entry", index))
                _check_salted(index, salted[index], salted[index].salted, item.get("salted"), report)
                continue
            if entry is None:
                report.findings.append(Finding(
                    "extra", f"entry {index}: a document was served for an entry that is not a confidential "
                    f"trade entry", index))
                continue
            if document is None:
                continue  # reported as missing below
            report.documents_checked += 1
            if entry.digest is None:
                continue  # the entry itself is reported
            got = document_digest(document)
            if got != entry.digest:
                report.findings.append(Finding(
                    "altered", f"entry {index} ({entry.type} {entry.subject}): the document's SHA-256 {got} "
                    f"differs from the entry's {entry.digest}", index, entry.type, entry.subject))
                continue
            if not isinstance(document, dict) or (document.get("event"), document.get("subject")) != (
                    entry.type, entry.subject):
                report.findings.append(Finding(
                    "altered", f"entry {index} ({entry.type} {entry.subject}): its document names another event "
                    "or subject", index, entry.type, entry.subject))
                continue
            verified[index] = document
            _check_salted(index, entry, salted_digests(document), item.get("salted"), report)
        start = following
    for index, entry in sorted(entries.items()):
        if entry.digest is None:
            report.findings.append(Finding(
                "entry", f"entry {index} ({entry.type} {entry.subject}): not a confidential entry of docs/LEDGER.md §2 "
                "(actor market, data only document_sha256)", index, entry.type, entry.subject))
        elif index not in verified and not any(f.index == index and f.kind == "altered" for f in report.findings):
            report.findings.append(Finding(
                "missing", f"entry {index} ({entry.type} {entry.subject}): no document served for it",
                index, entry.type, entry.subject))
    for index, entry in sorted(salted.items()):
        if index not in served:
            report.findings.append(Finding(
                "missing", f"entry {index} ({entry.type} {entry.subject}): no document served for its salted "
                "details", index, entry.type, entry.subject))
    return verified


# -- step 3: the overview, recomputed and compared -------------------------------------------


def replay(url: str, vkey: str, token: str, *, client: httpx.Client | None = None, workers: int | None = None,
           today: Callable[[], date] | None = None, authority: str | None = None) -> ReplayReport:
    """Verify the log at ``url``, check every document against it, recompute and compare the
    overview, and with ``authority`` (the regulator authority's vkey) check every
    regulator decision's signature and enrollment. Returns the report (``ok`` when
    nothing differs); raises ReplayError when it cannot finish."""
    base = url.rstrip("/")
    try:
        log_verifier(vkey)
    except LedgerError as e:
        raise ReplayError(f"--vkey is not the log's verifier key ({e}); the market serves it at /v1/ledger/key") \
            from None
    if authority is not None:
        from market.accounts.enrollment import EnrollmentError, authority_verifier

        try:
            authority_verifier(authority)
        except EnrollmentError as e:
            raise ReplayError(f"--authority: {e}") from None
    report = ReplayReport(url=base)
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(60.0), follow_redirects=False)
    try:
        try:
            source = _RecordingSource(base, http)
        except LedgerError as e:
            raise ReplayError(str(e)) from None
        log = verify_log(source, vkey, workers=workers)
        report.log_ok, report.size, report.entries_checked = log.ok, log.size, log.entries_checked
        report.root = log.root.hex() if log.root is not None else None
        if not log.ok:
            report.findings.append(Finding("log", f"the public log does not verify: {log.error}", log.failed_entry))
            return report
        size = log.size or 0
        entries = {i: e for i, e in source.confidential.items() if i < size}
        report.confidential_entries = len(entries)
        salted = {i: e for i, e in source.salted.items() if i < size}
        documents = _check_documents(http, base, token, size, entries, report, salted)
        since, until = period_of(source.first_time, entries, (today or (lambda: datetime.now(UTC).date()))())
        report.period = {"from": since, "to": until}
        recomputed = recompute(documents, entries, since, until)
        report.recomputed = recomputed
        served = _get_json(http, f"{base}/v1/oversight/overview", token, {"from": since, "to": until},
                           MAX_OVERVIEW_BYTES)
        if not isinstance(served, dict):
            raise ReplayError("GET /v1/oversight/overview: want a JSON object")
        report.findings.extend(compare(served, recomputed))
        report.totals_compared = True
        report.notes.append("registrations are not trades and are not compared")
        if authority is None:
            report.notes.append("regulator acts were not checked (no --authority)")
        else:
            def finding(kind: str, message: str, index: int | None, type_: str | None, subject: str | None) -> None:
                report.findings.append(Finding(kind, message, index, type_, subject))

            refs = sorted([*source.acts.values(), *refs_from_documents(documents, entries)], key=lambda r: r.index)
            refs = [r for r in refs if r.index < size]
            enrollments = {i: e for i, e in source.enrollments.items() if i < size}
            report.acts_checked = check_acts(http, base, token, authority, _get_json, enrollments, refs, finding)
        report.ok = not report.findings
        return report
    finally:
        if own:
            http.close()


def format_report(report: ReplayReport) -> list[str]:
    """One line per finding, then a summary line."""
    lines = [f"{f.kind}: {f.message}" for f in report.findings]
    counts: dict[str, int] = defaultdict(int)
    for f in report.findings:
        counts[f.kind] += 1
    if not report.log_ok:
        lines.append(f"FAILED: {report.url}: the log did not verify; nothing else was checked")
        return lines
    what = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no differences"
    period = f" over {report.period['from']}..{report.period['to']}" if report.period else ""
    verdict = "ok" if report.ok else "DIFFERENCES"
    acts = "" if report.acts_checked is None else f"{report.acts_checked} regulator acts hold; "
    lines.append(
        f"{verdict}: log of {report.size} entries verified (root {report.root}); "
        f"{report.confidential_entries} confidential entries, {report.documents_checked} documents and "
        f"{report.salted_checked} salted details checked; {acts}"
        f"totals {'compared' if report.totals_compared else 'not compared'}{period}; {what}")
    return lines


def dumps(report: ReplayReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2, sort_keys=True)
