"""The documents behind confidential ledger entries, for regulators (DESIGN §4.3,
LEDGER.md §2): ``GET /v1/oversight/documents?start=&limit=``.

Each trade entry (``trade.*``, ``delivery.*``, ``payout.*``) holds only the
``document_sha256`` of its salted document; the document is kept in ``trade_documents``.
A page lists, in index order from ``start``, every such integrated entry with the
document whose hash it holds (``null`` when the market keeps none: a regulator's
replay reports it as missing). Entries still pending have no index and are not listed.

Bounded work per request: at most ``SCAN_WINDOW`` indexes are walked (by primary key,
narrowed to the subjects trade entries have: ``order:…`` and ``payout:…``), at most
``limit`` entries are returned, and their documents are read in one query by the
unique ``document_sha256``. ``next`` is the index to continue from, or null at the end
of the log; a page may hold fewer than ``limit`` items (even none) and still have a
``next`` when a window held few trade entries.
"""

import json
from typing import Any

from sqlalchemy import or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import parse_entry
from ledger.errors import LedgerError
from ledger.store import Leaf
from market.accounts.schemas import Role
from market.context import Ctx
from market.trading.models import TradeDocument

__all__ = ["CONFIDENTIAL_PREFIXES", "DEFAULT_LIMIT", "MAX_LIMIT", "SCAN_WINDOW", "is_confidential", "page"]

CONFIDENTIAL_PREFIXES = ("trade.", "delivery.", "payout.")
SUBJECT_PREFIXES = ("order:", "payout:")  # LEDGER.md §2: the subjects trade entries have
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
SCAN_WINDOW = 20_000  # ledger indexes walked per request at most


def is_confidential(entry_type: str) -> bool:
    return entry_type.startswith(CONFIDENTIAL_PREFIXES)


def _trade_subject() -> Any:
    return or_(*(Leaf.subject.startswith(p, autoescape=True) for p in SUBJECT_PREFIXES))  # type: ignore[attr-defined]


async def page(session: AsyncSession, ctx: Ctx, start: int, limit: int) -> dict[str, Any]:
    """One page: ``{"items": [{"index", "document"}], "next"}``. Regulators only.

    Requires 0 <= start and 1 <= limit <= MAX_LIMIT (the route checks both)."""
    ctx.user.require(Role.regulator)
    end = start + SCAN_WINDOW
    rows = (await session.execute(
        select(Leaf.idx, Leaf.leaf)
        .where(Leaf.idx >= start, Leaf.idx < end, _trade_subject())  # type: ignore[arg-type,operator]
        .order_by(Leaf.idx).limit(limit)  # type: ignore[arg-type]
    )).all()
    wanted: list[tuple[int, str | None]] = []
    for index, leaf in rows:
        try:
            entry = parse_entry(bytes(leaf))
        except LedgerError:
            continue  # not an entry at all; the log verifier reports it
        if not is_confidential(entry["type"]):
            continue
        digest = entry["data"].get("document_sha256")
        wanted.append((index, digest if isinstance(digest, str) else None))
    found = await _documents(session, [d for _, d in wanted if d is not None])
    items = [{"index": index, "document": found.get(digest) if digest is not None else None}
             for index, digest in wanted]
    if len(rows) == limit:
        next_index: int | None = rows[-1][0] + 1
    else:  # the window held fewer: go on past it if the log does
        beyond = (await session.execute(select(Leaf.idx).where(Leaf.idx >= end).limit(1))).first()  # type: ignore[arg-type,operator]
        next_index = end if beyond is not None else None
    return {"items": items, "next": next_index}


async def _documents(session: AsyncSession, digests: list[str]) -> dict[str, Any]:
    """The stored documents with these hashes, parsed, by hash (one query on the unique index)."""
    if not digests:
        return {}
    rows = (await session.execute(
        select(TradeDocument.document_sha256, TradeDocument.document)
        .where(TradeDocument.document_sha256.in_(digests))  # type: ignore[attr-defined]
    )).all()
    return {digest: _parsed(text) for digest, text in rows}


def _parsed(text: str) -> Any:
    """The stored JSON; the text itself if it is not JSON (its hash then fails the check)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
