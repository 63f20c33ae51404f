"""A witness: a monitor that cosigns checkpoints it has checked (C2SP tlog-cosignature/v1).

One run reads the log's latest checkpoint, verifies it under the log's vkey,
checks that it is consistent with the checkpoint in the witness's state file
(RFC 9162 §2.1.4.2 proof from the log's consistency endpoint), stores it, and
posts the checkpoint note with the witness's cosignature line appended to
``<base>/v1/ledger/cosignatures``. A fork or a size decrease is refused and leaves
the state untouched.

The state is written before the cosignature leaves the witness: a witness must
never sign two checkpoints that are inconsistent with each other, even if a post
fails half way and the run is retried.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from .errors import LedgerError, MalformedError
from .note import CosignatureSigner, Verifier, open_checkpoint
from .sources import HttpError, HttpSource, load_state, save_state
from .verify import check_consistency, log_verifier

__all__ = ["WitnessResult", "generate_witness_key", "load_witness_key", "witness_name", "witness_once"]


def load_witness_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Load an Ed25519 key from a file: a raw 32-byte seed or PEM PKCS#8."""
    data = Path(path).read_bytes()
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise MalformedError(f"{os.fspath(path)}: not a PEM PKCS#8 private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise MalformedError(f"{os.fspath(path)}: not an Ed25519 key")
        return key
    raise MalformedError(f"{os.fspath(path)}: want a raw 32-byte seed or a PEM PKCS#8 Ed25519 key")


def generate_witness_key(name: str, path: str | os.PathLike[str]) -> str:
    """Write a new Ed25519 key as PEM PKCS#8 to ``path`` (mode 0600, never overwriting).

    Also writes the public ``<path>.vkey``. Returns the witness vkey (alg 0x04).
    """
    key = Ed25519PrivateKey.generate()
    vkey = CosignatureSigner(name, key).vkey
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    Path(f"{os.fspath(path)}.vkey").write_text(vkey + "\n", encoding="utf-8")
    return vkey


def witness_name(key_path: str | os.PathLike[str], key: Ed25519PrivateKey) -> str:
    """The witness name recorded in ``<key>.vkey`` by ``generate_witness_key``."""
    vkey_path = Path(f"{os.fspath(key_path)}.vkey")
    try:
        verifier = Verifier.from_vkey(vkey_path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise LedgerError(f"no --name given and no {vkey_path.name} next to the key") from None
    if CosignatureSigner(verifier.name, key).vkey != verifier.vkey:
        raise LedgerError(f"{vkey_path.name} does not match the key")
    return verifier.name


def _what_to_do(error: HttpError, witness_vkey: str) -> str:
    """The next step for a refused cosignature (the checkpoint is already in the state)."""
    if error.kind == "bad-cosignature" or (error.status == 422 and "unknown" in str(error).lower()):
        return ("The log accepts cosignatures only from the witness keys its operator configured: "
                f"send them this witness's vkey, {witness_vkey}, to add (for the market, to "
                "MARKET_LEDGER_WITNESSES), then run the witness again")
    if error.kind == "unknown-checkpoint" or error.status == 409:
        return "The log has moved on or never signed that checkpoint: run the witness again"
    if error.status >= 500:
        return "The log failed to handle the post: try again later"
    return "Check the log's URL, then run the witness again (the checked checkpoint is kept in the state)"


@dataclass
class WitnessResult:
    """What one witness run did."""

    size: int
    previous_size: int | None
    timestamp: int
    cosignature: str
    status_code: int


def witness_once(
    base_url: str,
    vkey: str,
    key: Ed25519PrivateKey,
    state_path: str | os.PathLike[str],
    name: str,
    *,
    now: int | None = None,
    source: HttpSource | None = None,
) -> WitnessResult:
    """Check the log's latest checkpoint against the state, cosign it and post the cosignature.

    Raises LedgerError (InconsistentError for a fork or a rollback) without
    touching the state, or after storing it if only the post failed.
    """
    verifier = log_verifier(vkey)
    signer = CosignatureSigner(name, key)
    src = source or HttpSource(base_url)
    try:
        note = src.get("v1/ledger/checkpoint", 1 << 20)
        if note is None:
            raise LedgerError("GET v1/ledger/checkpoint: not found")
        note_text = note.decode("utf-8", errors="strict")
        checkpoint, _ = open_checkpoint(note_text, verifier)
        previous = load_state(state_path)
        old = None
        if previous is not None:
            old, _ = open_checkpoint(previous, verifier)
            check_consistency(src, old, checkpoint)
        save_state(state_path, note_text)
        timestamp = int(time.time()) if now is None else now
        line = signer.signature_line(checkpoint.body(), timestamp)
        body = note_text + line
        r = src.post("v1/ledger/cosignatures", body.encode("utf-8"), "text/plain; charset=utf-8")
        if not 200 <= r.status_code < 300:
            error = HttpError("POST", "v1/ledger/cosignatures", r.status_code, r.content)
            raise LedgerError(f"{error}. {_what_to_do(error, signer.vkey)}")
        return WitnessResult(checkpoint.size, old.size if old else None, timestamp, line, r.status_code)
    except UnicodeDecodeError:
        raise MalformedError("checkpoint is not UTF-8") from None
    finally:
        if source is None:
            src.close()
