"""The log itself: append inside a caller's transaction, integrate, serve, prove.

- ``append`` signs an entry (docs/LEDGER.md §2) and inserts it as pending in the caller's
  open transaction; it commits or rolls back with the business change.
- ``integrate`` takes pending entries in order, gives them contiguous indexes, updates
  the hash tiles (C2SP tlog-tiles, height 8), signs a checkpoint (C2SP tlog-checkpoint)
  and keeps it, all in one transaction: a crash leaves the old state or the new one.
  On PostgreSQL a transaction-level advisory lock admits one integrator at a time
  across every process and machine; on SQLite the database write lock does.
- Proofs (RFC 9162 §2.1.3, §2.1.4) read O(log n) perfect-subtree hashes from tiles
  kept in memory (``ledger.proofs.TreeMemory``); a tile not yet held is read from the
  database once.
- The latest checkpoint is remembered with the time it was read (every read of it and
  every integration refreshes it); ``latest_checkpoint`` serves it from memory while
  it is younger than a bound the caller chooses, and reads the database otherwise.

The tile arithmetic is pure (``ledger.tiles``); integration feeds it through
``AsyncSession.run_sync`` with a synchronous tile reader over the same transaction.
"""

import asyncio
import base64
import time as _time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import BigInteger, Integer, Select, bindparam, delete, insert, literal, select, text, union_all
from sqlalchemy.orm import Session
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import entry as entries
from ledger import merkle, note, tiles
from ledger._time import utcnow
from ledger.errors import LedgerError, MalformedError, VerificationError
from ledger.proofs import MAX_INDEX, NotFoundError, Sessions, TreeMemory, session_from, tile_keys
from ledger.store import CheckpointRow, Cosignature, Leaf, PendingEntry, Tile, table_of

__all__ = ["MAX_INDEX", "Log", "NotFoundError", "SignedCheckpoint", "UnknownCheckpointError"]

ADVISORY_LOCK_KEY = 0x6C65646765720001  # "ledger" + 1: one integrator per database
MAX_LEAF_BYTES = 65535
MAX_BATCH = 8192  # entries one integration takes at most
_ADD_PENDING = insert(table_of(PendingEntry))  # built once (building it per call walked it for its cache key)
# The reads a contract or certificate makes on every fetch, built once for the same reason.
_HEAD = (select(col(CheckpointRow.size), col(CheckpointRow.root), col(CheckpointRow.note))
         .order_by(col(CheckpointRow.size).desc()).limit(1))
_COSIGNATURES = (select(col(Cosignature.line)).where(col(Cosignature.size) == bindparam("size"))
                 .order_by(col(Cosignature.key_id)))
_INDEX_OF = select(col(Leaf.idx)).where(col(Leaf.subject) == bindparam("subject"), col(Leaf.leaf) == bindparam("leaf"))


class UnknownCheckpointError(LedgerError):
    """A checkpoint the market never signed (POST /v1/ledger/cosignatures → 409)."""


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    text: str  # the signed note, cosignature lines included


