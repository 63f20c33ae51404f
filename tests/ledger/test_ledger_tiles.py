"""C2SP tlog-tiles: path codec, entry bundles, integration, and proofs from tiles in memory."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle, tiles
from ledger.errors import MalformedError, MissingTileError
from ledger.tiles import (
    TILE_WIDTH,
    TileMemory,
    TileRecorder,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    integrate,
    parse_tile_path,
    tile_path,
)


class CountingTiles(TileMemory):
    """Tiles in memory that record what was read through ``read_tiles``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[tuple[int, int]]] = []

    def read_tiles(self, keys):
        self.calls.append(list(keys))
        return super().read_tiles(keys)

    def data(self) -> dict[tuple[int, int], bytes]:
        return {k: expanded[0] for k, expanded in self.tiles.items()}

    def update(self, changed: dict[tuple[int, int], bytes]) -> None:
        for key, data in changed.items():
            self.keep(key, data)


def leaf(i: int) -> bytes:
    return merkle.leaf_hash(i.to_bytes(4, "big"))


LEAVES = [leaf(i) for i in range(70_000)]


def grow(batches: list[int]) -> tuple[CountingTiles, int, bytes]:
    store, size, root = CountingTiles(), 0, merkle.EMPTY_ROOT
    for b in batches:
        size, root, changed = integrate(size, LEAVES[size : size + b], store)
        store.update(changed)
    return store, size, root


def tile_keys(tree_size: int) -> list[tuple[int, int]]:
    """Every hash tile (level, index) of a tree of this size, level by level."""
    keys = []
    level = 0
    while (count := tree_size >> (8 * level)) > 0:
        keys += [(level, index) for index in range(-(-count // TILE_WIDTH))]
        level += 1
    return keys


# --- paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),
        (0, 1234067, 17, "tile/0/x001/x234/067.p/17"),
        (1, 999, 255, "tile/1/999.p/255"),
        (2, 1000, 1, "tile/2/x001/000.p/1"),
        (63, 5, 256, "tile/63/005"),
    ],
)
def test_tile_paths(level, index, width, path):
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == (level, index, width)


def test_entries_paths():
    assert entries_path(0, 3) == "tile/entries/000.p/3"
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert parse_tile_path("tile/entries/x001/x234/067.p/9") == ("entries", 1234067, 9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 63), st.integers(0, 10**15), st.integers(1, 256))
def test_path_round_trip(level, index, width):
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)
    assert parse_tile_path(entries_path(index, width)) == ("entries", index, width)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/0/1",
        "tile/0/0001",
        "tile/0/x000/067",  # leading zero group
        "tile/0/x001",
        "tile/0/001/002",
        "tile/0/001x/002",
        "tile/00/001",
        "tile/01/001",
        "tile/64/001",
        "tile/-1/001",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/07",
        "tile/0/001.p/",
        "tile/0/001.p/1/",
        "tile/0/001/",
        "/tile/0/001",
        "tile/0/００1",
        "tile/0/0a1",
        "tile/entry/001",
        "tile/entries/001.p/300",
        "tile/0/001.P/3",
        "tile/0/001 ",
        "tile/0/001\n",
        "tile//001",
    ],
)
def test_bad_paths_rejected(path):
    with pytest.raises(MalformedError):
        parse_tile_path(path)


def test_tile_width():
    assert tiles.tile_width(300, 0, 0) == 256
    assert tiles.tile_width(300, 0, 1) == 44
    assert tiles.tile_width(300, 1, 0) == 1
    assert tiles.tile_width(300, 0, 2) == 0
    assert tiles.tile_width(65536, 2, 0) == 1


# --- entry bundles -------------------------------------------------------------------


def test_entry_bundle_round_trip():
    leaves = [b"", b"a", b"x" * 300, b"\x00\xff" * 100, b"z" * 65535]
    data = encode_entry_bundle(leaves)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x01"
    assert decode_entry_bundle(data) == leaves
    assert decode_entry_bundle(data, want=5) == leaves
    assert decode_entry_bundle(b"") == []


def test_entry_bundle_rejects():
    with pytest.raises(MalformedError):
        encode_entry_bundle([b"z" * 65536])
    with pytest.raises(MalformedError):
        encode_entry_bundle([b""] * 257)
    good = encode_entry_bundle([b"abc", b"de"])
    for bad in (good + b"\x00", good + b"\x00\x05ab", good[:-1], b"\x00"):
        with pytest.raises(MalformedError):
            decode_entry_bundle(bad)
    with pytest.raises(MalformedError):
        decode_entry_bundle(good, want=3)
    with pytest.raises(MalformedError):
        decode_entry_bundle(b"\x00\x00" * 257)


