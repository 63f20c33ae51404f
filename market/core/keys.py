"""The market's Ed25519 signing key: created once under ``<data dir>/keys/`` with mode 0600.

The same key signs ledger entries and checkpoints (docs/LEDGER.md §2, §3). The file holds
the 32-byte private seed in PKCS#8 PEM, readable by the owner only.
"""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LEDGER_KEY_FILE = "ledger.key"


class KeyFileError(Exception):
    pass


def ledger_key_path(keys_dir: Path) -> Path:
    return keys_dir / LEDGER_KEY_FILE


def init_ledger_key(keys_dir: Path) -> tuple[Ed25519PrivateKey, bool]:
    """Load the key, or create it if missing. Returns (key, created)."""
    path = ledger_key_path(keys_dir)
    if path.exists():
        return load_ledger_key(keys_dir), False
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_ledger_key(keys_dir), False
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return key, True


def load_ledger_key(keys_dir: Path) -> Ed25519PrivateKey:
    path = ledger_key_path(keys_dir)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyFileError(f"no ledger key at {path}; run 'market keys init'") from None
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM Ed25519 private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a key that is not Ed25519")
    if path.stat().st_mode & 0o077:
        raise KeyFileError(f"{path} is readable by others; chmod 600 it")
    return key
