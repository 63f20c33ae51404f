"""Regulator enrollment (docs/API.md "Regulators"): the
regulator authority's key, and the enrollment it signs for each regulator.

The authority key is an Ed25519 key with a name, written as a C2SP signed-note signer
key (``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>``, the format of
golang.org/x/mod/sumdb/note) and published as its note vkey
(``<name>+<key id hex>+<base64(0x01 || public key)>``, docs/LEDGER.md §3): the value of
``MARKET_REGULATOR_AUTHORITY``.

An enrollment file is JSON ``{"enrollment": {...}, "signature": "<base64>"}``. The
enrollment is ``{"type": "regulator-enrollment", "v": 1, "name", "public_key",
"authority": "<name>+<key id hex>", "issued_at", "salt"}``; the signature is the
authority's Ed25519 signature over its RFC 8785 canonical JSON. ``check_enrollment``
is the one function that decides whether an enrollment holds: the CLI, the market and
the regulator's replay all call it. Pure: no database, no market state.
"""

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import LedgerError
from ledger.note import Verifier, key_id, make_vkey

__all__ = ["ENROLLMENT_TYPE", "Enrollment", "EnrollmentError", "authority_keygen", "check_enrollment",
           "authority_id", "authority_verifier", "enroll", "load_authority_key"]

ENROLLMENT_TYPE = "regulator-enrollment"
FIELDS = frozenset({"type", "v", "name", "public_key", "authority", "issued_at", "salt"})
MAX_FILE_BYTES = 16 * 1024
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


class EnrollmentError(Exception):
    """An authority key or an enrollment that does not hold; the message says why."""


@dataclass(frozen=True)
class Enrollment:
    """A checked enrollment: what the authority signed, and the signature."""

    document: dict[str, Any]
    signature: str  # base64
    sha256: str  # hex SHA-256 of the canonical document

    @property
    def name(self) -> str:
        return str(self.document["name"])

    @property
    def public_key(self) -> str:
        return str(self.document["public_key"])

    @property
    def authority(self) -> str:
        return str(self.document["authority"])

    def file(self) -> dict[str, Any]:
        return {"enrollment": self.document, "signature": self.signature}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _write_private(out: Path, text: str) -> None:
    if out.exists():
        raise EnrollmentError(f"{out} already exists; an authority key is not replaced by accident")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def authority_keygen(out: Path, name: str) -> str:
    """Write a new authority key to ``out`` (mode 0600, never over an existing file);
    return its note vkey."""
    key = Ed25519PrivateKey.generate()
    public = _raw_public(key)
    vkey = make_vkey(name, public)  # checks the name
    seed = key.private_bytes_raw()
    _write_private(out, f"{_PRIVATE_PREFIX}{name}+{key_id(name, public).hex()}+{_b64(bytes([1]) + seed)}\n")
    return vkey


def load_authority_key(path: Path) -> tuple[str, Ed25519PrivateKey]:
    """The authority's name and key from a file ``authority_keygen`` wrote."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrollmentError(f"cannot read the authority key {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    parts = text[len(_PRIVATE_PREFIX):].split("+", 2)  # the base64 may itself hold "+"
    if len(parts) != 3 or not text.startswith(_PRIVATE_PREFIX):
        raise EnrollmentError(f"{path} is not an authority key written by 'market regulator authority-keygen'")
    name, hex_id, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise EnrollmentError(f"{path}: the key is not valid base64") from None
    if len(raw) != 33 or raw[0] != 1:
        raise EnrollmentError(f"{path}: want an Ed25519 key (0x01 and 32 bytes)")
    key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if key_id(name, _raw_public(key)).hex() != hex_id:
        raise EnrollmentError(f"{path}: the key id {hex_id} does not match the key")
    return name, key


def _public_key(value: Any) -> bytes:
    if not isinstance(value, str):
        raise EnrollmentError("the regulator's public key is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnrollmentError("the regulator's public key is not valid standard base64") from None
    if len(raw) != 32 or _b64(raw) != value:
        raise EnrollmentError(f"the regulator's public key must be the base64 of 32 bytes, got {len(raw)}")
    from market.accounts.schemas import has_small_order

    if has_small_order(raw):
        raise EnrollmentError("the regulator's public key is a point of small order")
    Ed25519PublicKey.from_public_bytes(raw)
    return raw


def enroll(authority_key: Path, name: str, public_key: str, now: datetime) -> dict[str, Any]:
    """The signed enrollment file of a regulator named ``name`` with ``public_key``."""
    from market.core.types import rfc3339

    authority_name, key = load_authority_key(authority_key)
    name = name.strip()
    if not 0 < len(name) <= 200:
        raise EnrollmentError("--name must be 1 to 200 characters")
    _public_key(public_key)
    document: dict[str, str | int] = {"type": ENROLLMENT_TYPE, "v": 1, "name": name, "public_key": public_key,
                "authority": f"{authority_name}+{key_id(authority_name, _raw_public(key)).hex()}",
                "issued_at": rfc3339(now), "salt": _b64(secrets.token_bytes(32))}
    return {"enrollment": document, "signature": _b64(key.sign(rfc8785.dumps(document)))}


def authority_verifier(vkey: str) -> Verifier:
    """The authority's verifier from its vkey; EnrollmentError if it is not an Ed25519 note key."""
    try:
        verifier = Verifier.from_vkey(vkey.strip())
    except LedgerError as exc:
        raise EnrollmentError(f"the regulator authority's vkey is malformed ({exc})") from None
    if verifier.alg != 1:
        raise EnrollmentError("the regulator authority's vkey must be an Ed25519 note key (alg 0x01)")
    return verifier


