"""Errors of the blob store, under one base::

    StorageError
    ├── ContentTooLarge     the uploaded stream went over its limit (carries limit)
    ├── BlobNotFound        no blob under this id
    ├── BlobCorrupted       malformed file, or failed authentication
    ├── BlobStoreUnavailable  the object store did not answer, or refused the request
    ├── KeyFileError        master key file unreadable, malformed, or not private
    ├── KeyUnwrapError      a wrapped data key is malformed or for another asset
    └── InvalidBlobId       an id of the wrong shape (also a ValueError)
"""

from __future__ import annotations

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStoreUnavailable",
    "ContentTooLarge",
    "InvalidBlobId",
    "KeyFileError",
    "KeyUnwrapError",
    "StorageError",
]


class StorageError(Exception):
    """Base class of all errors raised by ``market.storage``."""


class ContentTooLarge(StorageError):
    """The uploaded stream exceeded ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"content exceeds the limit of {limit} bytes")
        self.limit = limit


class BlobNotFound(StorageError):
    """No blob is stored under this id."""


class BlobCorrupted(StorageError):
    """The blob file is malformed or failed authentication (tampering, truncation,
    or a wrong data key: GCM cannot tell these apart)."""


class BlobStoreUnavailable(StorageError):
    """The object store could not be reached, or refused the request (credentials,
    permissions, a missing bucket): nothing is known of the blob itself."""


class KeyFileError(StorageError):
    """The master key file is unreadable, malformed, or open to other users."""


class KeyUnwrapError(StorageError):
    """A wrapped data key is malformed or does not authenticate for the asset id."""


class InvalidBlobId(StorageError, ValueError):
    """The blob id is not of the allowed shape."""