# --- integration ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 66000])
def test_integrate_one_batch(size):
    store, n, root = grow([size])
    assert n == size and root == merkle.root(LEAVES[:size])
    assert sorted(store.tiles) == tile_keys(size)
    for (lv, ix), data in store.data().items():
        assert len(data) == 32 * tiles.tile_width(size, lv, ix)
        lo = ix * TILE_WIDTH << (8 * lv)
        for k in range(len(data) // 32):  # each hash is the root of 256^lv leaves
            a = lo + (k << (8 * lv))
            assert data[32 * k : 32 * k + 32] == merkle.root(LEAVES[a : a + (1 << (8 * lv))]) or lv > 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 900), min_size=1, max_size=12))
def test_integrate_any_batch_split(batches):
    store, size, root = grow(batches)
    assert root == merkle.root(LEAVES[:size])
    one, _, _ = grow([size])
    assert store.data() == one.data()


def test_integrate_every_size_one_leaf_at_a_time():
    store, size, root = CountingTiles(), 0, merkle.EMPTY_ROOT
    b = merkle.MerkleBuilder()
    for i in range(600):
        size, root, changed = integrate(size, [LEAVES[i]], store)
        store.update(changed)
        b.append_leaf_hash(LEAVES[i])
        assert root == b.root()
    assert size == 600


def test_integrate_reads_only_right_edge_tiles_once():
    store, size, _ = grow([66_000])
    store.calls.clear()
    size, root, changed = integrate(size, LEAVES[66_000:66_300], store)
    assert len(store.calls) == 1
    assert sorted(store.calls[0]) == [(0, 257), (1, 1), (2, 0)]  # one partial tile per level
    assert root == merkle.root(LEAVES[:66_300])
    assert sorted(changed) == [(0, 257), (0, 258), (1, 1)]  # tile 0/257 filled: 1/001 grew


def test_integrate_no_leaves_returns_current_root():
    store, size, root = grow([1000])
    assert integrate(size, [], store) == (size, root, {})


def test_integrate_rejects_inconsistent_store():
    store, size, _ = grow([300])
    del store.tiles[(0, 1)]
    with pytest.raises(MalformedError):
        integrate(size, [LEAVES[300]], store)
    store, size, _ = grow([300])
    with pytest.raises(MalformedError):  # the store holds fewer hashes than old_size says
        integrate(size + 1, [LEAVES[300]], store)
    with pytest.raises(MalformedError):
        integrate(size, [b"short"], store)


