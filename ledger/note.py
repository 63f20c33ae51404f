"""Signed notes, checkpoints and cosignatures (C2SP signed-note, tlog-checkpoint,
tlog-cosignature/v1), Ed25519 only.

- signed-note: a note is its text (UTF-8, no control characters but newline, ending
  in a newline), a blank line, and signature lines ``— <name> <base64(key id ||
  signature)>`` (U+2014, one space). The key id is the first 4 bytes of
  SHA-256(name || 0x0A || alg || public key); a verifier key ("vkey") is
  ``<name>+<key id hex>+<base64(alg || public key)>``. Alg 0x01 is an Ed25519 note
  signature over the text.
- tlog-checkpoint: the text of a checkpoint note is ``<origin>\\n<size>\\n<base64
  root>\\n`` with optional extension lines after.
- tlog-cosignature: alg 0x04; the signature is over ``cosignature/v1\\ntime
  <t>\\n`` followed by the checkpoint body, and the line payload is key id || 8-byte
  big-endian t || signature.

``open_note`` follows the verifier rules of signed-note (and the ledger's format
notes): signatures by unknown keys are ignored, a failing signature by a known key
rejects the note, and a note with no verified known-key signature is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import BadSignatureError, MalformedError, UnknownKeyError, VerificationError
from .merkle import HASH_SIZE

__all__ = [
    "ALG_COSIGNATURE",
    "ALG_ED25519",
    "Checkpoint",
    "CosignatureSigner",
    "key_id",
    "log_verifier",
    "make_vkey",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Note",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    "Signature",
    "Signer",
    "Verifier",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE = 0x04
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_MAX_TIMESTAMP = (1 << 63) - 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_strict(s: str, what: str) -> bytes:
    """Decode standard padded base64, rejecting anything but its canonical form."""
    try:
        data = base64.b64decode(s, validate=True)
    except (ValueError, TypeError):
        raise MalformedError(f"{what}: invalid base64") from None
    if _b64(data) != s:
        raise MalformedError(f"{what}: non-canonical base64")
    return data


def _is_decimal(s: str) -> bool:
    return s.isascii() and s.isdigit() and str(int(s)) == s


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" or not c.isprintable() for c in name):
        raise MalformedError(f"invalid key name {name!r}: want non-empty, no spaces, no '+'")


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> bytes:
    """Return the 4-byte key id SHA-256(name || 0x0A || alg || public_key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public_key).digest()[:4]


def make_vkey(name: str, public_key: bytes, alg: int = ALG_ED25519) -> str:
    """Return the verifier key string ``<name>+<key id hex>+<base64(alg || public_key)>``."""
    _check_name(name)
    if len(public_key) != 32:
        raise MalformedError(f"public key is {len(public_key)} bytes, want 32")
    return f"{name}+{key_id(name, public_key, alg).hex()}+{_b64(bytes([alg]) + public_key)}"