def authority_id(vkey: str) -> str:
    """``<name>+<key id hex>`` of an authority vkey: how enrollments and entries name it."""
    verifier = authority_verifier(vkey)
    return f"{verifier.name}+{verifier.key_id.hex()}"


def check_enrollment(content: bytes | str | dict[str, Any], authority_vkey: str) -> Enrollment:
    """The enrollment in ``content`` (a file's bytes or its parsed JSON), checked against
    the authority's vkey: shape, the authority it names, and the signature. Raises
    EnrollmentError saying what does not hold."""
    if not authority_vkey or not authority_vkey.strip():
        raise EnrollmentError("no regulator authority is configured (MARKET_REGULATOR_AUTHORITY is empty)")
    verifier = authority_verifier(authority_vkey)
    if isinstance(content, dict):
        parsed: Any = content
    else:
        if len(content) > MAX_FILE_BYTES:
            raise EnrollmentError(f"the enrollment is over {MAX_FILE_BYTES} bytes")
        try:
            parsed = json.loads(content)
        except ValueError:
            raise EnrollmentError("the enrollment is not JSON") from None
    if not isinstance(parsed, dict) or set(parsed) != {"enrollment", "signature"}:
        raise EnrollmentError('the enrollment must be {"enrollment": {...}, "signature": "..."}')
    document, signature = parsed["enrollment"], parsed["signature"]
    if not isinstance(document, dict) or set(document) != FIELDS:
        raise EnrollmentError(f"the enrollment must have exactly the members {sorted(FIELDS)}")
    if document["type"] != ENROLLMENT_TYPE or document["v"] != 1 or isinstance(document["v"], bool):
        raise EnrollmentError(f"not a {ENROLLMENT_TYPE} document of version 1")
    if not isinstance(document["name"], str) or not 0 < len(document["name"].strip()) <= 200:
        raise EnrollmentError("the enrollment's name must be 1 to 200 characters")
    _public_key(document["public_key"])
    if not isinstance(document["issued_at"], str) or not _TIME.fullmatch(document["issued_at"]):
        raise EnrollmentError("the enrollment's issued_at is not an RFC 3339 UTC time")
    if not isinstance(document["salt"], str):
        raise EnrollmentError("the enrollment's salt is missing")
    want = authority_id(authority_vkey)
    if document["authority"] != want:
        raise EnrollmentError(f"the enrollment was signed by authority {document['authority']!r}, "
                              f"not by the configured authority {want!r}")
    try:
        raw_signature = base64.b64decode(signature, validate=True) if isinstance(signature, str) else b""
    except (binascii.Error, ValueError):
        raw_signature = b""
    if len(raw_signature) != 64:
        raise EnrollmentError("the enrollment's signature is not the base64 of 64 bytes")
    message = rfc8785.dumps(document)
    try:
        verifier.ed25519.verify(raw_signature, message)
    except InvalidSignature:
        raise EnrollmentError(f"the enrollment's signature does not verify under authority {want}") from None
    return Enrollment(document=document, signature=signature, sha256=hashlib.sha256(message).hexdigest())
