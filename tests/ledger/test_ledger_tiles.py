"""C2SP tlog-tiles: path codec, entry bundles, tile hash reads and integration."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle, tiles, tlog
from ledger.errors import MalformedError
from ledger.tiles import (
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    integrate,
    parse_tile_path,
    read_hashes_from_tiles,
    tile_path,
)


class CountingTiles:
    """An in-memory tile store that records what was read."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.calls: list[list[tuple[int, int]]] = []

    def read_tiles(self, keys):
        self.calls.append(list(keys))
        return {k: self.tiles[k] for k in keys if k in self.tiles}


def leaf(i: int) -> bytes:
    return merkle.leaf_hash(i.to_bytes(4, "big"))


LEAVES = [leaf(i) for i in range(70_000)]


def grow(batches: list[int]) -> tuple[CountingTiles, int, bytes]:
    store, size, root = CountingTiles(), 0, merkle.EMPTY_ROOT
    for b in batches:
        size, root, changed = integrate(size, LEAVES[size : size + b], store)
        store.tiles.update(changed)
    return store, size, root


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


def test_tiles_for_size_and_width():
    assert tiles.tiles_for_size(0) == []
    assert tiles.tiles_for_size(300) == [(0, 0, 256), (0, 1, 44), (1, 0, 1)]
    assert tiles.tile_width(300, 0, 1) == 44
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
    assert sorted(store.tiles) == [(lv, ix) for lv, ix, _ in tiles.tiles_for_size(size)]
    for (lv, ix), data in store.tiles.items():
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
    assert store.tiles == one.tiles


def test_integrate_every_size_one_leaf_at_a_time():
    store, size, root = CountingTiles(), 0, merkle.EMPTY_ROOT
    b = merkle.MerkleBuilder()
    for i in range(600):
        size, root, changed = integrate(size, [LEAVES[i]], store)
        store.tiles.update(changed)
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


# --- proofs from tiles ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 100, 256, 257, 1000, 65536, 66_000])
def test_proofs_from_tiles_equal_in_memory(size):
    store, _, root = grow([size // 3, size - size // 3])
    reader = lambda ix: read_hashes_from_tiles(size, ix, store)  # noqa: E731
    assert tlog.tree_hash(size, reader) == root
    rng = random.Random(size)
    picks = sorted({0, size - 1, *(rng.randrange(size) for _ in range(8))})
    for i in picks:
        store.calls.clear()
        assert tlog.prove_record(size, i, reader) == merkle.inclusion_proof(i, size, LEAVES)
        assert len(store.calls) <= 1  # one batched read per proof
    for old in sorted({1, size, *(rng.randrange(1, size + 1) for _ in range(5))}):
        assert tlog.prove_tree(size, old, reader) == merkle.consistency_proof(old, size, LEAVES)


def test_proofs_for_an_older_size_from_grown_tiles():
    store, size, _ = grow([1000])
    for old in (1, 255, 257, 700):  # partial tiles have grown since; full ones never change
        reader = lambda ix, old=old: read_hashes_from_tiles(old, ix, store)  # noqa: E731
        assert tlog.tree_hash(old, reader) == merkle.root(LEAVES[:old])
        assert tlog.prove_record(old, old - 1, reader) == merkle.inclusion_proof(old - 1, old, LEAVES)


def test_read_hashes_rejects():
    store, size, _ = grow([300])
    with pytest.raises(ValueError):
        read_hashes_from_tiles(size, [tlog.stored_hash_count(size)], store)
    del store.tiles[(0, 1)]
    with pytest.raises(MalformedError):
        read_hashes_from_tiles(size, [tlog.stored_hash_index(0, 299)], store)


def test_hash_from_tile_and_tile_root():
    store, _, _ = grow([512])
    t0 = store.tiles[(0, 0)]
    assert tiles.tile_root(t0) == merkle.root(LEAVES[:256]) == store.tiles[(1, 0)][:32]
    assert tiles.hash_from_tile(0, 1, store.tiles[(0, 1)], tlog.stored_hash_index(3, 32)) == merkle.root(
        LEAVES[256:264]
    )
    with pytest.raises(MalformedError):
        tiles.hash_from_tile(0, 0, t0, tlog.stored_hash_index(3, 32))
    with pytest.raises(MalformedError):
        tiles.tile_root(t0[:-32])
