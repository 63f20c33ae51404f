"""Storage of data-asset content: encrypted, chunked blobs and their keys."""

from market.storage.blobs import (
    BlobCorrupted,
    BlobNotFound,
    BlobStore,
    ContentTooLarge,
    InvalidBlobId,
    KeyFileError,
    KeyUnwrapError,
    MasterKey,
    StorageError,
    StoredBlob,
)

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "ContentTooLarge",
    "InvalidBlobId",
    "KeyFileError",
    "KeyUnwrapError",
    "MasterKey",
    "StorageError",
    "StoredBlob",
]
