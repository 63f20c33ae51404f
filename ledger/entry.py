"""Ledger entries: leaves that are Ed25519-signed RFC 8785 (JCS) canonical JSON objects.

A leaf is the UTF-8 of an RFC 8785 (JCS) canonical JSON object::

    {"actor":…,"data":{…},"sig":{"alg":"Ed25519","kid":"<8 hex>","value":"<base64>"},
     "subject":"<kind>:<id>","time":"YYYY-MM-DDTHH:MM:SS.ffffffZ","type":"a.b","v":1}

``sig.value`` is the Ed25519 signature over the canonical JSON of the same object
without ``sig``; ``kid`` is the signing key's C2SP key id (``ledger.note.key_id``)
in hex. Entries hold no floats, so their canonical form is unambiguous.

Speed matters here (a log verifier checks every entry), so two shortcuts are
taken, each exact:

- Signing canonicalises only ``data`` and assembles the rest around it (the other
  members are plain ASCII by their patterns), splicing ``sig`` in at its sorted place
  (after ``data``, before ``subject``).
- Canonical JSON (``jcs``) comes from the C ``json`` encoder with sorted keys
  wherever that is byte-identical to JCS: values of only objects with string keys,
  arrays, strings, booleans, null and integers in the safe range, and text without
  characters beyond the Basic Multilingual Plane. There JSON's escapes are JCS's
  (``"``, ``\\`` and the control characters, ``\\b \\t \\n \\f \\r`` short, the rest
  ``\\u00xx``; everything else as UTF-8), and code point order equals UTF-16 order.
  Anything else (floats above all) goes through ``rfc8785``; a test holds the two
  equal on random values.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import BadSignatureError, MalformedError, UnknownKeyError

__all__ = [
    "ENTRY_VERSION",
    "jcs",
    "MAX_LEAF_SIZE",
    "EntrySigner",
    "canonical",
    "format_time",
    "parse_entry",
    "parse_signed",
    "sign_entry",
    "signed_bytes",
    "signed_message",
    "verify_entry",
]

ENTRY_VERSION = 1
MAX_LEAF_SIZE = 0xFFFF
_MAX_INT = 2**53 - 1
_FIELDS = frozenset({"actor", "data", "sig", "subject", "time", "type", "v"})
_SIG_FIELDS = frozenset({"alg", "kid", "value"})
_TYPE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_SUBJECT = re.compile(r"[a-z][a-z0-9_]*:[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_KID = re.compile(r"[0-9a-f]{8}")
_dumps_sorted = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


class EntrySigner(Protocol):
    """What signing an entry needs: a 4-byte key id and raw Ed25519 signing."""

    key_id: bytes

    def sign(self, message: bytes) -> bytes: ...


def _check_values(obj: Any, path: str = "$") -> None:
    """Reject what JCS cannot or the ledger will not encode: floats, unsafe integers, non-string keys."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise MalformedError(f"{path}: object keys must be strings")
            if not isinstance(v, (str, bool)) and v is not None:
                _check_values(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_values(v, f"{path}[{i}]")
    elif isinstance(obj, float):
        raise MalformedError(f"{path}: floats are not allowed in entries")
    elif isinstance(obj, int) and not isinstance(obj, bool) and not -_MAX_INT <= obj <= _MAX_INT:
        raise MalformedError(f"{path}: integer outside the JSON safe range")


def _plain(obj: Any) -> bool:
    """Whether ``obj`` holds only what the C encoder writes exactly as JCS does (exact types:
    objects with string keys, arrays, strings, booleans, null, integers in the safe range)."""
    stack = [obj]
    budget = 1_000_000  # a value that refers to itself never ends: rfc8785 refuses it
    while stack:
        budget -= 1
        if budget < 0:
            return False
        value = stack.pop()
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if kind is int:
            if not -_MAX_INT <= value <= _MAX_INT:
                return False
        elif kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    return False
                stack.append(item)
        elif kind is list or kind is tuple:
            stack.extend(value)
        else:
            return False
    return True


_BEYOND_BMP = "\U00010000"


def jcs(obj: Any) -> bytes:
    """The RFC 8785 canonical JSON of any JSON value, as ``rfc8785.dumps`` gives it (and
    raising what it raises): from the C encoder where that is exact (module docstring)."""
    if _plain(obj):
        text = _dumps_sorted(obj)
        if text.isascii():
            return text.encode("ascii")
        if max(text) < _BEYOND_BMP:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: rfc8785 decides
                pass
    return rfc8785.dumps(obj)


def canonical(obj: Any) -> bytes:
    """Return the RFC 8785 canonical JSON of obj.

    Raises MalformedError for floats, integers beyond 2**53 - 1, non-string keys
    and values JSON cannot hold.
    """
    _check_values(obj)
    try:
        return jcs(obj)
    except (TypeError, ValueError) as e:  # rfc8785.CanonicalizationError is a ValueError
        raise MalformedError(f"cannot canonicalise: {e}") from None


def format_time(t: datetime) -> str:
    """Return ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for an aware datetime, in UTC."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise MalformedError("entry time must be timezone-aware")
    t = t.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond:06d}Z"
    )


def _check_fields(etype: Any, subject: Any, actor: Any, data: Any, time: Any, v: Any) -> None:
    if not isinstance(etype, str) or len(etype) > 100 or not _TYPE.fullmatch(etype):
        raise MalformedError(f"entry type {etype!r}: want a dotted lowercase name")
    if not isinstance(subject, str) or len(subject) > 200 or not _SUBJECT.fullmatch(subject):
        raise MalformedError(f"entry subject {subject!r}: want <kind>:<id>")
    if not isinstance(actor, str) or len(actor) > 200 or not _ACTOR.fullmatch(actor):
        raise MalformedError(f"entry actor {actor!r}: want an account id or 'market'")
    if not isinstance(data, dict):
        raise MalformedError("entry data must be an object")
    if not isinstance(time, str) or not _TIME.fullmatch(time):
        raise MalformedError(f"entry time {time!r}: want YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        datetime.fromisoformat(time[:-1])
    except ValueError:
        raise MalformedError(f"entry time {time!r} is not a valid date") from None
    if not isinstance(v, int) or isinstance(v, bool) or v != ENTRY_VERSION:
        raise MalformedError(f"entry version {v!r}, want {ENTRY_VERSION}")


def sign_entry(
    signer: EntrySigner, type: str, subject: str, actor: str, data: dict[str, Any], time: datetime
) -> tuple[dict[str, Any], bytes]:
    """Build and sign an entry; return (entry dict, leaf bytes).

    The leaf equals ``rfc8785.dumps(entry)``. Raises MalformedError for a bad
    field, a float in data, or a leaf over 65,535 bytes.
    """
    stamp = format_time(time)
    _check_fields(type, subject, actor, data, stamp, ENTRY_VERSION)
    if len(signer.key_id) != 4:
        raise MalformedError(f"key id is {len(signer.key_id)} bytes, want 4")
    # type, subject, actor and time match patterns of plain ASCII that JSON never
    # escapes, and the members sort as actor < data < sig < subject < time < type < v,
    # so the canonical form is assembled around the canonical ``data`` directly.
    head = b'{"actor":"%s","data":%s,' % (actor.encode(), canonical(data))
    tail = b'"subject":"%s","time":"%s","type":"%s","v":%d}' % (
        subject.encode(), stamp.encode(), type.encode(), ENTRY_VERSION)
    message = head + tail
    kid = signer.key_id.hex()
    value = base64.b64encode(signer.sign(message)).decode()
    leaf = head + b'"sig":{"alg":"Ed25519","kid":"%s","value":"%s"},' % (kid.encode(), value.encode()) + tail
    if len(leaf) > MAX_LEAF_SIZE:
        raise MalformedError(f"entry is {len(leaf)} bytes, want at most {MAX_LEAF_SIZE}")
    entry = {"actor": actor, "data": data, "subject": subject, "time": stamp, "type": type, "v": ENTRY_VERSION,
             "sig": {"alg": "Ed25519", "kid": kid, "value": value}}
    return entry, leaf


def _parse_int(s: str) -> int:
    n = int(s)
    if not -_MAX_INT <= n <= _MAX_INT:
        raise MalformedError(f"integer {s} is outside the JSON safe range")
    return n


def _parse_float(s: str) -> float:
    raise MalformedError(f"number {s}: floats are not allowed in entries")


def _parse_constant(s: str) -> float:
    raise MalformedError(f"{s} is not JSON")


_decoder = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def _encode(obj: Any, ascii_only: bool) -> bytes:
    if ascii_only:  # exact for ASCII output, see the module docstring
        return _dumps_sorted(obj).encode("utf-8")
    return rfc8785.dumps(obj)


def parse_signed(leaf: bytes) -> tuple[dict[str, Any], bytes]:
    """``parse_entry``, also returning the raw 64-byte signature (not checked)."""
    if len(leaf) > MAX_LEAF_SIZE:
        raise MalformedError(f"entry is {len(leaf)} bytes, want at most {MAX_LEAF_SIZE}")
    try:
        text = leaf.decode("utf-8")
        obj = _decoder.decode(text)
        if not isinstance(obj, dict):
            raise MalformedError("entry must be a JSON object")
        ascii_only = leaf.isascii()
        if _encode(obj, ascii_only) != leaf:
            raise MalformedError("entry is not canonical JSON (RFC 8785)")
    except (UnicodeError, ValueError, RecursionError) as e:  # MalformedError passes through
        raise MalformedError(f"entry is not valid JSON: {e}") from None
    if obj.keys() != _FIELDS:
        raise MalformedError(f"entry fields {sorted(obj)}, want {sorted(_FIELDS)}")
    _check_fields(obj["type"], obj["subject"], obj["actor"], obj["data"], obj["time"], obj["v"])
    sig = obj["sig"]
    if not isinstance(sig, dict) or sig.keys() != _SIG_FIELDS:
        raise MalformedError(f"entry sig must have fields {sorted(_SIG_FIELDS)}")
    if sig["alg"] != "Ed25519":
        raise MalformedError(f"entry sig alg {sig['alg']!r}, want 'Ed25519'")
    if not isinstance(sig["kid"], str) or not _KID.fullmatch(sig["kid"]):
        raise MalformedError("entry sig kid must be 8 lowercase hex digits")
    value = sig["value"]
    if not isinstance(value, str) or len(value) != 88:
        raise MalformedError("entry sig value must be the base64 of 64 bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise MalformedError("entry sig value is not base64") from None
    if len(raw) != 64 or base64.b64encode(raw).decode() != value:
        raise MalformedError("entry sig value must be the canonical base64 of 64 bytes")
    return obj, raw


def parse_entry(leaf: bytes) -> dict[str, Any]:
    """Parse a leaf strictly and return the entry; raises MalformedError.

    The leaf must be at most 65,535 bytes of UTF-8 canonical JSON (re-encoding
    gives the same bytes) with exactly the entry fields, version 1, a well-formed
    type, subject, actor, time and ``sig`` (Ed25519, 8 hex digit kid, base64 of
    64 bytes), and no floats. The signature itself is not checked.
    """
    return parse_signed(leaf)[0]


def signed_message(entry: dict[str, Any]) -> bytes:
    """Return the bytes an entry's signature covers: canonical JSON without ``sig``.

    Requires an entry as ``parse_entry`` returns it (no floats, safe integers).
    """
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    try:
        text = _dumps_sorted(unsigned)
    except ValueError as e:
        raise MalformedError(f"cannot canonicalise: {e}") from None
    if text.isascii():
        return text.encode("ascii")
    return canonical(unsigned)


def signed_bytes(leaf: bytes, entry: dict[str, Any]) -> bytes:
    """Cut the top-level ``,"sig":{…}`` member out of a leaf that ``parse_entry`` accepted.

    Equals ``signed_message(entry)``. The member is found with ``rfind``: a raw
    ``,"sig":{`` cannot occur inside a JSON string, and after the top-level
    ``sig`` come only string and integer members, so the last occurrence is it.
    """
    sig = entry["sig"]
    member = b',"sig":{"alg":"Ed25519","kid":"%s","value":"%s"}' % (sig["kid"].encode(), sig["value"].encode())
    i = leaf.rfind(member)
    if i < 0:
        raise AssertionError("sig member not found in a canonical entry")
    return leaf[:i] + leaf[i + len(member) :]


def verify_entry(leaf: bytes, public_key: bytes | Ed25519PublicKey, kid: bytes | str) -> dict[str, Any]:
    """Parse a leaf and verify its signature by ``public_key`` with key id ``kid``.

    ``kid`` is the 4-byte key id (or its 8 hex digits). Returns the entry. Raises
    MalformedError for a malformed leaf, UnknownKeyError when the entry names
    another key id, BadSignatureError when the signature fails.
    """
    entry, signature = parse_signed(leaf)
    want = kid.hex() if isinstance(kid, bytes) else kid
    if entry["sig"]["kid"] != want:
        raise UnknownKeyError(f"entry signed by key {entry['sig']['kid']}, want {want}")
    key = public_key if isinstance(public_key, Ed25519PublicKey) else Ed25519PublicKey.from_public_bytes(public_key)
    try:
        key.verify(signature, signed_bytes(leaf, entry))
    except InvalidSignature:
        raise BadSignatureError("entry signature does not verify") from None
    return entry
