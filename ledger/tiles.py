"""Tiles of the C2SP tlog-tiles spec: paths, entry bundles, hash reads, integration.

A tile of height 8 at level L, index N holds up to 256 consecutive hashes of tree
level 8·L, starting at hash N·256: level-0 tiles hold leaf hashes, and the hashes
of a level-k tile are the roots of complete subtrees of 256^k leaves (the roots of
full level-(k-1) tiles). Levels 8·L+1 .. 8·L+7 are not stored; they are recomputed
from a tile's bottom row (tlog's ``HashFromTile``). A tile with W < 256 hashes is
partial and is named with a ``.p/<W>`` suffix; full tiles never change.

- Paths (tlog-tiles "Merkle Tree" and "Log Entries"): ``tile/<L>/<N>[.p/<W>]`` and
  ``tile/entries/<N>[.p/<W>]``, N in zero-padded 3-digit groups, all but the last
  prefixed ``x`` (1234067 is ``x001/x234/067``).
- Entry bundles: each entry as a big-endian uint16 length, then its bytes.
- ``integrate``: appends leaf hashes and returns the new root and every tile whose
  content changed, reading only the right-edge partial tiles (one per level).
- ``TileMemory``: tiles held in memory, as a ``TileReader`` and as the
  ``merkle.NodeSource`` that RFC 9162 proofs are built from (``merkle.prove_*``);
  ``TileRecorder`` names the tiles a proof reads, from a dry run.

Storage comes in through ``TileReader`` only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal, Protocol

from .errors import MalformedError, MissingTileError
from .merkle import EMPTY_ROOT, HASH_SIZE, sibling_nodes

__all__ = [
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileKey",
    "TileMemory",
    "TileReader",
    "TileRecorder",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "entries_path",
    "integrate",
    "parse_tile_path",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

TileKey = tuple[int, int]
"""(level, index) of a hash tile."""

_sha256 = hashlib.sha256
_NODE = b"\x01"
_FULL = TILE_WIDTH * HASH_SIZE


class TileReader(Protocol):
    """Reads hash tiles by (level, index)."""

    def read_tiles(self, keys: list[TileKey]) -> dict[TileKey, bytes]:
        """Return the current data of each tile asked for: its hashes, 32 bytes each.

        A partial tile has fewer than 256 hashes. A tile that does not exist may be
        left out of the result; callers that need it raise MalformedError.
        """
        ...


# --- paths ---------------------------------------------------------------------------


def _encode_index(n: int) -> str:
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _check_width(width: int) -> None:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width}, want 1..{TILE_WIDTH}")


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Return ``tile/<L>/<N>[.p/<W>]`` for a hash tile; ``.p/<W>`` when width < 256."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level}, want 0..{MAX_LEVEL}")
    if index < 0:
        raise ValueError(f"tile index {index}, want >= 0")
    _check_width(width)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{_encode_index(index)}{suffix}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Return ``tile/entries/<N>[.p/<W>]`` for an entry bundle."""
    if index < 0:
        raise ValueError(f"entry bundle index {index}, want >= 0")
    _check_width(width)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/entries/{_encode_index(index)}{suffix}"


