"""The documents behind confidential ledger entries and salted details, for regulators
(DESIGN §4.3, docs/LEDGER.md §2): ``GET /v1/oversight/documents?start=&limit=``.

Two kinds of entry point at documents the market keeps (``trade_documents``):

- a confidential entry (``trade.*``, ``delivery.*``, ``payout.*``) holds only the
  ``document_sha256`` of its salted document;
- any entry, or the document of a confidential one, may name salted details (a reason's
  text, a draft's commitment, a count of conflicts: ``audit.salted``) by keys ending in
  ``_salted_sha256``.

A page lists, in index order from ``start``, every integrated entry of either kind as
``{"index", "document", "salted"}``: ``document`` is the confidential entry's document
(``null`` when the market keeps none — a regulator's replay reports it as missing — and
for an entry that is not confidential), ``salted`` maps each salted digest the entry or
its document names to its document (``null`` when the market keeps none; ``{}`` when it
names none). Entries still pending have no index and are not listed.

Bounded work per request: at most ``SCAN_WINDOW`` indexes are walked (by primary key, in
chunks of ``CHUNK``; a leaf is parsed only when its bytes show a confidential type or a
salted key), at most ``limit`` entries are returned, and the documents are read by
their unique ``document_sha256``. ``next`` is the index to continue from, or null at
the end of the log; a page may hold fewer than ``limit`` items (even none) and still
have a ``next`` when a window held few such entries.
"""

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import parse_entry
from ledger.errors import LedgerError
from ledger.store import Leaf
from market.accounts.schemas import Role
from market.core.audit import SALTED_SUFFIX, TradeDocument
from market.core.context import Ctx

__all__ = ["CONFIDENTIAL_PREFIXES", "DEFAULT_LIMIT", "MAX_LIMIT", "SCAN_WINDOW", "is_confidential", "page",
           "salted_digests"]

CONFIDENTIAL_PREFIXES = ("trade.", "delivery.", "payout.")
_MARKS = (*(f'"type":"{p}'.encode() for p in CONFIDENTIAL_PREFIXES), f'{SALTED_SUFFIX}":'.encode())
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
SCAN_WINDOW = 20_000  # ledger indexes walked per request at most
CHUNK = 2_000  # leaves read per query


def is_confidential(entry_type: str) -> bool:
    return entry_type.startswith(CONFIDENTIAL_PREFIXES)


def salted_digests(data: Any) -> list[str]:
    """The salted documents' digests named by ``data`` (entry data or a document): the
    string values of its top-level keys ending in ``_salted_sha256``."""
    if not isinstance(data, dict):
        return []
    return [v for k, v in sorted(data.items()) if isinstance(k, str) and k.endswith(SALTED_SUFFIX)
            and isinstance(v, str)]


async def page(session: AsyncSession, ctx: Ctx, start: int, limit: int) -> dict[str, Any]:
    """One page: ``{"items": [{"index", "document", "salted"}], "next"}``. Regulators only.

    Requires 0 <= start and 1 <= limit <= MAX_LIMIT (the route checks both)."""
    ctx.user.require(Role.regulator)
    end = start + SCAN_WINDOW
    wanted: list[tuple[int, str | None, list[str]]] = []  # index, document digest, salted digests
    position = start
    while position < end and len(wanted) < limit:
        rows = (await session.execute(
            select(col(Leaf.idx), col(Leaf.leaf)).where(col(Leaf.idx) >= position, col(Leaf.idx) < end)
            .order_by(col(Leaf.idx)).limit(CHUNK)
        )).all()
        if not rows:
            position = end
            break
        for index, leaf in rows:
            position = index + 1
            raw = bytes(leaf)
            if not any(mark in raw for mark in _MARKS):
                continue
            try:
                entry = parse_entry(raw)
            except LedgerError:
                continue  # not an entry at all; the log verifier reports it
            confidential = is_confidential(entry["type"])
            named = salted_digests(entry["data"])
            if not confidential and not named:
                continue
            digest = entry["data"].get("document_sha256") if confidential else None
            wanted.append((index, digest if isinstance(digest, str) else None, named))
            if len(wanted) == limit:
                break
        if len(rows) < CHUNK and len(wanted) < limit:
            position = end  # nothing more in the window
            break
    found = await _documents(session, [d for _, d, _ in wanted if d is not None])
    # The salted details named inside the confidential documents, then all of them at once.
    for n, (index, digest, named) in enumerate(wanted):
        inner = salted_digests(found.get(digest)) if digest is not None else []
        wanted[n] = (index, digest, named + [d for d in inner if d not in named])
    details = await _documents(session, [d for _, _, named in wanted for d in named])
    items = [{"index": index, "document": found.get(digest) if digest is not None else None,
              "salted": {d: details.get(d) for d in named}} for index, digest, named in wanted]
    beyond = (await session.execute(select(col(Leaf.idx)).where(col(Leaf.idx) >= position).limit(1))).first()
    return {"items": items, "next": position if beyond is not None else None}


async def _documents(session: AsyncSession, digests: list[str]) -> dict[str, Any]:
    """The stored documents with these hashes, parsed, by hash (one query on the unique index)."""
    if not digests:
        return {}
    rows = (await session.execute(
        select(col(TradeDocument.document_sha256), col(TradeDocument.document))
        .where(col(TradeDocument.document_sha256).in_(digests))
    )).all()
    return {digest: _parsed(text) for digest, text in rows}


def _parsed(text: str) -> Any:
    """The stored JSON; the text itself if it is not JSON (its hash then fails the check)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
