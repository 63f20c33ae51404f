"""Ledger HTTP (docs/API.md "Ledger"; docs/LEDGER.md §5 tiles): public, read-only but for cosignatures."""

import base64
import hashlib
import re
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import entry as entries
from ledger import merkle, tiles
from ledger.errors import MalformedError
from ledger.log import MAX_INDEX
from market.core.config import Settings
from market.core.errors import NotFound, Unprocessable

TEXT = "text/plain; charset=utf-8"
IMMUTABLE = "public, max-age=31536000, immutable"
# How old the checkpoint served from memory may be. Every process refreshes it each
# integration round (MARKET_LEDGER_INTEGRATE_INTERVAL, 0.2 s by default); a request
# finding it older reads the database. With the integrator's interval this keeps the
# promise that an appended entry shows in the checkpoint within 1 s (docs/API.md), whichever
# process integrated it.
CHECKPOINT_MAX_AGE = 0.5


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def entry_json(index: int | None, leaf: bytes) -> dict[str, Any]:
    return {
        "index": index,
        "leaf": b64(leaf),
        "leaf_hash": b64(merkle.leaf_hash(leaf)),
        "entry": entries.parse_entry(leaf),
    }


_SUBJECT_CURSOR = re.compile(r"^(-1|0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,18})$")


async def subject_page(db: AsyncSession, ledger: Any, subject: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of every entry about ``subject``: integrated ones in index order, then
    pending ones (``index`` null), never cut short. The cursor holds the last index and
    the last pending sequence number shown; an entry listed as pending may appear again,
    integrated, on a later page (same ``leaf_hash``), but none is ever skipped."""
    after = (-1, 0)
    if cursor is not None:
        match = _SUBJECT_CURSOR.match(cursor)
        if match is None:
            raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor")
        after = (int(match.group(1)), int(match.group(2)))
    rows = await ledger.by_subject(db, subject, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last_index = max((pos for i, pos, _ in rows if i is not None), default=after[0])
        last_seq = max((pos for i, pos, _ in rows if i is None), default=after[1])
        next_cursor = f"{last_index}.{last_seq}"
    return {"items": [entry_json(i, leaf) for i, _, leaf in rows], "next_cursor": next_cursor}


async def _checkpoint_response(request: Request) -> Response[str]:
    services = request.app.state.services
    cp = await services.ledger.latest_checkpoint(services.read_sessionmaker, CHECKPOINT_MAX_AGE)
    return Response(cp.text, media_type=TEXT, headers={"Cache-Control": "no-cache"})


class LedgerController(Controller):
    path = "/v1/ledger"
    tags = ["ledger"]

    @get("/key", summary="The market's ledger key and vkey")
    async def key(self, request: Request) -> dict[str, str]:
        ledger = request.app.state.services.ledger
        return {"origin": ledger.origin, "vkey": ledger.vkey, "public_key": b64(ledger.public_key)}

    @get("/checkpoint", media_type=TEXT, summary="Latest signed checkpoint (C2SP tlog-checkpoint)")
    async def checkpoint(self, request: Request) -> Response[str]:
        return await _checkpoint_response(request)

    @get("/entries/{index:int}", summary="One integrated entry")
    async def entry(self, request: Request, db: AsyncSession, index: int) -> dict[str, Any]:
        return entry_json(index, await request.app.state.services.ledger.leaf(db, index))

    @get("/entries", summary="Entries in index order, or every entry about one subject")
    async def entries(
        self,
        request: Request,
        db: AsyncSession,
        start: Annotated[int, Parameter(ge=0, le=MAX_INDEX)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=40, pattern=r"^-?[0-9]+(\.[0-9]+)?$")] = None,
        subject: Annotated[str | None, Parameter(max_length=120)] = None,
    ) -> dict[str, Any]:
        """Index order from ``start`` (or ``cursor``, the index to go on from), in pages
        of ``limit``; or, with ``subject``, every entry about it, pending ones last, paged."""
        ledger = request.app.state.services.ledger
        if subject is not None:
            return await subject_page(db, ledger, subject, limit, cursor)
        if cursor is not None:
            if not cursor.isdigit() or int(cursor) > MAX_INDEX:
                raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor")
            start = int(cursor)
        rows = await ledger.leaves(db, start, limit)
        next_start = rows[-1][0] + 1 if len(rows) == limit else None
        return {"items": [entry_json(i, leaf) for i, leaf in rows],
                "next_cursor": None if next_start is None else str(next_start), "next_start": next_start}

    @get("/proofs/inclusion", summary="RFC 9162 inclusion proof")
    async def inclusion(
        self, request: Request, index: Annotated[int, Parameter(ge=0, le=MAX_INDEX)],
        size: Annotated[int, Parameter(ge=1, le=MAX_INDEX)],
    ) -> dict[str, Any]:
        # Proofs take the session factory: most are answered from tiles in memory.
        services = request.app.state.services
        root, proof = await services.ledger.inclusion_proof(services.read_sessionmaker, index, size)
        return {"index": index, "size": size, "root": b64(root), "hashes": [b64(h) for h in proof]}

    @get("/proofs/consistency", summary="RFC 9162 consistency proof")
    async def consistency(
        self, request: Request, first: Annotated[int, Parameter(ge=0, le=MAX_INDEX)],
        second: Annotated[int, Parameter(ge=0, le=MAX_INDEX)],
    ) -> dict[str, Any]:
        services = request.app.state.services
        proof = await services.ledger.consistency_proof(services.read_sessionmaker, first, second)
        return {"first": first, "second": second, "hashes": [b64(h) for h in proof]}

    @post("/cosignatures", status_code=200, summary="A witness's cosignature on a checkpoint (C2SP tlog-cosignature)")
    async def cosign(self, request: Request, db: AsyncSession, settings: Settings) -> Response[str]:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Unprocessable("the body must be a UTF-8 signed note", kind="malformed-note") from None
        ledger = request.app.state.services.ledger
        await ledger.add_cosignatures(db, text, settings.witness_vkeys)  # errors: market.core.errors.ledger_problem
        await db.commit()
        cp = await ledger.checkpoint(db)
        return Response(cp.text, media_type=TEXT)


class TlogController(Controller):
    """C2SP tlog-tiles under /v1/ledger/tlog/: full tiles are cacheable forever."""

    path = "/v1/ledger/tlog"
    tags = ["ledger"]

    @get("/checkpoint", media_type=TEXT, summary="Latest signed checkpoint")
    async def checkpoint(self, request: Request) -> Response[str]:
        return await _checkpoint_response(request)

    @get("/tile/{path:path}", media_type="application/octet-stream", summary="A hash tile or an entry bundle")
    async def tile(self, request: Request, path: str) -> Response[bytes]:
        try:
            level, index, width = tiles.parse_tile_path("tile/" + path.lstrip("/"))
        except MalformedError as exc:
            raise NotFound(f"not a tile path: {exc}") from None
        ledger = request.app.state.services.ledger
        if level == "entries":
            async with request.app.state.services.read_sessionmaker() as db:
                data = await ledger.entry_bundle(db, index, width)
        else:  # hash tiles usually come from the memory kept for proofs
            data = await ledger.tile(request.app.state.services.read_sessionmaker, level, index, width)
        cache = IMMUTABLE if width == tiles.TILE_WIDTH else "no-cache"
        etag = hashlib.sha256(data).hexdigest()[:32]
        return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache, "ETag": f'"{etag}"'})