_PATH = re.compile(
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


def parse_tile_path(path: str) -> tuple[int | Literal["entries"], int, int]:
    """Parse a tile or entry bundle path into (level or "entries", index, width).

    Strict: the path must be exactly what ``tile_path``/``entries_path`` produce
    (ASCII digits, no leading zero groups, no leading zeros in L or W, W in 1..255
    after ``.p/``, L in 0..63). Raises MalformedError otherwise.
    """
    if len(path) > 200 or not path.isascii():
        raise MalformedError("malformed tile path")
    m = _PATH.fullmatch(path)
    if m is None:
        raise MalformedError(f"malformed tile path {path!r}")
    index = int(m["index"].replace("x", "").replace("/", ""))
    width = int(m["width"]) if m["width"] else TILE_WIDTH
    if m["width"] and width >= TILE_WIDTH:
        raise MalformedError(f"malformed tile path {path!r}: partial width {width}, want 1..{TILE_WIDTH - 1}")
    level: int | Literal["entries"]
    if m["level"] == "entries":
        level, canonical = "entries", entries_path(index, width)
    else:
        level = int(m["level"])
        if level > MAX_LEVEL:
            raise MalformedError(f"malformed tile path {path!r}: level {level}, want 0..{MAX_LEVEL}")
        canonical = tile_path(level, index, width)
    if canonical != path:  # e.g. x000/067 for 067
        raise MalformedError(f"malformed tile path {path!r}: want {canonical!r}")
    return level, index, width


def tile_width(tree_size: int, level: int, index: int) -> int:
    """Return the width of tile (level, index) in a tree of this size (0 if it has none)."""
    count = tree_size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


# --- entry bundles -------------------------------------------------------------------


def encode_entry_bundle(leaves: Sequence[bytes]) -> bytes:
    """Encode leaves as an entry bundle: per leaf a big-endian uint16 length, then the bytes.

    Raises MalformedError for a leaf over 65,535 bytes or more than 256 leaves.
    """
    if len(leaves) > TILE_WIDTH:
        raise MalformedError(f"entry bundle of {len(leaves)} leaves, want at most {TILE_WIDTH}")
    parts = []
    for i, leaf in enumerate(leaves):
        if len(leaf) > MAX_ENTRY_SIZE:
            raise MalformedError(f"leaf {i} is {len(leaf)} bytes, want at most {MAX_ENTRY_SIZE}")
        parts.append(len(leaf).to_bytes(2, "big"))
        parts.append(bytes(leaf))
    return b"".join(parts)


def decode_entry_bundle(data: bytes, want: int | None = None) -> list[bytes]:
    """Decode an entry bundle into its leaves; ``want``, if given, is the expected count.

    Strict: a truncated length or entry, more than 256 entries, or a count other
    than ``want`` raises MalformedError.
    """
    leaves: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 2:
            raise MalformedError(f"entry bundle: truncated length at byte {pos}")
        n = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if end - pos < n:
            raise MalformedError(f"entry bundle: entry {len(leaves)} needs {n} bytes, {end - pos} left")
        leaves.append(bytes(data[pos : pos + n]))
        pos += n
        if len(leaves) > TILE_WIDTH:
            raise MalformedError(f"entry bundle: more than {TILE_WIDTH} entries")
    if want is not None and len(leaves) != want:
        raise MalformedError(f"entry bundle has {len(leaves)} entries, want {want}")
    return leaves


# --- hashes inside tiles -------------------------------------------------------------


def _subtree_hash(data: bytes | memoryview) -> bytes:
    """Hash of the perfect subtree whose bottom row is data (a power-of-two count of hashes)."""
    row = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(row) > 1:
        row = [_sha256(_NODE + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
    return bytes(row[0])


def _expand(data: bytes) -> tuple[bytes, ...]:
    """Every level of a tile: ``levels[k]`` holds, concatenated, the hashes at height k
    inside the tile whose 2**k bottom hashes are all present (``levels[0]`` is the
    tile itself; for a full tile, ``levels[8]`` is its root)."""
    if not data or len(data) % HASH_SIZE or len(data) > _FULL:
        raise MalformedError(f"tile is {len(data)} bytes, want 1 to {TILE_WIDTH} hashes of {HASH_SIZE}")
    levels = [bytes(data)]
    row = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
    while len(row) > 1:
        row = [_sha256(_NODE + row[i] + row[i + 1]).digest() for i in range(0, len(row) - 1, 2)]
        levels.append(b"".join(row))
    return tuple(levels)


assert TILE_HEIGHT == 8 and HASH_SIZE == 32  # TileMemory.node's shifts rely on both


class TileMemory:
    """Hash tiles held in memory: a ``TileReader``, and a ``merkle.NodeSource`` for proofs.

    Each tile is kept expanded (every complete node inside it, computed once): a
    proof then costs no storage read and hashes only to join the subtrees at the
    tree's right edge. A tile's first W hashes never change, so the longest data
    seen of a tile answers every tree that needs at most that width, and shorter
    data never replaces it. With a ``limit``, the tile loaded longest ago goes first.
    ``tiles`` maps each key to its expanded tile, oldest first; ``held`` starts it.
    """

    def __init__(self, limit: int | None = None, held: dict[TileKey, tuple[bytes, ...]] | None = None) -> None:
        self.limit = limit
        self.tiles: dict[TileKey, tuple[bytes, ...]] = dict(held or {})  # insertion order: oldest first

    def node(self, level: int, n: int) -> bytes:
        """The root of leaves [n * 2**level, (n + 1) * 2**level); MissingTileError
        when the tile holding it is not held, or not enough of it."""
        height = level & 7  # level % TILE_HEIGHT, and below hashes of 32 bytes: this is the hot path
        shift = 8 - height
        key = (level >> 3, n >> shift)
        try:
            at = (n & ((1 << shift) - 1)) << 5
            found = self.tiles[key][height][at:at + 32]
        except (KeyError, IndexError):
            raise MissingTileError(key) from None
        if not found:  # the tile held is shorter than this node needs
            raise MissingTileError(key)
        return found

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]:
        """``merkle.NodeSource.siblings``: the siblings of leaf ``index``'s ancestors at
        levels [start, stop), taken a tile at a time (the siblings of one tile row lie in
        one tile). MissingTileError as ``node``."""
        out = []
        tiles = self.tiles
        level = start
        while level < stop:
            row = level >> 3
            key = (row, index >> ((row + 1) << 3))
            held = tiles.get(key)
            if held is None:
                raise MissingTileError(key)
            end = min(stop, (row + 1) << 3)
            try:
                for lv in range(level, end):
                    height = lv & 7
                    at = (((index >> lv) ^ 1) & ((1 << (8 - height)) - 1)) << 5
                    found = held[height][at:at + 32]
                    if not found:
                        raise MissingTileError(key)
                    out.append(found)
            except IndexError:
                raise MissingTileError(key) from None
            level = end
        return out

    def read_tiles(self, keys: list[TileKey]) -> dict[TileKey, bytes]:
        """``TileReader``: the data of each tile held, as long as it was seen."""
        return {k: self.tiles[k][0] for k in keys if k in self.tiles}

    def keep(self, key: TileKey, data: bytes) -> None:
        """Hold the data of tile ``key`` unless longer data of it is held."""
        held = self.tiles.get(key)
        if held is None or len(held[0]) < len(data):
            self.adopt(key, _expand(data))

    def adopt(self, key: TileKey, expanded: tuple[bytes, ...]) -> None:
        """Hold an expanded tile (from another memory) unless a longer one of it is held."""
        held = self.tiles.get(key)
        if held is not None and len(held[0]) >= len(expanded[0]):
            return
        self.tiles.pop(key, None)  # re-inserted: now the newest
        self.tiles[key] = expanded
        if self.limit is not None:
            while len(self.tiles) > self.limit:
                del self.tiles[next(iter(self.tiles))]


class TileRecorder:
    """A ``merkle.NodeSource`` that answers zeros and notes the tiles asked for, so
    that a proof's dry run names every tile the real one reads."""

    def __init__(self) -> None:
        self.keys: set[TileKey] = set()

    def node(self, level: int, n: int) -> bytes:
        tl, height = divmod(level, TILE_HEIGHT)
        self.keys.add((tl, n >> (TILE_HEIGHT - height)))
        return bytes(HASH_SIZE)

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]:
        return sibling_nodes(self, index, start, stop)


# --- integration ---------------------------------------------------------------------


def _edge_hashes(data: bytes) -> list[bytes]:
    """Perfect subtree hashes of a tile's row, left to right (one per set bit of its width)."""
    out = []
    pos, w = 0, len(data) // HASH_SIZE
    mv = memoryview(data)
    for bit in reversed(range(TILE_HEIGHT + 1)):
        if w & (1 << bit):
            end = pos + (HASH_SIZE << bit)
            out.append(_subtree_hash(mv[pos:end]))
            pos = end
    return out


def integrate(
    old_size: int, leaf_hashes: Sequence[bytes], reader: TileReader
) -> tuple[int, bytes, dict[TileKey, bytes]]:
    """Append leaf hashes to the tree of ``old_size`` whose tiles ``reader`` serves.

    Returns ``(new_size, new_root, changed)`` where ``changed`` maps (level, index)
    to the full new data of every tile whose content changed: grown partial tiles,
    new full and partial tiles, and new tiles at upper levels. Reads, in one
    ``read_tiles`` call, only the right-edge partial tile of each level (at most one
    per level). Costs about one hash per new leaf. With no leaves, returns the
    current root and no tiles. Raises MalformedError for a missing tile or one whose
    width does not match ``old_size``.
    """
    if old_size < 0:
        raise ValueError(f"invalid tree size {old_size}")
    for i, h in enumerate(leaf_hashes):
        if len(h) != HASH_SIZE:
            raise MalformedError(f"leaf hash {i} is {len(h)} bytes, want {HASH_SIZE}")
    new_size = old_size + len(leaf_hashes)

    edge_keys = []
    level = 0
    while (count := old_size >> (TILE_HEIGHT * level)) > 0:
        if count % TILE_WIDTH:
            edge_keys.append((level, count // TILE_WIDTH))
        level += 1
    existing = reader.read_tiles(edge_keys) if edge_keys else {}

    changed: dict[TileKey, bytes] = {}
    edges: list[list[bytes]] = []  # per level: right-edge subtree hashes, left to right
    carry: list[bytes] = list(leaf_hashes)  # new hashes at this level's bottom row
    level = 0
    while new_size >> (TILE_HEIGHT * level) > 0:
        old_count = old_size >> (TILE_HEIGHT * level)
        first = old_count // TILE_WIDTH
        w_old = old_count % TILE_WIDTH
        prefix = b""
        if w_old:
            prefix = existing.get((level, first), b"")
            if len(prefix) != w_old * HASH_SIZE:
                raise MalformedError(
                    f"tile {tile_path(level, first, w_old)} has {len(prefix)} bytes, want {w_old * HASH_SIZE}"
                )
        if carry:
            row = prefix + b"".join(carry)
            nxt = []
            for off in range(0, len(row), _FULL):
                chunk = row[off : off + _FULL]
                changed[(level, first + off // _FULL)] = chunk
                if len(chunk) == _FULL:
                    nxt.append(_subtree_hash(memoryview(chunk)))
            tail = row[len(row) - len(row) % _FULL :]
            carry = nxt
        else:
            tail = prefix
        edges.append(_edge_hashes(tail))
        level += 1

    if new_size == 0:
        return 0, EMPTY_ROOT, changed
    subtrees = [h for level_edges in reversed(edges) for h in level_edges]
    r = subtrees[-1]
    for h in reversed(subtrees[:-1]):
        r = _sha256(_NODE + h + r).digest()
    return new_size, r, changed
