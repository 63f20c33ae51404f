"""The market's audit ledger: an RFC 9162 Merkle log of signed entries, served as
C2SP tlog-tiles with signed-note checkpoints and tlog-cosignature witnesses.

This package is pure: no database and no market code. It exports what a verifier or
another service needs; the modules hold the rest (``ledger.tiles`` for tile paths,
integration and the tiles held in memory that proofs are built from).
"""

from .entry import ENTRY_VERSION, canonical, parse_entry, sign_entry, verify_entry
from .errors import (
    BadSignatureError,
    InconsistentError,
    LedgerError,
    MalformedError,
    ProofError,
    RootMismatchError,
    UnknownKeyError,
    VerificationError,
)
from .merkle import EMPTY_ROOT, HASH_SIZE, MerkleBuilder, leaf_hash, node_hash, verify_consistency, verify_inclusion
from .note import (
    Checkpoint,
    CosignatureSigner,
    Note,
    Signature,
    Signer,
    Verifier,
    key_id,
    make_vkey,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
)
from .verify import BundleReport, Report, verify_bundle, verify_log

__all__ = [
    # errors
    "BadSignatureError",
    "InconsistentError",
    "LedgerError",
    "MalformedError",
    "ProofError",
    "RootMismatchError",
    "UnknownKeyError",
    "VerificationError",
    # Merkle tree (RFC 9162)
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleBuilder",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
    # notes, checkpoints, cosignatures (C2SP)
    "Checkpoint",
    "CosignatureSigner",
    "Note",
    "Signature",
    "Signer",
    "Verifier",
    "key_id",
    "make_vkey",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    # entries
    "ENTRY_VERSION",
    "canonical",
    "parse_entry",
    "sign_entry",
    "verify_entry",
    # offline verification
    "BundleReport",
    "Report",
    "verify_bundle",
    "verify_log",
]