class _SyncTiles:
    """``tiles.TileReader`` over a synchronous session (inside ``run_sync``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def read_tiles(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        rows = self.session.execute(
            select(col(Tile.level), col(Tile.idx), col(Tile.data)).where(tile_keys(keys))
        ).all()
        return {(r[0], r[1]): bytes(r[2]) for r in rows}


class Log:
    """One market's log: its signing key and origin, over sessions of one database.

    ``tile_memory`` bounds the full tiles kept in memory for proofs (about 16 KiB
    each; 4,096 cover a million entries).
    """

    def __init__(
        self, private_key: Ed25519PrivateKey, origin: str, *, tile_memory: int = 4096,
        run: Callable[[AsyncSession, Any, Any], Awaitable[Any]] | None = None) -> None:
        self.origin = origin
        # How an append's insert runs in the caller's transaction: on the session's
        # connection, or through ``run`` (the market gives its ``db.run``, which hands it
        # straight to SQLite's writer).
        self._run = run
        self.signer = note.Signer(origin, private_key)
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = note.Verifier.from_vkey(self.signer.vkey)
        # Proofs and tiles are answered from memory where it can (ledger.proofs).
        self._tree = TreeMemory(tile_memory, self.size)
        # The newest checkpoint read or made, and the monotonic time the database was
        # known to hold it (taken before the read began, so never flattering).
        self._latest: SignedCheckpoint | None = None
        self._latest_at = float("-inf")
        self._latest_lock: asyncio.Lock | None = None

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    # -- writing -----------------------------------------------------------------

    async def append(
        self, session: AsyncSession, *, type: str, subject: str, actor: str, data: dict[str, Any],
        time: datetime | None = None,
    ) -> dict[str, Any]:
        """Sign one entry and add it as pending inside the caller's transaction."""
        return (await self.append_many(session, [(type, subject, actor, data)], time=time))[0]

    async def append_many(
        self, session: AsyncSession, items: Sequence[tuple[str, str, str, dict[str, Any]]],
        time: datetime | None = None,
    ) -> list[dict[str, Any]]:
        now = time or utcnow()
        signed: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for type_, subject, actor, data in items:
            entry, leaf = entries.sign_entry(self.signer, type_, subject, actor, data, now)
            if len(leaf) > MAX_LEAF_BYTES:
                raise MalformedError(f"entry is {len(leaf)} bytes, want at most {MAX_LEAF_BYTES}")
            signed.append(entry)
            rows.append({"subject": subject, "leaf": leaf})
        # Core on the session's connection: no ORM execution work (nothing the session holds
        # unwritten is needed first: pending entries refer to no other row).
        if self._run is not None:
            await self._run(session, _ADD_PENDING, rows[0] if len(rows) == 1 else rows)
        else:
            await (await session.connection()).execute(_ADD_PENDING, rows)
        return signed

    async def integrate(self, session: AsyncSession, *, max_batch: int = MAX_BATCH) -> int:
        """Integrate up to ``max_batch`` pending entries in one transaction and commit.

        Returns how many entries were integrated (0 when another integrator holds the
        lock or nothing is pending). The session must have no open transaction.
        """
        try:
            if session.get_bind().dialect.name == "postgresql":
                got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})).scalar()
                if not got:
                    await session.rollback()
                    return 0
            head = await self._head(session)
            if head is None:
                head = self._sign(0, merkle.EMPTY_ROOT)
                session.add(CheckpointRow(size=0, root=head.root, note=head.text, created_at=utcnow()))
            pending = (
                await session.execute(
                    select(col(PendingEntry.seq), col(PendingEntry.subject), col(PendingEntry.leaf))
                    .order_by(col(PendingEntry.seq))
                    .limit(max_batch)
                )
            ).all()
            if not pending:
                await session.commit()
                return 0
            old_size = head.size
            leaf_hashes = [merkle.leaf_hash(bytes(r[2])) for r in pending]

            def work(sync: Session) -> tuple[int, bytes, dict[tuple[int, int], bytes]]:
                return tiles.integrate(old_size, leaf_hashes, _SyncTiles(sync))

            new_size, root, changed = await session.run_sync(work)
            if changed:
                await session.execute(delete(Tile).where(tile_keys(list(changed))))
                await session.execute(
                    insert(table_of(Tile)), [{"level": k[0], "idx": k[1], "data": v} for k, v in changed.items()]
                )
            await session.execute(
                insert(table_of(Leaf)),
                [{"idx": old_size + i, "subject": r[1], "leaf": bytes(r[2])} for i, r in enumerate(pending)],
            )
            seqs = [r[0] for r in pending]
            for start in range(0, len(seqs), 1000):
                await session.execute(delete(PendingEntry).where(col(PendingEntry.seq).in_(seqs[start:start + 1000])))
            signed = self._sign(new_size, root)
            session.add(CheckpointRow(size=new_size, root=root, note=signed.text, created_at=utcnow()))
            await session.commit()
            self._remember(signed, _time.monotonic())  # a new size has no cosignatures yet
            return len(pending)
        except BaseException:
            await session.rollback()
            raise

    async def ensure_started(self, session: AsyncSession) -> None:
        """Sign the size-0 checkpoint if the log has none yet (idempotent)."""
        if await self._head(session) is None:
            await self.integrate(session)
        else:
            await session.rollback()

    def _sign(self, size: int, root: bytes) -> SignedCheckpoint:
        body = note.Checkpoint(self.origin, size, root).body()
        return SignedCheckpoint(size, root, self.signer.sign_note(body))

    # -- reading -----------------------------------------------------------------

    async def _rows(self, session: AsyncSession, statement: Any, parameters: dict[str, Any]) -> Sequence[Any]:
        """A prebuilt Core query's rows, through ``run`` when given (no ORM work around it)."""
        if self._run is not None:
            return (await self._run(session, statement, parameters)).all()  # type: ignore[no-any-return]
        return (await session.execute(statement, parameters)).all()

    async def _head(self, session: AsyncSession) -> SignedCheckpoint | None:
        rows = await self._rows(session, _HEAD, {})
        return None if not rows else SignedCheckpoint(rows[0][0], bytes(rows[0][1]), rows[0][2])

    async def checkpoint(self, session: AsyncSession) -> SignedCheckpoint:
        """The latest signed checkpoint with its witnesses' cosignature lines appended,
        read from the database (and remembered for ``latest_checkpoint`` when this read
        began the session's transaction, so that its age is known)."""
        started = _time.monotonic() if not session.in_transaction() else float("-inf")
        head = await self._head(session)
        if head is None:
            head = self._sign(0, merkle.EMPTY_ROOT)  # same bytes every time: Ed25519 is deterministic
            self._remember(head, started)
            return head
        lines = [row[0] for row in await self._rows(session, _COSIGNATURES, {"size": head.size})]
        cp = SignedCheckpoint(head.size, head.root, head.text + "".join(line + "\n" for line in lines))
        self._remember(cp, started)
        return cp

    def _remember(self, cp: SignedCheckpoint, read_at: float) -> None:
        latest = self._latest
        if latest is None or cp.size > latest.size or (cp.size == latest.size and read_at >= self._latest_at):
            self._latest = cp
            self._latest_at = max(self._latest_at, read_at)

    async def latest_checkpoint(self, sessions: "Sessions", max_age: float) -> SignedCheckpoint:
        """``checkpoint`` as of at most ``max_age`` seconds ago: from memory when it is
        that fresh, else read through ``sessions`` (one reader at a time; the others
        wait for its answer rather than all querying at once)."""
        if self._latest is not None and _time.monotonic() - self._latest_at <= max_age:
            return self._latest
        if self._latest_lock is None:
            self._latest_lock = asyncio.Lock()
        async with self._latest_lock:
            if self._latest is not None and _time.monotonic() - self._latest_at <= max_age:
                return self._latest
            async with session_from(sessions) as session:
                return await self.checkpoint(session)

    def remembered(self, index: int, max_age: float) -> SignedCheckpoint | None:
        """The checkpoint ``latest_checkpoint`` would answer from memory, when it is at most
        ``max_age`` seconds old and covers entry ``index``; else None (read ``checkpoint``).
        Any signed checkpoint that covers an entry proves it: a bundle needs no newer one."""
        latest = self._latest
        if latest is not None and latest.size > index and _time.monotonic() - self._latest_at <= max_age:
            return latest
        return None

    async def size(self, session: AsyncSession) -> int:
        head = await self._head(session)
        return 0 if head is None else head.size

    async def leaf(self, session: AsyncSession, index: int) -> bytes:
        if not 0 <= index <= MAX_INDEX:
            raise NotFoundError(f"no entry {index}")
        row = (await session.execute(select(col(Leaf.leaf)).where(col(Leaf.idx) == index))).first()
        if row is None:
            raise NotFoundError(f"no entry {index}")
        return bytes(row[0])

    async def leaves(self, session: AsyncSession, start: int, limit: int) -> list[tuple[int, bytes]]:
        if start > MAX_INDEX:
            return []
        rows = (
            await session.execute(
                select(col(Leaf.idx), col(Leaf.leaf)).where(col(Leaf.idx) >= start).order_by(col(Leaf.idx)).limit(limit)
            )
        ).all()
        return [(r[0], bytes(r[1])) for r in rows]

    async def by_subject(self, session: AsyncSession, subject: str, limit: int = 1000,
                         after: tuple[int, int] = (-1, 0)) -> list[tuple[int | None, int, bytes]]:
        """Entries about ``subject``: integrated ones with index > ``after[0]`` in index
        order, then pending ones with sequence > ``after[1]`` (index None); at most
        ``limit``. Rows are ``(index, position, leaf)`` where position is the index, or
        the pending sequence number, to page on from.

        One statement, so one snapshot: an entry being integrated meanwhile is seen
        exactly once, either pending or integrated (PostgreSQL reads committed data
        per statement).
        """
        integrated: Select[Any, Any, Any, Any] = select(
            col(Leaf.idx).label("idx"), col(Leaf.leaf).label("leaf"), literal(0, Integer).label("waiting"),
            col(Leaf.idx).label("ord"),
        ).where(col(Leaf.subject) == subject, col(Leaf.idx) > after[0])
        waiting: Select[Any, Any, Any, Any] = select(
            literal(None, BigInteger).label("idx"), col(PendingEntry.leaf).label("leaf"),
            literal(1, Integer).label("waiting"), col(PendingEntry.seq).label("ord"),
        ).where(col(PendingEntry.subject) == subject, col(PendingEntry.seq) > after[1])
        both = union_all(integrated, waiting).subquery()
        rows = (await session.execute(select(both.c.idx, both.c.ord, both.c.leaf)
                                      .order_by(both.c.waiting, both.c.ord).limit(limit))).all()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    async def index_of(self, session: AsyncSession, subject: str, leaf: bytes) -> int | None:
        rows = await self._rows(session, _INDEX_OF, {"subject": subject, "leaf": leaf})
        return rows[0][0] if rows else None

    async def warm(self, session: AsyncSession) -> int:
        """Load the tree's tiles into memory (a proof server does this at start); see ``TreeMemory.warm``."""
        return await self._tree.warm(session)

    async def inclusion_proof(self, sessions: Sessions, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """(root of tree ``size``, audit path of leaf ``index``); see ``TreeMemory.inclusion_proof``."""
        self._tree_knows_latest()
        return await self._tree.inclusion_proof(sessions, index, size)

    async def consistency_proof(self, sessions: Sessions, first: int, second: int) -> list[bytes]:
        """Proof that tree ``first`` is a prefix of tree ``second``; see ``TreeMemory.consistency_proof``."""
        self._tree_knows_latest()
        return await self._tree.consistency_proof(sessions, first, second)

    def _tree_knows_latest(self) -> None:
        """The proofs' tree is at least as large as the latest checkpoint this process holds
        (read from the log or signed by its integration, whose tiles were committed with
        it), so a proof up to that size does not read the log's size again."""
        latest = self._latest
        if latest is not None and latest.size > self._tree.known_size:
            self._tree.known_size = latest.size

    async def tile(self, sessions: Sessions, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of a hash tile; see ``TreeMemory.tile``."""
        return await self._tree.tile(sessions, level, index, width)

    async def entry_bundle(self, session: AsyncSession, index: int, width: int) -> bytes:
        start = index * tiles.TILE_WIDTH
        if start > MAX_INDEX:
            raise NotFoundError(f"no entry tile {index}")
        rows = await self.leaves(session, start, width)
        if len(rows) != width:
            raise NotFoundError(f"no entry tile {index} of width {width}")
        return tiles.encode_entry_bundle([leaf for _, leaf in rows])

    # -- witnesses ---------------------------------------------------------------

    async def add_cosignatures(self, session: AsyncSession, text_: str, witness_vkeys: Iterable[str]) -> int:
        """Store the witness cosignatures on a checkpoint this market signed.

        Raises ``UnknownCheckpointError`` when the market never signed that checkpoint,
        ``VerificationError`` for a bad or unknown witness signature. Returns the number
        of cosignatures stored. Does not commit.
        """
        witnesses = [note.Verifier.from_vkey(v) for v in witness_vkeys]
        try:
            cp, _ = note.open_checkpoint(text_, self.verifier)
        except MalformedError:
            raise
        except VerificationError as exc:
            raise UnknownCheckpointError(f"the market's signature on this checkpoint does not verify: {exc}") from exc
        row = await session.get(CheckpointRow, cp.size)
        if row is None or bytes(row.root) != cp.root:
            raise UnknownCheckpointError(f"the market never signed a checkpoint of size {cp.size} with this root")
        opened = note.open_note(text_, witnesses)  # UnknownKeyError / BadSignatureError → 422
        for sig in opened.verified_by:
            line = "\u2014 " + sig.name + " " + base64.b64encode(sig.key_id + sig.signature).decode()
            existing = await session.get(Cosignature, (cp.size, sig.key_id.hex()))
            if existing is not None:
                await session.delete(existing)
                await session.flush()
            session.add(
                Cosignature(size=cp.size, key_id=sig.key_id.hex(), name=sig.name, line=line, timestamp=sig.timestamp or 0)
            )
        return len(opened.verified_by)