def _raw_public(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedError("note text must end in a newline")
    if _CONTROL.search(text):
        raise MalformedError("note text contains a control character")


# --- keys ----------------------------------------------------------------------------


class Signer:
    """Signs notes (alg 0x01) and raw messages with an Ed25519 key named ``name``."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self.private_key = private_key
        self.public_key = _raw_public(private_key)
        self.key_id = key_id(name, self.public_key, ALG_ED25519)
        self.vkey = make_vkey(name, self.public_key, ALG_ED25519)

    def sign(self, message: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of message."""
        return self.private_key.sign(message)

    def signature_line(self, text: str) -> str:
        """Return this key's signature line for the note text, ending in a newline."""
        _check_text(text)
        sig = self.private_key.sign(text.encode("utf-8"))
        return f"{_DASH}{self.name} {_b64(self.key_id + sig)}\n"

    def sign_note(self, text: str) -> str:
        """Return the signed note: the text, a blank line, and this key's signature line."""
        return f"{text}\n{self.signature_line(text)}"


class CosignatureSigner:
    """Cosigns checkpoints under tlog-cosignature/v1 (alg 0x04) as witness ``name``."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self.private_key = private_key
        self.public_key = _raw_public(private_key)
        self.key_id = key_id(name, self.public_key, ALG_COSIGNATURE)
        self.vkey = make_vkey(name, self.public_key, ALG_COSIGNATURE)

    def signature_line(self, body: str, timestamp: int) -> str:
        """Return the cosignature line for a checkpoint body at ``timestamp`` (unix seconds)."""
        parse_checkpoint(body)  # a witness cosigns checkpoints, nothing else
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise MalformedError(f"timestamp {timestamp} out of range")
        sig = self.private_key.sign(_cosigned_message(body, timestamp))
        payload = self.key_id + timestamp.to_bytes(8, "big") + sig
        return f"{_DASH}{self.name} {_b64(payload)}\n"


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class Verifier:
    """A public key that verifies note signatures (alg 0x01) or cosignatures (alg 0x04)."""

    name: str
    key_id: bytes
    alg: int
    public_key: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<key id hex>+<base64(alg || key)>`` strictly; check the key id."""
        if not isinstance(vkey, str) or len(vkey) > 1024:
            raise MalformedError("malformed vkey")
        parts = vkey.split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise MalformedError("malformed vkey: want <name>+<key id>+<key>")
        name, hex_id, b64 = parts
        _check_name(name)
        if len(hex_id) != 8 or not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise MalformedError("malformed vkey: key id must be 8 lowercase hex digits")
        raw = _b64decode_strict(b64, "vkey")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE):
            raise MalformedError("malformed vkey: want alg 0x01 or 0x04 and a 32-byte Ed25519 key")
        alg, public = raw[0], raw[1:]
        if key_id(name, public, alg).hex() != hex_id:
            raise MalformedError(f"malformed vkey: key id {hex_id}, want {key_id(name, public, alg).hex()}")
        return cls(name, bytes.fromhex(hex_id), alg, public, Ed25519PublicKey.from_public_bytes(public))

    @property
    def vkey(self) -> str:
        return make_vkey(self.name, self.public_key, self.alg)

    @property
    def ed25519(self) -> Ed25519PublicKey:
        """The key as a ``cryptography`` object."""
        return self._key

    def verify(self, text: str, signature: bytes) -> int | None:
        """Verify a signature payload (after the key id) over the note text.

        Returns the cosignature timestamp for alg 0x04, None for alg 0x01. Raises
        BadSignatureError when the signature does not verify.
        """
        timestamp = None
        if self.alg == ALG_COSIGNATURE:
            if len(signature) != 8 + 64:
                raise BadSignatureError(f"cosignature by {self.name} is {len(signature)} bytes, want 72")
            timestamp = int.from_bytes(signature[:8], "big")
            message, signature = _cosigned_message(text, timestamp), signature[8:]
        else:
            if len(signature) != 64:
                raise BadSignatureError(f"signature by {self.name} is {len(signature)} bytes, want 64")
            message = text.encode("utf-8")
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise BadSignatureError(f"signature by {self.name}+{self.key_id.hex()} does not verify") from None
        return timestamp


# --- notes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: the signer's name, key id, and the payload after the key id."""

    name: str
    key_id: bytes
    signature: bytes
    timestamp: int | None = None  # set for a verified cosignature


@dataclass(frozen=True)
class Note:
    """An opened note: its text, every signature line, and those verified by known keys."""

    text: str
    sigs: tuple[Signature, ...]
    verified_by: tuple[Signature, ...]


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(_DASH):
        raise MalformedError("signature line must start with U+2014 and one space")
    name, sep, b64 = line[len(_DASH) :].partition(" ")
    if not sep or not b64:
        raise MalformedError("signature line must be '— <name> <base64>'")
    _check_name(name)
    raw = _b64decode_strict(b64, "signature line")
    if len(raw) < 5:
        raise MalformedError(f"signature payload is {len(raw)} bytes, want at least 5")
    return Signature(name, raw[:4], raw[4:])


