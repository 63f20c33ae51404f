"""The key hierarchy of stored content: one master key wraps a data key per asset.

Each asset has its own 32-byte data key. Only the *wrapped* data key is persisted
(by the caller, e.g. next to the asset row); it is wrapped by the master key with
AES-256-GCM rather than RFC 3394 key wrap, because GCM lets us bind the asset id as
associated data: a wrapped key copied onto another asset does not unwrap.

    wrapped = 0x01 (version) || nonce (12 random bytes) || ciphertext (32) || tag (16)
    AAD     = asset id, UTF-8

The master key is 32 raw bytes in ``<data dir>/keys/master.key``, mode 0600. A key
file that group or others may read or write is refused, as the ledger key is.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from market.storage.errors import KeyFileError, KeyUnwrapError
from market.storage.files import fsync_dir, unlink_quiet, write_all

__all__ = ["KEY_SIZE", "MasterKey"]

KEY_SIZE = 32  # master and data keys: AES-256

_WRAP_VERSION = 1
_WRAPPED_LEN = 1 + 12 + KEY_SIZE + 16


class MasterKey:
    """The key that wraps per-asset data keys. Never persisted anywhere but its file."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"master key must be {KEY_SIZE} bytes")
        self._aead = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "MasterKey(<redacted>)"

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """Load the key at ``path``, creating a fresh random one (mode 0600) if absent.

        Creation writes a private temp file (O_CREAT|O_EXCL, mode 0o600, so it is
        never readable by others, even briefly) and hard-links it into place, which
        fails if the file exists: concurrent first starts all end up using whichever
        key was linked first, and a half-written key file is never visible.
        Raises KeyFileError if the file exists but is not exactly 32 bytes, or if
        group or others may read or write it."""
        path = Path(path)
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                try:
                    write_all(fd, AESGCM.generate_key(bit_length=256))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass  # lost a creation race; use the winner's key
            finally:
                unlink_quiet(tmp)
            fsync_dir(path.parent)
            return cls._load(path)
        except OSError as exc:
            raise KeyFileError(f"cannot create master key file {path}: {exc}") from exc

    @classmethod
    def _load(cls, path: Path) -> MasterKey:
        try:
            with open(path, "rb") as fh:
                mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
                data = fh.read(KEY_SIZE + 1)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeyFileError(f"cannot read master key file {path}: {exc}") from exc
        if mode & 0o077:
            raise KeyFileError(
                f"master key file {path} is open to group or others (mode {mode:04o}); "
                f"make it private with: chmod 600 {path}"
            )
        if len(data) != KEY_SIZE:
            raise KeyFileError(
                f"master key file {path} must hold exactly {KEY_SIZE} bytes, "
                f"found {len(data)}{' or more' if len(data) > KEY_SIZE else ''}"
            )
        return cls(data)

    def wrap(self, asset_id: str, data_key: bytes) -> bytes:
        """Wrap ``data_key`` so that it only unwraps for ``asset_id``."""
        if len(data_key) != KEY_SIZE:
            raise ValueError(f"data key must be {KEY_SIZE} bytes")
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, bytes(data_key), asset_id.encode("utf-8"))
        return bytes([_WRAP_VERSION]) + nonce + sealed

    def new_data_key(self, asset_id: str) -> tuple[bytes, bytes]:
        """Return ``(data_key, wrapped)``: a fresh 32-byte key and its wrapped form."""
        data_key = AESGCM.generate_key(bit_length=256)
        return data_key, self.wrap(asset_id, data_key)

    def unwrap(self, asset_id: str, wrapped: bytes) -> bytes:
        """Recover a data key; raises KeyUnwrapError on tampering, a different asset
        id, or a different master key."""
        wrapped = bytes(wrapped)
        if len(wrapped) != _WRAPPED_LEN or wrapped[0] != _WRAP_VERSION:
            raise KeyUnwrapError("malformed wrapped data key")
        try:
            return self._aead.decrypt(wrapped[1:13], wrapped[13:], asset_id.encode("utf-8"))
        except InvalidTag:
            raise KeyUnwrapError(f"wrapped data key does not authenticate for asset {asset_id!r}") from None
