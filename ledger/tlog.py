"""Storage-oriented Merkle proofs: a port of golang.org/x/mod/sumdb/tlog (tlog.go).

The tree is the RFC 9162 §2.1 tree of ``ledger.merkle``. Its hashes are kept in
"stored hash" order (Crosby and Wallach, "Efficient Data Structures for
Tamper-Evident Logging", §3.3): level L's n'th hash is written right after level
L+1's 2n+1'th hash, so appending leaf n writes its leaf hash followed by the hashes
of the perfect subtrees it completes. Readers fetch hashes by stored index through
a ``ReadHashes`` callable, which is the only way storage enters this module.

Proofs are in RFC 9162 order (leaf side up) and equal ``merkle.inclusion_proof``
and ``merkle.consistency_proof``. Note the argument order, kept from tlog:
``prove_record(t, n, ...)`` proves leaf n in the tree of size t, and
``prove_tree(t, n, ...)`` proves that the tree of size n is a prefix of the tree
of size t. One departure: ``tree_hash(0, ...)`` is ``merkle.EMPTY_ROOT``
(RFC 9162), not tlog's all-zero hash.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import LedgerError, MalformedError, ProofError
from .merkle import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "ReadHashes",
    "prove_record",
    "prove_tree",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes",
    "tree_hash",
]

ReadHashes = Callable[[list[int]], list[bytes]]
"""Returns the hashes at the given stored hash indexes, in the order asked."""


def _maxpow2(n: int) -> tuple[int, int]:
    """Return (k, l): k = 2**l is the largest power of two smaller than n (n > 1)."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def stored_hash_index(level: int, n: int) -> int:
    """Map tree coordinates (level, n) to the dense stored hash index."""
    if level < 0 or n < 0:
        raise ValueError(f"invalid coordinates level {level}, n {n}")
    # Level L's n'th hash is written right after level L+1's 2n+1'th hash:
    # work down to level 0, then add the level back at the end.
    n = ((n + 1) << level) - 1
    # Level 0's n'th hash is written at n + n/2 + n/4 + ... = 2n - popcount(n).
    return 2 * n - n.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Return (level, n) with ``stored_hash_index(level, n) == index``."""
    if index < 0:
        raise ValueError(f"invalid stored hash index {index}")
    # stored_hash_index(0, n) < 2n, so the record we want is in [index/2, index/2 + log2(index)].
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n + 1 comes after record n and its 1 + trailing-ones(n) hashes.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def stored_hash_count(n: int) -> int:
    """Return the number of stored hashes of a tree with n leaves."""
    if n < 0:
        raise ValueError(f"invalid tree size {n}")
    if n == 0:
        return 0
    return stored_hash_index(0, n)


def _read(read_hashes: ReadHashes, indexes: list[int]) -> list[bytes]:
    hashes = read_hashes(indexes)
    if len(hashes) != len(indexes):
        raise LedgerError(f"read_hashes({len(indexes)} indexes) returned {len(hashes)} hashes")
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise MalformedError(f"read_hashes returned a {len(h)}-byte hash, want {HASH_SIZE}")
    return hashes


def stored_hashes(n: int, leaf_hash: bytes, read_hashes: ReadHashes) -> list[bytes]:
    """Return the hashes to store when appending leaf n, from ``stored_hash_index(0, n)`` on.

    That is the leaf hash followed by one hash per perfect subtree that leaf n
    completes; reads the left siblings of those subtrees (at most log2 n hashes).
    """
    if n < 0:
        raise ValueError(f"invalid leaf index {n}")
    if len(leaf_hash) != HASH_SIZE:
        raise MalformedError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
    # Each trailing 1 bit of n completes a subtree and consumes the hash of its left sibling.
    m = _trailing_zeros(n + 1)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(m))]  # sorted
    old = _read(read_hashes, indexes) if indexes else []
    hashes = [leaf_hash]
    h = leaf_hash
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        hashes.append(h)
    return hashes


def _sub_tree_index(lo: int, hi: int, need: list[int]) -> list[int]:
    """Append the stored indexes needed to hash leaves [lo, hi): its perfect subtrees."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        assert lo & (k - 1) == 0, "bad math in _sub_tree_index"
        need.append(stored_hash_index(level, lo >> level))
        lo += k
    return need


