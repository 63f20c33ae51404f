"""RFC 9162 §2.1 Merkle tree: known answers, exhaustive small trees, bit flips,
a recursive reference implementation, and pymerkle as an independent check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import LedgerError, MalformedError, ProofError, RootMismatchError, VerificationError
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.ledgertestutil import ref_k, ref_mth

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc9162_tree.json").read_text())
VECTOR_LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaves_hex"]]


# --- reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 written out recursively ----------


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = ref_k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def data_for(n: int) -> list[bytes]:
    return [i.to_bytes(2, "big") * (1 + i % 3) for i in range(n)]


# --- known answers -------------------------------------------------------------------


def test_known_root_of_the_rfc_tree():
    assert root(VECTOR_LEAVES).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", sorted(int(n) for n in VECTORS["roots_hex"]))
def test_vector_roots(size):
    assert root(VECTOR_LEAVES[:size]).hex() == VECTORS["roots_hex"][str(size)]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-{c['size']}")
def test_vector_inclusion(case):
    i, n = case["index"], case["size"]
    want = [bytes.fromhex(h) for h in case["path_hex"]]
    assert inclusion_proof(i, n, VECTOR_LEAVES) == want
    verify_inclusion(i, n, VECTOR_LEAVES[i], want, bytes.fromhex(VECTORS["roots_hex"][str(n)]))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}")
def test_vector_consistency(case):
    m, n = case["first"], case["second"]
    want = [bytes.fromhex(h) for h in case["proof_hex"]]
    assert consistency_proof(m, n, VECTOR_LEAVES) == want
    verify_consistency(
        m, n, bytes.fromhex(VECTORS["roots_hex"][str(m)]), bytes.fromhex(VECTORS["roots_hex"][str(n)]), want
    )


# --- every tree up to 64 leaves --------------------------------------------------------


FULL_FLIPS_UP_TO = 32  # trees this small get every bit of every hash flipped
SPREAD = [k * 33 for k in range(8)] + [k * 33 + 4 for k in range(8)]  # 16 bytes, every bit position


def flips(proof: list[bytes], size: int):
    """Proofs with one bit flipped: every bit for small trees, 16 spread bits per hash above.

    Flipping all 256 bits of every hash of every proof up to 64 leaves is 5.7 million
    verifications; the spread keeps every hash and every bit position within a byte.
    """
    bits = range(256) if size <= FULL_FLIPS_UP_TO else SPREAD
    for i, h in enumerate(proof):
        for bit in bits:
            b = bytearray(h)
            b[bit // 8] ^= 1 << (bit % 8)
            yield proof[:i] + [bytes(b)] + proof[i + 1 :]


def must_fail(check, *args) -> None:
    try:
        check(*args)
    except RootMismatchError:
        return
    raise AssertionError(f"{check.__name__}{args[:2]} accepted a corrupted proof")


MAX = 64
LEAVES = [leaf_hash(x) for x in data_for(MAX)]
ROOTS = [root(LEAVES[:n]) for n in range(MAX + 1)]


def test_roots_match_reference_up_to_64():
    for n in range(MAX + 1):
        assert ROOTS[n] == ref_mth(data_for(n))


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_every_inclusion_proof(size):
    d = data_for(size)
    for i in range(size):
        proof = inclusion_proof(i, size, LEAVES)
        assert proof == ref_path(i, d)
        verify_inclusion(i, size, LEAVES[i], proof, ROOTS[size])
        for bad in flips(proof, size):
            must_fail(verify_inclusion, i, size, LEAVES[i], bad, ROOTS[size])
        with pytest.raises(VerificationError):  # another leaf, index or size
            verify_inclusion(i, size, LEAVES[(i + 1) % MAX], proof, ROOTS[size])
        for j in range(size):
            if j != i:
                with pytest.raises(VerificationError):
                    verify_inclusion(j, size, LEAVES[i], proof, ROOTS[size])
        for n in (size - 1, size + 1):
            if i < n <= MAX:
                with pytest.raises(VerificationError):
                    verify_inclusion(i, n, LEAVES[i], proof, ROOTS[n])
        if proof:
            with pytest.raises(ProofError):
                verify_inclusion(i, size, LEAVES[i], proof[:-1], ROOTS[size])
        with pytest.raises(ProofError):
            verify_inclusion(i, size, LEAVES[i], proof + [ROOTS[size]], ROOTS[size])


@pytest.mark.parametrize("second", range(1, MAX + 1))
def test_every_consistency_proof(second):
    d = data_for(second)
    for first in range(0, second + 1):
        proof = consistency_proof(first, second, LEAVES)
        assert proof == ref_proof(first, d)
        verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)
        for bad in flips(proof, second):
            must_fail(verify_consistency, first, second, ROOTS[first], ROOTS[second], bad)
        with pytest.raises(VerificationError):  # another first root
            verify_consistency(first, second, ROOTS[first - 1] if first else ROOTS[1], ROOTS[second], proof)
        if first:  # from the empty tree, any second root is consistent
            with pytest.raises(VerificationError):  # another second root
                verify_consistency(first, second, ROOTS[first], ROOTS[second - 1], proof)
        for other in (first - 1, first + 1):
            if 0 < other < second and other != first:
                with pytest.raises(VerificationError):
                    verify_consistency(other, second, ROOTS[other], ROOTS[second], proof)
        if first and second < MAX:
            with pytest.raises(VerificationError):
                verify_consistency(first, second + 1, ROOTS[first], ROOTS[second + 1], proof)
        if proof:
            with pytest.raises(ProofError):
                verify_consistency(first, second, ROOTS[first], ROOTS[second], proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(first, second, ROOTS[first], ROOTS[second], proof + [ROOTS[0]])


def test_consistency_edge_cases():
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(7, 7, ROOTS[7], ROOTS[7], [])
    with pytest.raises(RootMismatchError):
        verify_consistency(7, 7, ROOTS[7], ROOTS[6], [])
    with pytest.raises(ProofError):
        verify_consistency(7, 7, ROOTS[7], ROOTS[7], [ROOTS[7]])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [ROOTS[5]])
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 5, ROOTS[3], ROOTS[5], [])
    with pytest.raises(ProofError):
        verify_consistency(6, 5, ROOTS[6], ROOTS[5], [])
    with pytest.raises(ProofError):
        verify_consistency(3, 5, ROOTS[3], ROOTS[5], [])
    with pytest.raises(ProofError):
        consistency_proof(3, 2, LEAVES)
    with pytest.raises(ProofError):
        consistency_proof(3, MAX + 1, LEAVES)


def test_inclusion_edge_cases():
    with pytest.raises(ProofError):
        verify_inclusion(0, 0, LEAVES[0], [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(5, 5, LEAVES[5], [], ROOTS[5])
    with pytest.raises(ProofError):
        verify_inclusion(-1, 5, LEAVES[0], [], ROOTS[5])
    with pytest.raises(ProofError):
        inclusion_proof(5, 5, LEAVES)
    with pytest.raises(ProofError):
        inclusion_proof(0, MAX + 1, LEAVES)
    with pytest.raises(MalformedError):
        verify_inclusion(0, 1, b"short", [], ROOTS[1])
    with pytest.raises(MalformedError):
        verify_inclusion(0, 2, LEAVES[0], [b"short"], ROOTS[2])
    verify_inclusion(0, 1, LEAVES[0], [], LEAVES[0])


def test_errors_form_one_hierarchy():
    e = RootMismatchError(b"\x01" * 32, b"\x02" * 32)
    assert e.expected == b"\x01" * 32 and e.calculated == b"\x02" * 32
    assert "0101" in str(e) and "0202" in str(e)
    assert issubclass(ProofError, VerificationError) and issubclass(VerificationError, LedgerError)
    assert issubclass(MalformedError, LedgerError)


# --- properties ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=300), st.data())
def test_against_reference(data, draw):
    hashes = [leaf_hash(x) for x in data]
    n = len(data)
    assert root(hashes) == ref_mth(data)
    i = draw.draw(st.integers(0, n - 1))
    assert inclusion_proof(i, n, hashes) == ref_path(i, data)
    m = draw.draw(st.integers(0, n))
    assert consistency_proof(m, n, hashes) == ref_proof(m, data)
    verify_consistency(m, n, ref_mth(data[:m]), ref_mth(data), consistency_proof(m, n, hashes))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=600))
def test_builder_matches_root(data):
    b = MerkleBuilder()
    assert b.root() == EMPTY_ROOT
    for i, x in enumerate(data):
        if i % 2:
            b.append(x)
        else:
            b.append_leaf_hash(leaf_hash(x))
    assert b.size == len(data)
    assert b.root() == root([leaf_hash(x) for x in data])


def test_builder_root_at_every_size():
    b = MerkleBuilder()
    for n, x in enumerate(data_for(MAX)):
        assert b.root() == ROOTS[n]
        b.append(x)
    assert b.root() == ROOTS[MAX]
    with pytest.raises(MalformedError):
        b.append_leaf_hash(b"x" * 31)


def test_node_and_leaf_hash_domain_separation():
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert merkle.HASH_SIZE == 32


# --- pymerkle (RFC 6962 hashing; 1-based indexes; its path starts with the leaf) -------


def test_roots_and_audit_paths_match_pymerkle():
    data = [f"entry {i}".encode() for i in range(70)]
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for x in data:
        tree.append_entry(x)
    hashes = [leaf_hash(x) for x in data]
    for n in range(1, len(data) + 1):
        assert tree.get_root(n) == root(hashes[:n])
        for i in range(n):
            theirs = tree.prove_inclusion(i + 1, n).serialize()["path"]
            assert bytes.fromhex(theirs[0]) == hashes[i]
            assert [bytes.fromhex(h) for h in theirs[1:]] == inclusion_proof(i, n, hashes)
