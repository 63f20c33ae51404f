"""Documents that a party signs: the market hands out canonical bytes, the party signs
them with one of its registered Ed25519 keys and posts bytes and signature back.

The market keeps no draft of what it handed out. It re-checks everything from the
bytes: canonical RFC 8785 JSON, the expected document type and market, freshness, and
the signature under an unrevoked key of the expected account. Each failure is a 422
with its own problem type, so a client can tell a stale claim from a bad signature.
The signature itself is checked by ``market.accounts.signatures`` (keys are accounts').
"""

import base64
import binascii
import json
from datetime import datetime, timedelta
from typing import Any

from ledger.entry import jcs
from market.core.errors import Unprocessable
from market.core.types import rfc3339

MAX_DOCUMENT_BYTES = 64 * 1024
FRESHNESS = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)


def canonical(document: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON (``ledger.entry.jcs``: the C encoder where that is exact)."""
    return jcs(document)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values. Python's ``==`` is not: it holds ``True == 1`` and
    ``1 == 1.0``, so a document with ``true`` where the market wrote ``1`` would pass."""
    try:
        return bool(jcs(a) == jcs(b))
    except Exception:  # noqa: BLE001 - a value JSON cannot hold equals nothing the market wrote
        return False


def to_sign(document: dict[str, Any]) -> dict[str, Any]:
    """The API shape: the document and the exact bytes to sign, base64."""
    return {"document": document, "signing_bytes": base64.b64encode(canonical(document)).decode()}


def decode_b64(value: str, what: str, kind: str) -> bytes:
    """``value`` decoded from standard base64, or 422 ``kind`` naming ``what``."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unprocessable(f"{what} is not valid standard base64", kind=kind) from None


def open_document(
    signing_bytes_b64: str, *, doc_type: str, market: str, fields: frozenset[str]
) -> tuple[bytes, dict[str, Any]]:
    """Decode and check the bytes are a canonical document of ``doc_type`` for this market,
    with exactly the members ``fields`` (nothing added that the market did not hand out)."""
    raw = decode_b64(signing_bytes_b64, "signing_bytes", "malformed-document")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise Unprocessable(f"signing_bytes is {len(raw)} bytes, want at most {MAX_DOCUMENT_BYTES}", kind="malformed-document")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested beyond reason
        raise Unprocessable("signing_bytes is not JSON", kind="malformed-document") from None
    if not isinstance(document, dict):
        raise Unprocessable("signing_bytes is not a JSON object", kind="malformed-document")
    try:
        canonical_form = canonical(document)
    except Exception:  # noqa: BLE001 - rfc8785 refuses floats out of range etc.
        raise Unprocessable("signing_bytes cannot be canonicalised", kind="non-canonical-document") from None
    if canonical_form != raw:
        raise Unprocessable("signing_bytes are not the canonical (RFC 8785) form the market gave out",
                            kind="non-canonical-document")
    if not same([document.get("type"), document.get("market"), document.get("v")], [doc_type, market, 1]):
        raise Unprocessable(f"signing_bytes are not a {doc_type} document of this market", kind="altered-document")
    if set(document) != fields:
        extra, missing = sorted(set(document) - fields), sorted(fields - set(document))
        raise Unprocessable(f"the {doc_type} has unexpected members {extra} or lacks {missing}", kind="altered-document")
    return raw, document


def check_fresh(document: dict[str, Any], now: datetime, *, kind: str = "stale-document") -> None:
    issued = document.get("issued_at")
    try:
        when = datetime.strptime(issued, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=now.tzinfo) if isinstance(issued, str) else None
    except ValueError:
        when = None
    if when is None or rfc3339(when) != issued:
        raise Unprocessable("issued_at is missing or not an RFC 3339 UTC time", kind="altered-document")
    if when > now + CLOCK_SKEW:
        raise Unprocessable("issued_at is in the future", kind="altered-document")
    if now - when > FRESHNESS:
        raise Unprocessable(f"the document was issued at {issued}, more than 24 hours ago; fetch a new one", kind=kind)
