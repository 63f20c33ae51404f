"""Merkle tree hashing and proofs of RFC 9162 §2.1 (Certificate Transparency v2).

- §2.1.1: ``leaf_hash`` = SHA-256(0x00 || data), ``node_hash`` = SHA-256(0x01 || l || r),
  the root of the empty tree is SHA-256(""), and a tree of n > 1 leaves splits at k,
  the largest power of two smaller than n.
- §2.1.3: inclusion proofs (``inclusion_proof``, ``verify_inclusion``).
- §2.1.4: consistency proofs (``consistency_proof``, ``verify_consistency``).

Indexes and sizes are 0-based leaf indexes and leaf counts; proofs are lists of
32-byte hashes ordered from the leaf side up. The proof builders here work on a
list of leaf hashes held in memory (tests, small trees); ``prove_inclusion`` and
``prove_consistency`` build the same proofs from any ``NodeSource`` of perfect-subtree
hashes (the log's tiles). ``MerkleBuilder`` streams leaves in O(log n) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from .errors import MalformedError, ProofError, RootMismatchError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleBuilder",
    "NodeSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "prove_inclusion_and_root",
    "root",
    "sibling_nodes",
    "subtree_root",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Return SHA-256(0x00 || data), the hash of a leaf (RFC 9162 §2.1.1)."""
    h = _sha256(_LEAF)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 || left || right), the hash of an interior node."""
    return _sha256(_NODE + left + right).digest()


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise MalformedError(f"{what} is {len(h)} bytes, want {HASH_SIZE}")


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash MTH of the leaves with these leaf hashes.

    Iterative: hashes pairs level by level and carries an odd last node up
    unchanged, which yields the same root as RFC 9162's split at the largest
    power of two. Returns ``EMPTY_ROOT`` for no leaves.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    for i, h in enumerate(level):
        if len(h) != HASH_SIZE:
            raise MalformedError(f"leaf hash {i} is {len(h)} bytes, want {HASH_SIZE}")
    while len(level) > 1:
        nxt = [_sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class NodeSource(Protocol):
    """Hashes of perfect subtrees: ``node(level, n)`` is the root of leaves
    [n * 2**level, (n + 1) * 2**level). Raises whatever it likes when it lacks one.

    ``siblings(index, start, stop)`` is ``[node(level, (index >> level) ^ 1) for level
    in range(start, stop)]``, the part of an audit path inside a perfect subtree; a
    source that keeps nodes in blocks (the log's tiles) answers it a block at a time.
    ``sibling_nodes`` below is the plain way."""

    def node(self, level: int, n: int) -> bytes: ...

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]: ...


def sibling_nodes(nodes: NodeSource, index: int, start: int, stop: int) -> list[bytes]:
    """``NodeSource.siblings`` one node at a time."""
    node = nodes.node
    return [node(level, (index >> level) ^ 1) for level in range(start, stop)]


class _Levels:
    """All levels of a tree built bottom up, a ``NodeSource`` held in memory."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        level = list(leaf_hashes)
        for i, h in enumerate(level):
            _check_hash(h, f"leaf hash {i}")
        self.levels = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    def node(self, level: int, n: int) -> bytes:
        return self.levels[level][n]

    def siblings(self, index: int, start: int, stop: int) -> list[bytes]:
        return sibling_nodes(self, index, start, stop)


def subtree_root(lo: int, hi: int, nodes: NodeSource) -> bytes:
    """MTH of leaves [lo, hi) (lo < hi), where lo is a multiple of the split of hi - lo:
    the perfect subtrees of hi - lo's binary digits, largest first, folded from the right."""
    n = hi - lo
    if not n & (n - 1):  # one perfect subtree: most calls from the proofs below
        level = n.bit_length() - 1
        return nodes.node(level, lo >> level)
    parts = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        parts.append(nodes.node(level, lo >> level))
        lo += 1 << level
    out = parts.pop()
    while parts:
        out = _sha256(_NODE + parts.pop() + out).digest()
    return out


def tree_root(size: int, nodes: NodeSource) -> bytes:
    """MTH of the first ``size`` leaves (``EMPTY_ROOT`` for none)."""
    return subtree_root(0, size, nodes) if size else EMPTY_ROOT


# A tree of n leaves is the perfect subtrees of n's binary digits side by side, largest
# first (its *parts*); RFC 9162's recursion splits off one part at a time. The proofs
# below walk the parts instead: a part left of the leaf is one node of the path, those
# right of it fold into one, and inside the leaf's part the path is one sibling a level.


def _parts(size: int) -> list[int]:
    """The levels of the parts of a tree of ``size`` leaves, largest first."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]


def prove_inclusion_and_root(index: int, size: int, nodes: NodeSource) -> tuple[bytes, list[bytes]]:
    """(MTH(D[0:size]), PATH(index, D[0:size])) of RFC 9162 §2.1.1 and §2.1.3.1, the
    path leaf side first, from ``nodes``; the fold of the root gives the path's upper
    hash on the way.

    Reads O(log size) nodes. Requires 0 <= index < size; raises ProofError otherwise.
    """
    if not 0 <= index < size:
        raise ProofError(f"index {index} out of range for tree size {size}")
    node = nodes.node
    roots: list[bytes] = []
    part, part_level, lo = -1, 0, 0
    for level in _parts(size):
        if part < 0 and index < lo + (1 << level):
            part, part_level = len(roots), level
        roots.append(node(level, lo >> level))
        lo += 1 << level
    proof = nodes.siblings(index, 0, part_level)
    out = roots[-1]
    for i in range(len(roots) - 2, -1, -1):
        if i == part:
            proof.append(out)  # MTH of everything right of the leaf's part
        out = _sha256(_NODE + roots[i] + out).digest()
    proof.extend(reversed(roots[:part]))
    return out, proof


def prove_inclusion(index: int, size: int, nodes: NodeSource) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf side first, from ``nodes``.

    Reads O(log size) nodes. Requires 0 <= index < size; raises ProofError otherwise.
    """
    return prove_inclusion_and_root(index, size, nodes)[1]


def prove_consistency(first: int, second: int, nodes: NodeSource) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1, leaf side first, from ``nodes``.

    Reads O(log second) nodes; empty when first == 0 or first == second. Requires
    0 <= first <= second; raises ProofError otherwise.
    """
    if not 0 <= first <= second:
        raise ProofError(f"invalid sizes: first {first}, second {second}; want 0 <= first <= second")
    if first == 0 or first == second:
        return []
    node = nodes.node
    parts = _parts(second)
    left: list[bytes] = []  # the parts of ``second`` wholly inside ``first``, in order
    lo, at = 0, 0
    while at < len(parts) - 1 and first > lo + (1 << parts[at]):
        left.append(node(parts[at], lo >> parts[at]))
        lo += 1 << parts[at]
        at += 1
    # ``first`` ends inside part ``at`` of ``second``, or at its end: the old tree's last
    # node there is the one of level t (trailing zeros of first) that holds leaf first - 1.
    level = parts[at]
    t = (first & -first).bit_length() - 1
    proof = []
    if lo or first & (first - 1):  # unless the old tree is that very node (SUBPROOF's b)
        proof.append(node(t, (first - 1) >> t))
    proof.extend(nodes.siblings(first - 1, t, level))
    if at < len(parts) - 1:  # the parts right of it, folded
        lo += 1 << level
        rights = []
        for level in parts[at + 1:]:
            rights.append(node(level, lo >> level))
            lo += 1 << level
        out = rights.pop()
        while rights:
            out = _sha256(_NODE + rights.pop() + out).digest()
        proof.append(out)
    proof.extend(reversed(left))
    return proof


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf side first.

    Requires 0 <= index < size <= len(leaf_hashes); raises ProofError otherwise.
    """
    if not 0 <= index < size:
        raise ProofError(f"index {index} out of range for tree size {size}")
    if size > len(leaf_hashes):
        raise ProofError(f"tree size {size} exceeds the {len(leaf_hashes)} leaves given")
    return prove_inclusion(index, size, _Levels(leaf_hashes[:size]))


def consistency_proof(first: int, second: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1, leaf side first.

    Requires 0 <= first <= second <= len(leaf_hashes); the proof is empty when
    first == 0 or first == second. Raises ProofError otherwise.
    """
    if not 0 <= first <= second:
        raise ProofError(f"invalid sizes: first {first}, second {second}; want 0 <= first <= second")
    if second > len(leaf_hashes):
        raise ProofError(f"tree size {second} exceeds the {len(leaf_hashes)} leaves given")
    if first == 0 or first == second:
        return []
    return prove_consistency(first, second, _Levels(leaf_hashes[:second]))


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree ``root_hash`` of ``size``.

    Implements RFC 9162 §2.1.3.2. Raises ProofError for an impossible index or a
    proof of the wrong length, RootMismatchError when the computed root differs.
    """
    if not 0 <= index < size:
        raise ProofError(f"index {index} out of range for tree size {size}")
    _check_hash(leaf, "leaf hash")
    _check_hash(root_hash, "root hash")
    inner = (index ^ (size - 1)).bit_length()
    want = inner + (index >> inner).bit_count()
    if len(proof) != want:
        raise ProofError(f"wrong inclusion proof size {len(proof)}, want {want}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root_hash:
        raise RootMismatchError(root_hash, r)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``first_root`` of size ``first`` is a prefix of ``second_root``.

    Implements RFC 9162 §2.1.4.2. ``first == second`` requires an empty proof and
    equal roots; ``first == 0`` requires an empty proof and ``first_root ==
    EMPTY_ROOT``. Raises ProofError for impossible sizes or a proof of the wrong
    length, RootMismatchError when a computed root differs.
    """
    if not 0 <= first <= second:
        raise ProofError(f"invalid sizes: first {first}, second {second}; want 0 <= first <= second")
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")
    if first == second or first == 0:
        if proof:
            raise ProofError(f"wrong consistency proof size {len(proof)}, want 0")
        expected = second_root if first == second else EMPTY_ROOT
        if first_root != expected:
            raise RootMismatchError(expected, first_root)
        return
    # Expected length (as in transparency-dev/merkle): the inclusion proof of leaf
    # first - 1 in the second tree, less the levels below the largest perfect
    # subtree ending at first, plus that subtree's root unless it is the first tree.
    inner = ((first - 1) ^ (second - 1)).bit_length()
    shift = _trailing_ones(first - 1)  # == trailing zeros of first
    first_is_power_of_two = first & (first - 1) == 0
    want = (inner - shift) + ((first - 1) >> inner).bit_count() + (0 if first_is_power_of_two else 1)
    if len(proof) != want:
        raise ProofError(f"wrong consistency proof size {len(proof)}, want {want}")
    for p in proof:
        _check_hash(p, "proof hash")
    path = list(proof)
    if first_is_power_of_two:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise RootMismatchError(first_root, fr, "first root")
    if sr != second_root:
        raise RootMismatchError(second_root, sr, "second root")


def _trailing_ones(n: int) -> int:
    return (n ^ (n + 1)).bit_length() - 1


class MerkleBuilder:
    """A compact range over leaves [0, size): append leaves, read the root.

    Keeps one hash per set bit of ``size`` (O(log n) memory); each append costs
    one leaf hash plus, on average, one node hash. Suited to content split into
    fixed-size chunks: ``for chunk in chunks: b.append(chunk)``.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []  # perfect subtree hashes, largest (leftmost) first

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, data: bytes | memoryview) -> None:
        """Append a leaf with these bytes (hashed as SHA-256(0x00 || data))."""
        h = _sha256(_LEAF)
        h.update(data)
        self._push(h.digest())

    def append_leaf_hash(self, h: bytes) -> None:
        """Append a leaf given its leaf hash."""
        if len(h) != HASH_SIZE:
            raise MalformedError(f"leaf hash is {len(h)} bytes, want {HASH_SIZE}")
        self._push(bytes(h))

    def _push(self, h: bytes) -> None:
        n = self._size
        stack = self._stack
        while n & 1:  # each trailing 1 bit completes a subtree with its left sibling
            h = _sha256(_NODE + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def root(self) -> bytes:
        """Return the Merkle tree hash of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = _sha256(_NODE + h + r).digest()
        return r