# --- proofs from tiles in memory ----------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 100, 256, 257, 1000, 65536, 66_000])
def test_proofs_from_tiles_equal_in_memory(size):
    store, _, root = grow([size // 3, size - size // 3])
    assert merkle.tree_root(size, store) == root
    rng = random.Random(size)
    for i in sorted({0, size - 1, *(rng.randrange(size) for _ in range(8))}):
        assert merkle.prove_inclusion(i, size, store) == merkle.inclusion_proof(i, size, LEAVES)
    for old in sorted({1, size, *(rng.randrange(1, size + 1) for _ in range(5))}):
        assert merkle.prove_consistency(old, size, store) == merkle.consistency_proof(old, size, LEAVES)


def test_proofs_for_an_older_size_from_grown_tiles():
    store, size, _ = grow([1000])
    for old in (1, 255, 257, 700):  # partial tiles have grown since; full ones never change
        assert merkle.tree_root(old, store) == merkle.root(LEAVES[:old])
        assert merkle.prove_inclusion(old - 1, old, store) == merkle.inclusion_proof(old - 1, old, LEAVES)


class AllNodes:
    """Every perfect-subtree hash of LEAVES, level by level: the nodes a proof may read."""

    def __init__(self) -> None:
        row = LEAVES
        self.levels = [row]
        while len(row) > 1:
            row = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
            self.levels.append(row)

    def node(self, level: int, n: int) -> bytes:
        return self.levels[level][n]

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]:
        return merkle.sibling_nodes(self, index, start, stop)


def test_memory_proofs_across_three_tile_levels():
    # 70,000 leaves: level-0, level-1 and level-2 tiles, full and partial ones,
    # rewritten as the tree grows. The proofs are checked against the same proofs
    # over every node of the tree (what merkle.inclusion_proof does, computed once).
    store, size, _ = grow([1, 255, 256, 513, 65_000, 3_975])
    assert size == 70_000 and {level for level, _ in store.tiles} == {0, 1, 2}
    nodes = AllNodes()
    assert merkle.prove_inclusion(5, 300, nodes) == merkle.inclusion_proof(5, 300, LEAVES)
    rng = random.Random(7)
    sizes = [1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 69_999, 70_000] + [rng.randint(1, size) for _ in range(40)]
    for n in sizes:
        assert merkle.tree_root(n, store) == merkle.tree_root(n, nodes)
        for index in {0, n - 1, rng.randrange(n)}:
            assert merkle.prove_inclusion(index, n, store) == merkle.prove_inclusion(index, n, nodes)
        for m in {0, 1, n, rng.randint(1, n)}:
            assert merkle.prove_consistency(m, n, store) == merkle.prove_consistency(m, n, nodes)
    assert merkle.tree_root(size, store) == merkle.root(LEAVES)


def test_recorder_names_exactly_the_tiles_a_proof_reads():
    store, size, _ = grow([66_000])
    for first, second in ((1, 2), (300, 66_000), (65_536, 65_537), (700, 1000)):
        recorder = TileRecorder()
        merkle.prove_consistency(first, second, recorder)
        merkle.tree_root(second, recorder)
        only = TileMemory(held={k: store.tiles[k] for k in recorder.keys})
        assert merkle.prove_consistency(first, second, only) == merkle.consistency_proof(first, second, LEAVES)
        assert merkle.tree_root(second, only) == merkle.root(LEAVES[:second])


def test_a_missing_or_short_tile_is_named():
    hashes = LEAVES[:10]
    memory = TileMemory(limit=4)
    memory.keep((0, 0), b"".join(hashes[:4]))
    assert merkle.tree_root(4, memory) == merkle.root(hashes[:4])
    with pytest.raises(MissingTileError, match="tile 0/0 is missing or too short") as info:
        merkle.tree_root(6, memory)  # the tile held is too short for this tree
    assert info.value.key == (0, 0)
    with pytest.raises(MissingTileError) as info:
        merkle.tree_root(300, memory)
    assert info.value.key in {(0, 1), (1, 0)}
    memory.keep((0, 0), b"".join(hashes[:3]))  # older, shorter data never replaces longer
    assert merkle.tree_root(4, memory) == merkle.root(hashes[:4])
    memory.keep((0, 0), b"".join(hashes))
    assert merkle.tree_root(10, memory) == merkle.root(hashes)


def test_siblings_a_tile_at_a_time_are_those_node_by_node():
    store, size, _ = grow([70_000])
    rng = random.Random(3)
    for index in [0, 255, 256, 65_535, 65_536, size - 1] + [rng.randrange(size) for _ in range(30)]:
        lo = 0
        for height in (h for h in reversed(range(size.bit_length())) if size >> h & 1):  # the leaf's part
            if index < lo + (1 << height):
                break
            lo += 1 << height
        for start, stop in ((0, height), (min(3, height), min(11, height)), (height, height)):
            assert store.siblings(index, start, stop) == merkle.sibling_nodes(store, index, start, stop)
    partial = TileMemory(held={(0, 0): store.tiles[(0, 0)]})
    with pytest.raises(MissingTileError) as info:
        partial.siblings(3, 0, 9)  # level 8 lies in tile 1/0, not held
    assert info.value.key == (1, 0)
    short = TileMemory()
    short.keep((0, 0), b"".join(LEAVES[:5]))
    assert short.siblings(2, 0, 2) == merkle.sibling_nodes(AllNodes(), 2, 0, 2)
    with pytest.raises(MissingTileError) as info:
        short.siblings(2, 0, 3)  # the level-2 sibling covers leaves 4-7: the tile holds 5
    assert info.value.key == (0, 0)


def test_memory_bound_drops_the_tile_loaded_longest_ago():
    store, _, _ = grow([1000])
    memory = TileMemory(limit=2)
    for key in ((0, 0), (0, 1), (0, 2)):
        memory.keep(key, store.tiles[key][0])
    assert list(memory.tiles) == [(0, 1), (0, 2)]
    memory.keep((0, 1), store.tiles[(0, 1)][0])  # the same data again: not reloaded
    memory.keep((0, 0), store.tiles[(0, 0)][0])
    assert list(memory.tiles) == [(0, 2), (0, 0)]
    assert memory.read_tiles([(0, 0), (0, 1)]) == {(0, 0): store.tiles[(0, 0)][0]}


@pytest.mark.parametrize("data", [b"", b"x" * 31, b"x" * 33, b"x" * (32 * 257)])
def test_memory_rejects_malformed_tiles(data):
    with pytest.raises(MalformedError, match="want 1 to 256 hashes of 32"):
        TileMemory().keep((0, 0), data)
