"""Stored-hash proofs (port of golang.org/x/mod/sumdb/tlog) against the in-memory RFC 9162 ones."""

from __future__ import annotations

import pytest

from ledger import merkle, tlog
from ledger.errors import LedgerError, ProofError


def go_stored_hash_index(level: int, n: int) -> int:
    """tlog's StoredHashIndex, loop for loop."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def build(n: int) -> tuple[list[bytes], list[bytes]]:
    """Append n leaves through stored_hashes; return (leaf hashes, stored hashes)."""
    leaves, store = [], []
    for i in range(n):
        h = merkle.leaf_hash(b"record %d" % i)
        assert len(store) == tlog.stored_hash_index(0, i)
        store += tlog.stored_hashes(i, h, lambda ix, store=store: [store[x] for x in ix])
        assert len(store) == tlog.stored_hash_count(i + 1)
        leaves.append(h)
    return leaves, store


LEAVES, STORE = build(70)


def read(indexes: list[int]) -> list[bytes]:
    return [STORE[i] for i in indexes]


def test_stored_hash_index_matches_go_loop_and_inverts():
    for level in range(12):
        for n in range(200):
            x = tlog.stored_hash_index(level, n)
            assert x == go_stored_hash_index(level, n)
            assert tlog.split_stored_hash_index(x) == (level, n)
    for x in range(3000):
        level, n = tlog.split_stored_hash_index(x)
        assert tlog.stored_hash_index(level, n) == x


def test_stored_hash_count():
    assert tlog.stored_hash_count(0) == 0
    assert tlog.stored_hash_count(1) == 1
    assert tlog.stored_hash_count(2) == 3  # two leaves and their parent
    assert tlog.stored_hash_count(4) == 7


def test_stored_hashes_are_the_tree_nodes():
    for level in range(7):
        for n in range(70 >> level):
            lo, hi = n << level, (n + 1) << level
            assert STORE[tlog.stored_hash_index(level, n)] == merkle.root(LEAVES[lo:hi])


@pytest.mark.parametrize("size", range(0, 71))
def test_proofs_equal_in_memory_proofs(size):
    assert tlog.tree_hash(size, read) == merkle.root(LEAVES[:size])
    for i in range(size):
        assert tlog.prove_record(size, i, read) == merkle.inclusion_proof(i, size, LEAVES)
    for old in range(0, size + 1):
        assert tlog.prove_tree(size, old, read) == merkle.consistency_proof(old, size, LEAVES)


def test_bad_inputs():
    with pytest.raises(ProofError):
        tlog.prove_record(5, 5, read)
    with pytest.raises(ProofError):
        tlog.prove_record(0, 0, read)
    with pytest.raises(ProofError):
        tlog.prove_tree(5, 6, read)
    with pytest.raises(ValueError):
        tlog.stored_hash_index(-1, 0)
    with pytest.raises(ValueError):
        tlog.split_stored_hash_index(-1)
    with pytest.raises(LedgerError):  # a reader that returns too few hashes
        tlog.tree_hash(5, lambda ix: [])
    assert tlog.tree_hash(0, read) == merkle.EMPTY_ROOT
