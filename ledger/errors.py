"""Errors raised by the ledger package.

Every error derives from one base, so a caller can catch the whole package with
``except LedgerError``. Subclasses carry the data that explains them::

    LedgerError
    ├── MalformedError            input that does not parse (bad base64, bad size,
    │                             non-canonical JSON, a tile of the wrong length, ...)
    ├── MissingTileError          a proof needs a hash tile that is not at hand, or
    │                             more of it (carries the tile's key)
    └── VerificationError         input that parses but does not verify
        ├── RootMismatchError     a recomputed root differs (carries expected, calculated)
        ├── BadSignatureError     a signature by a known key fails
        ├── UnknownKeyError       no signature by a known key, or a key id mismatch
        ├── InconsistentError     two tree heads or a tree and its tiles disagree
        └── ProofError            a proof of the wrong size or for impossible
                                  indexes/sizes (also raised when asked to build one)

An HTTP layer maps these in one place: ``MalformedError`` to 400 and
``VerificationError`` to 422 (or 409 for ``InconsistentError``), say. Messages are
written for the operator; they never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "BadSignatureError",
    "InconsistentError",
    "LedgerError",
    "MalformedError",
    "MissingTileError",
    "ProofError",
    "RootMismatchError",
    "UnknownKeyError",
    "VerificationError",
]


class LedgerError(Exception):
    """Base of every error raised by the ledger package."""


class MalformedError(LedgerError):
    """The input does not parse under the format it claims to follow."""


class MissingTileError(LedgerError):
    """A proof needs hash tile ``key`` = (level, index), or more of it than is held."""

    def __init__(self, key: tuple[int, int]) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:  # formatted lazily: a proof server raises this on every memory miss
        return f"tile {self.key[0]}/{self.key[1]} is missing or too short"


class VerificationError(LedgerError):
    """The input parses but a cryptographic or structural check fails."""


class RootMismatchError(VerificationError):
    """A root recomputed from a proof or from leaves differs from the expected one."""

    def __init__(self, expected: bytes, calculated: bytes, what: str = "root") -> None:
        super().__init__(expected, calculated, what)
        self.expected = bytes(expected)
        self.calculated = bytes(calculated)
        self.what = what

    def __str__(self) -> str:  # formatted lazily: proof checks may raise this in bulk
        return f"{self.what} mismatch: expected {self.expected.hex()}, calculated {self.calculated.hex()}"


class BadSignatureError(VerificationError):
    """A signature made by a known key does not verify."""


class UnknownKeyError(VerificationError):
    """No signature by a known key, or a key id that names another key."""


class InconsistentError(VerificationError):
    """Two views of the log cannot both be true (a fork, a rollback, a bad tile)."""


class ProofError(VerificationError):
    """A proof has the wrong number of hashes, or its index and sizes are impossible."""
