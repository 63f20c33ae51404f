"""Proofs and hash tiles served from memory (RFC 9162 §2.1.3, §2.1.4; C2SP tlog-tiles).

Tree sizes only grow and a tile's first hashes never change, so a size and tile data
once read stay true: ``TreeMemory`` remembers the largest size it has seen and the tiles
it has read (``tiles.TileMemory``, bounded), answers most proofs with no database at
all, and opens a session only for what it has not seen yet. ``ledger.log.Log`` keeps
one and answers its proof and tile requests through it.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession as _AnyAsyncSession
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle, tiles
from ledger.errors import LedgerError, MissingTileError
from ledger.store import Tile

__all__ = ["MAX_INDEX", "NotFoundError", "Sessions", "TreeMemory", "session_from", "tile_keys"]

MAX_INDEX = 2**53 - 1  # no log gets near it; larger numbers are refused before any SQL

_P = TypeVar("_P")  # what a proof function returns


class NotFoundError(LedgerError):
    """An index, size or tile beyond what the log holds."""


Sessions = AsyncSession | Callable[[], AbstractAsyncContextManager[AsyncSession]]


@asynccontextmanager
async def session_from(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """The session given, or a new one from the factory given (closed after)."""
    if isinstance(sessions, _AnyAsyncSession):
        yield sessions
    else:
        async with sessions() as session:
            yield session


def tile_keys(keys: list[tuple[int, int]]) -> Any:
    """``(level, idx) IN keys`` as an OR of equalities: SQLite plans a row-value IN
    list as a full scan of the tiles table, but uses the primary key for this form."""
    return or_(*(and_(col(Tile.level) == level, col(Tile.idx) == idx) for level, idx in keys))


class TreeMemory:
    """The tree's size and tiles as far as this process has read them; ``size`` reads the
    log's current size (the log's newest checkpoint) when a proof needs a larger tree."""

    def __init__(self, tile_memory: int, size: Callable[[AsyncSession], Awaitable[int]]) -> None:
        self.memory = tiles.TileMemory(tile_memory)
        self.known_size = 0
        self._size = size

    async def prove(self, sessions: "Sessions", need: int, fn: Callable[[int, merkle.NodeSource], _P]) -> _P:
        """Run ``fn(current size, nodes)`` for a tree of at least ``need`` leaves.

        Tree sizes only grow and tile contents only grow at their end, so a size and
        tile data once read stay true: the log remembers the largest size it has seen
        and the tiles it has read (``tiles.TileMemory``), and opens a session only for what
        it has not seen yet. ``sessions`` is a session or a session factory.
        """
        if need <= self.known_size:
            try:  # most proofs need nothing but memory: no session, no database
                return fn(self.known_size, self.memory)
            except MissingTileError:
                pass
        async with session_from(sessions) as session:
            if need > self.known_size:
                self.known_size = max(self.known_size, await self._size(session))
            current = self.known_size
            recorder = tiles.TileRecorder()
            fn(current, recorder)  # raises NotFoundError for sizes beyond the log
            # Answer from exactly the tiles this proof reads (memory may be too small to
            # hold them all): those held, and the rest (or a held one found short) read once.
            held = self.memory.tiles
            read = tiles.TileMemory(len(recorder.keys), {k: held[k] for k in recorder.keys if k in held})
            wanted = [k for k in sorted(recorder.keys) if k not in read.tiles]
            fetched: set[tuple[int, int]] = set()
            while True:
                if wanted:
                    rows = await session.execute(select(col(Tile.level), col(Tile.idx), col(Tile.data)).where(tile_keys(wanted)))
                    for level, idx, data in rows:
                        read.keep((level, idx), bytes(data))
                        self.memory.adopt((level, idx), read.tiles[(level, idx)])
                    fetched.update(wanted)
                try:
                    return fn(current, read)
                except MissingTileError as exc:
                    if exc.key in fetched:
                        raise NotFoundError(f"tile {exc.key[0]}/{exc.key[1]} is missing or short for size {current}") from None
                    wanted = [exc.key]

    async def warm(self, session: AsyncSession) -> int:
        """Load the tree's tiles into memory, top levels first, up to the memory's bound
        (a proof server does this at start). Returns the number of tiles loaded."""
        self.known_size = max(self.known_size, await self._size(session))
        rows = await session.execute(
            select(col(Tile.level), col(Tile.idx), col(Tile.data)).order_by(col(Tile.level).desc(), col(Tile.idx))
            .limit(self.memory.limit)
        )
        count = 0
        for level, idx, data in rows:
            self.memory.keep((level, idx), bytes(data))
            count += 1
        return count

    async def inclusion_proof(self, sessions: "Sessions", index: int, size: int) -> tuple[bytes, list[bytes]]:
        """(root of tree ``size``, audit path of leaf ``index``). Requires 0 <= index < size <= current.

        ``sessions``: a session, or a session factory (opened only when memory lacks a tile)."""

        def fn(current: int, nodes: merkle.NodeSource) -> tuple[bytes, list[bytes]]:
            if not 0 <= index < size <= current:
                raise NotFoundError(f"want 0 <= index < size <= {current}, got index {index}, size {size}")
            return merkle.prove_inclusion_and_root(index, size, nodes)

        return await self.prove(sessions, size, fn)

    async def consistency_proof(self, sessions: "Sessions", first: int, second: int) -> list[bytes]:
        """Proof that tree ``first`` is a prefix of tree ``second``. Requires 0 <= first <= second <= current.

        ``sessions``: a session, or a session factory (opened only when memory lacks a tile)."""

        def fn(current: int, nodes: merkle.NodeSource) -> list[bytes]:
            if not 0 <= first <= second <= current:
                raise NotFoundError(f"want 0 <= first <= second <= {current}, got {first}, {second}")
            return merkle.prove_consistency(first, second, nodes)

        return await self.prove(sessions, second, fn)

    async def tile(self, sessions: Sessions, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of a hash tile: from memory when a tile at least
        that wide is held (a tile's first hashes never change), else from the database."""
        if index > MAX_INDEX:
            raise NotFoundError(f"no tile {level}/{index}")
        want = width * merkle.HASH_SIZE
        held = self.memory.tiles.get((level, index))
        if held is not None and len(held[0]) >= want:
            return held[0][:want]
        async with session_from(sessions) as session:
            data = (
                await session.execute(select(col(Tile.data)).where(col(Tile.level) == level, col(Tile.idx) == index))
            ).scalar()
        if data is None or len(data) < want:
            raise NotFoundError(f"no tile {level}/{index} of width {width}")
        self.memory.keep((level, index), bytes(data))
        return bytes(data[:want])