def _sub_tree_hash(lo: int, hi: int, hashes: list[bytes], pos: int) -> tuple[bytes, int]:
    """Hash leaves [lo, hi) from the perfect subtree hashes at hashes[pos:]; return (hash, next pos)."""
    num_tree = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        num_tree += 1
        lo += k
    if len(hashes) - pos < num_tree:
        raise AssertionError("bad index math in _sub_tree_hash")
    h = hashes[pos + num_tree - 1]
    for i in range(pos + num_tree - 2, pos - 1, -1):
        h = node_hash(hashes[i], h)
    return h, pos + num_tree


def tree_hash(n: int, read_hashes: ReadHashes) -> bytes:
    """Return the root of the tree of size n, reading at most 1 + log2 n stored hashes."""
    if n < 0:
        raise ValueError(f"invalid tree size {n}")
    if n == 0:
        return EMPTY_ROOT
    indexes = _sub_tree_index(0, n, [])
    hashes = _read(read_hashes, indexes)
    h, pos = _sub_tree_hash(0, n, hashes, 0)
    assert pos == len(hashes), "bad index math in tree_hash"
    return h


def _leaf_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    assert lo <= n < hi, "bad math in _leaf_proof_index"
    if lo + 1 == hi:
        return need
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _leaf_proof_index(lo + k, hi, n, need)
    return need


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes], pos: int) -> tuple[list[bytes], int]:
    assert lo <= n < hi, "bad math in _leaf_proof"
    if lo + 1 == hi:  # the verifier knows the leaf hash
        return [], pos
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        p, pos = _leaf_proof(lo, lo + k, n, hashes, pos)
        th, pos = _sub_tree_hash(lo + k, hi, hashes, pos)
    else:
        th, pos = _sub_tree_hash(lo, lo + k, hashes, pos)
        p, pos = _leaf_proof(lo + k, hi, n, hashes, pos)
    p.append(th)
    return p, pos


def prove_record(t: int, n: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the inclusion proof of leaf n in the tree of size t (RFC 9162 §2.1.3.1).

    Requires 0 <= n < t; raises ProofError otherwise.
    """
    if not 0 <= n < t:
        raise ProofError(f"index {n} out of range for tree size {t}")
    indexes = _leaf_proof_index(0, t, n, [])
    if not indexes:
        return []
    hashes = _read(read_hashes, indexes)
    p, pos = _leaf_proof(0, t, n, hashes, 0)
    assert pos == len(hashes), "bad index math in prove_record"
    return p


def _tree_proof_index(lo: int, hi: int, n: int, need: list[int]) -> list[int]:
    assert lo < n <= hi, "bad math in _tree_proof_index"
    if n == hi:
        return need if lo == 0 else _sub_tree_index(lo, hi, need)
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_index(lo, lo + k, n, need)
        _sub_tree_index(lo + k, hi, need)
    else:
        _sub_tree_index(lo, lo + k, need)
        _tree_proof_index(lo + k, hi, n, need)
    return need


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes], pos: int) -> tuple[list[bytes], int]:
    assert lo < n <= hi, "bad math in _tree_proof"
    if n == hi:  # reached common ground
        if lo == 0:  # this subtree is the old tree itself, which the verifier knows
            return [], pos
        th, pos = _sub_tree_hash(lo, hi, hashes, pos)
        return [th], pos
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        p, pos = _tree_proof(lo, lo + k, n, hashes, pos)
        th, pos = _sub_tree_hash(lo + k, hi, hashes, pos)
    else:
        th, pos = _sub_tree_hash(lo, lo + k, hashes, pos)
        p, pos = _tree_proof(lo + k, hi, n, hashes, pos)
    p.append(th)
    return p, pos


def prove_tree(t: int, n: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the consistency proof that the tree of size n is a prefix of the tree of size t.

    RFC 9162 §2.1.4.1 PROOF(n, D[0:t]). Requires 0 <= n <= t; the proof is empty
    when n == 0 or n == t. Raises ProofError otherwise.
    """
    if not 0 <= n <= t:
        raise ProofError(f"invalid sizes: old {n}, new {t}; want 0 <= old <= new")
    if n == 0 or n == t:
        return []
    indexes = _tree_proof_index(0, t, n, [])
    if not indexes:
        return []
    hashes = _read(read_hashes, indexes)
    p, pos = _tree_proof(0, t, n, hashes, 0)
    assert pos == len(hashes), "bad index math in prove_tree"
    return p
