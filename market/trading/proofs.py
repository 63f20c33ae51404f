"""Per-chunk inclusion proofs of delivered content (docs/API.md ``GET /v1/orders/{id}/content/proof``).

RFC 9162 inclusion proof of chunk N in the Merkle tree whose root is in the
registration certificate, so a buyer can check any range of a large asset against the
certificate without downloading the rest. The blob format stores no leaf hashes: the
first proof of a revision reads and hashes it once (checked against the committed
root); the tree is then kept per process (``TREE_CACHE_BYTES``, least recently used out).
"""

import asyncio
import base64
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle
from market.core.context import Ctx
from market.core.errors import Unprocessable
from market.registry.models import AssetRevision
from market.storage import BlobCorrupted, BlobStore
from market.trading.delivery import check_access, check_download, choose_revision

TREE_CACHE_BYTES = 64 << 20  # chunk trees kept in memory for proofs, per process


# -- proofs -------------------------------------------------------------------------


class ChunkTree:
    """Every level of the Merkle tree over a revision's chunks: a ``merkle.NodeSource``."""

    def __init__(self, leaves: list[bytes]) -> None:
        level = leaves
        self.levels = [level]
        while len(level) > 1:
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)
        self.size = len(leaves)
        self.nbytes = sum(len(lv) for lv in self.levels) * merkle.HASH_SIZE

    def node(self, level: int, n: int) -> bytes:
        return self.levels[level][n]

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]:
        return merkle.sibling_nodes(self, index, start, stop)

    def root(self) -> bytes:
        return merkle.tree_root(self.size, self)


_trees: "OrderedDict[str, ChunkTree]" = OrderedDict()
_tree_bytes = 0
_tree_locks: dict[str, asyncio.Lock] = {}


def _remember(blob_id: str, tree: ChunkTree) -> None:
    global _tree_bytes
    _trees[blob_id] = tree
    _tree_bytes += tree.nbytes
    while _tree_bytes > TREE_CACHE_BYTES and len(_trees) > 1:
        _, old = _trees.popitem(last=False)
        _tree_bytes -= old.nbytes


def _leaf_hashes(chunks: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(c) for c in chunks]


@dataclass(frozen=True)
class _Commitment:
    blob_id: str
    chunk_size: int
    merkle_root: str


async def chunk_tree(blobs: BlobStore, rev: "AssetRevision | _Commitment", data_key: bytes) -> ChunkTree:
    """The revision's chunk tree, from memory or by reading the whole blob once."""
    tree = _trees.get(rev.blob_id)
    if tree is not None:
        _trees.move_to_end(rev.blob_id)
        return tree
    lock = _tree_locks.setdefault(rev.blob_id, asyncio.Lock())
    try:
        async with lock:
            tree = _trees.get(rev.blob_id)
            if tree is not None:
                return tree
            leaves: list[bytes] = []
            batch: list[bytes] = []
            per_batch = max(1, (1 << 20) // rev.chunk_size)
            # A whole read yields each chunk whole, one piece per chunk.
            async for piece in blobs.open_range(rev.blob_id, data_key):
                batch.append(piece)
                if len(batch) >= per_batch:
                    leaves += await anyio.to_thread.run_sync(_leaf_hashes, batch)
                    batch = []
            if batch:
                leaves += await anyio.to_thread.run_sync(_leaf_hashes, batch)
            tree = await anyio.to_thread.run_sync(ChunkTree, leaves)
            if tree.root().hex() != rev.merkle_root:
                raise BlobCorrupted(f"blob {rev.blob_id} does not match its commitment's Merkle root")
            _remember(rev.blob_id, tree)
            return tree
    finally:
        if not lock.locked():
            _tree_locks.pop(rev.blob_id, None)


async def proof(session: AsyncSession, ctx: Ctx, order_id: str, chunk: int, wanted: int | None) -> dict[str, Any]:
    """The inclusion proof of chunk ``chunk`` of the delivered revision."""
    order, asset = await check_access(session, ctx, order_id)
    check_download(order)
    rev = await choose_revision(session, ctx.services.ledger, order, asset, wanted)
    n = -(-rev.size // rev.chunk_size)
    if not 0 <= chunk < n:
        raise Unprocessable(f"chunk {chunk} is outside the content's {n} chunks (0 to {n - 1})",
                            kind="chunk-out-of-range")
    data_key = ctx.services.content_key().unwrap(asset.id, asset.wrapped_key)
    answer = {"chunk": chunk, "chunk_size": rev.chunk_size, "size": rev.size, "merkle_root": rev.merkle_root,
              "revision": rev.revision}
    commitment = _Commitment(rev.blob_id, rev.chunk_size, rev.merkle_root)
    await session.rollback()  # no transaction is held while the blob is read (the rows expire)
    tree = await chunk_tree(ctx.services.blobs, commitment, data_key)
    hashes = merkle.prove_inclusion(chunk, tree.size, tree)
    return {**answer, "hashes": [base64.b64encode(h).decode() for h in hashes]}


__all__ = ["TREE_CACHE_BYTES", "ChunkTree", "chunk_tree", "proof"]