def open_note(note_text: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify its signatures by the known ``verifiers``.

    Raises MalformedError for a note that does not parse (size over 1 MiB, invalid
    UTF-8, control characters, no blank line before the signatures, a bad
    signature line, more than 100 signatures), BadSignatureError when a known key's
    signature fails, UnknownKeyError when no known key signed.
    """
    if isinstance(note_text, bytes):
        if len(note_text) > MAX_NOTE_SIZE:
            raise MalformedError(f"note is {len(note_text)} bytes, want at most {MAX_NOTE_SIZE}")
        try:
            note_text = note_text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError("note is not valid UTF-8") from None
    if len(note_text) > MAX_NOTE_SIZE:
        raise MalformedError(f"note is over {MAX_NOTE_SIZE} bytes")
    try:
        if len(note_text.encode("utf-8")) > MAX_NOTE_SIZE:
            raise MalformedError(f"note is over {MAX_NOTE_SIZE} bytes")
    except UnicodeEncodeError:
        raise MalformedError("note is not valid UTF-8") from None
    if _CONTROL.search(note_text):
        raise MalformedError("note contains a control character")
    split = note_text.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no blank line before its signatures")
    text, block = note_text[: split + 1], note_text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedError("note must end with signature lines, each ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError(f"note has {len(lines)} signatures, want at most {MAX_SIGNATURES}")

    known = {(v.name, v.key_id): v for v in verifiers}
    sigs: list[Signature] = []
    verified: list[Signature] = []
    seen: set[str] = set()
    verified_keys: set[tuple[str, bytes]] = set()
    for line in lines:
        sig = _parse_signature_line(line)
        if line in seen:  # an identical repeated line adds nothing
            continue
        seen.add(line)
        verifier = known.get((sig.name, sig.key_id))
        if verifier is not None:
            if (sig.name, sig.key_id) in verified_keys:  # one signature per known key counts
                continue
            verified_keys.add((sig.name, sig.key_id))
            timestamp = verifier.verify(text, sig.signature)
            sig = Signature(sig.name, sig.key_id, sig.signature, timestamp)
            verified.append(sig)
        sigs.append(sig)
    if not verified:
        raise UnknownKeyError("note has no signature by a known key")
    return Note(text, tuple(sigs), tuple(verified))


# --- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, tree size and root hash (tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or _CONTROL.search(self.origin) or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be a non-empty line")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise MalformedError(f"checkpoint size {self.size!r}, want an integer >= 0")
        if len(self.root) != HASH_SIZE:
            raise MalformedError(f"checkpoint root is {len(self.root)} bytes, want {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext or _CONTROL.search(ext):
                raise MalformedError("checkpoint extension lines must be non-empty lines")

    def body(self) -> str:
        """The note text: origin, size and base64 root, one per line, then extensions."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body strictly; raises MalformedError.

    Requires a final newline, a non-empty origin, a canonical decimal size ("007"
    is rejected), and the canonical base64 of exactly 32 bytes. Non-empty extension
    lines after the third line are kept.
    """
    if len(body) > MAX_NOTE_SIZE or not body.endswith("\n"):
        raise MalformedError("checkpoint must end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedError(f"checkpoint has {len(lines)} lines, want at least 3")
    origin, size, root = lines[:3]
    if not size or len(size) > 20 or not _is_decimal(size) or int(size) >= 1 << 63:
        raise MalformedError(f"checkpoint size {size!r} is not a canonical decimal")
    raw = _b64decode_strict(root, "checkpoint root")
    if len(raw) != HASH_SIZE:
        raise MalformedError(f"checkpoint root is {len(raw)} bytes, want {HASH_SIZE}")
    return Checkpoint(origin, int(size), raw, tuple(lines[3:]))


def sign_checkpoint(signer: Signer, checkpoint: Checkpoint) -> str:
    """Return the checkpoint as a note signed by ``signer``."""
    return signer.sign_note(checkpoint.body())


def open_checkpoint(
    note_text: str | bytes, verifier: Verifier, cosigners: Iterable[Verifier] = ()
) -> tuple[Checkpoint, Note]:
    """Open a checkpoint note that must be signed by ``verifier`` (the log's key).

    Cosignatures by ``cosigners`` are verified too (a failing one rejects the note).
    The origin must equal the log key's name. Raises UnknownKeyError when the log's
    signature is absent, BadSignatureError when a signature fails, MalformedError
    for a malformed note or body, VerificationError for another origin.
    """
    if verifier.alg != ALG_ED25519:
        raise MalformedError("a checkpoint's log key must be an Ed25519 note key (alg 0x01)")
    note = open_note(note_text, [verifier, *cosigners])
    if not any(s.name == verifier.name and s.key_id == verifier.key_id for s in note.verified_by):
        raise UnknownKeyError(f"checkpoint is not signed by {verifier.name}+{verifier.key_id.hex()}")
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != verifier.name:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r}, want {verifier.name!r}")
    return checkpoint, note


def log_verifier(vkey: str) -> Verifier:
    """The verifier of a log's vkey; MalformedError unless it is an Ed25519 note key."""
    verifier = Verifier.from_vkey(vkey)
    if verifier.alg != ALG_ED25519:
        raise MalformedError("the log's vkey must be an Ed25519 note key (alg 0x01)")
    return verifier
