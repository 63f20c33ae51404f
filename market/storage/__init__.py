"""Storage of data-asset content: encrypted, chunked blobs and their keys.

- ``store``: ``BlobStore``, the interface (ids, write/read/verify/delete), and
  ``FileBlobStore``, blobs on local disk
- ``objects``: ``S3BlobStore``, blobs in an S3-compatible object store; ``open_blob_store``
  chooses one from the settings' ``MARKET_BLOB_STORE``
- ``format``: the blob file format, chunk sealing and the content commitment
- ``writer``, ``reader``: the pipelined write and the range read of one blob
- ``keys``: ``MasterKey``, which wraps a data key per asset
- ``files``: file primitives; ``errors``: the ``StorageError`` tree
"""

from market.storage.errors import (
    BlobCorrupted,
    BlobNotFound,
    BlobStoreUnavailable,
    ContentTooLarge,
    InvalidBlobId,
    KeyFileError,
    KeyUnwrapError,
    StorageError,
)
from market.storage.format import StoredBlob
from market.storage.keys import MasterKey
from market.storage.objects import S3BlobStore, open_blob_store
from market.storage.store import BlobStore, FileBlobStore, HashedPiece

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreUnavailable",
    "ContentTooLarge",
    "FileBlobStore",
    "HashedPiece",
    "InvalidBlobId",
    "KeyFileError",
    "KeyUnwrapError",
    "MasterKey",
    "S3BlobStore",
    "StorageError",
    "StoredBlob",
    "open_blob_store",
]
