"""Storage of data-asset content: encrypted, chunked blobs and their keys.

- ``store``: ``BlobStore``, the facade (ids, sharded paths, write/read/verify/delete)
- ``format``: the blob file format, chunk sealing and the content commitment
- ``writer``, ``reader``: the pipelined write and the range read of one blob
- ``keys``: ``MasterKey``, which wraps a data key per asset
- ``files``: file primitives; ``errors``: the ``StorageError`` tree
"""

from market.storage.errors import (
    BlobCorrupted,
    BlobNotFound,
    ContentTooLarge,
    InvalidBlobId,
    KeyFileError,
    KeyUnwrapError,
    StorageError,
)
from market.storage.format import StoredBlob
from market.storage.keys import MasterKey
from market.storage.reader import HashedPiece
from market.storage.store import BlobStore

__all__ = [
    "BlobCorrupted",
    "BlobNotFound",
    "BlobStore",
    "ContentTooLarge",
    "HashedPiece",
    "InvalidBlobId",
    "KeyFileError",
    "KeyUnwrapError",
    "MasterKey",
    "StorageError",
    "StoredBlob",
]
