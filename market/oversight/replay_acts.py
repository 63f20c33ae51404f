"""Replay, part two (docs/API.md "Regulators"): with the
regulator authority's vkey, check that every regulator decision in the verified log was
signed by a key that authority enrolled — so an operator cannot forge one.

From the verified log it takes the ``regulator.enrolled`` entries (each: the
enrollment's hash, the authority's signature, the key id and public key) and every
regulator decision: ``oversight.action`` and ``oversight.alert_closed`` entries, whose
``data.act`` holds the signed act's ``document_sha256``, ``key_id`` and ``signature``,
and the ``trade.approved`` / ``trade.rejected`` documents a regulator decided (already
checked against their entries), which hold the same ``act``. It reads the enrollment
files (``GET /v1/oversight/enrollments``) and the act documents
(``GET /v1/oversight/acts``) and reports:

- ``enrollment``: an enrollment entry whose file is not served, does not hash to the
  entry, or does not verify under the authority (``check_enrollment``, the same check
  ``market admin create-regulator`` makes);
- ``act``: a decision with no signed act, signed by a key no enrollment under the
  authority names, whose document is not served or does not hash to the entry, or whose
  signature does not verify under the enrolled key, or that names another regulator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from market.accounts.enrollment import EnrollmentError, authority_id, check_enrollment

__all__ = ["ACT_ENTRY_TYPES", "ActRef", "check_acts"]

ENROLLED = "regulator.enrolled"
ACT_ENTRY_TYPES = ("oversight.action", "oversight.alert_closed")
REGULATOR_TRADE_EVENTS = ("trade.approved", "trade.rejected")
PAGE = 500
MAX_PAGE_BYTES = 64 << 20


class _Findings(Protocol):
    def __call__(self, kind: str, message: str, index: int | None, type: str | None, subject: str | None, /) -> None:
        ...


@dataclass(frozen=True)
class ActRef:
    """A regulator's decision as the verified log (or a verified document) records it."""

    index: int
    type: str
    subject: str
    actor: str
    act: Any  # the entry's (or document's) ``act``: {"document_sha256", "key_id", "signature"}


def refs_from_documents(documents: dict[int, dict[str, Any]], entries: dict[int, Any]) -> list[ActRef]:
    """The regulators' approvals and rejections among the verified trade documents."""
    refs = []
    for index, doc in sorted(documents.items()):
        if doc.get("event") in REGULATOR_TRADE_EVENTS and doc.get("by") == "regulator":
            refs.append(ActRef(index, str(doc["event"]), str(doc.get("subject")), str(doc.get("account")),
                               doc.get("act")))
    return refs


def _pages(get_json: Any, client: httpx.Client, url: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        page = get_json(client, url, token, params, MAX_PAGE_BYTES)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            from market.oversight.replay import ReplayError

            raise ReplayError(f"GET {url}: want {{\"items\": [...], \"next_cursor\": …}}")
        items += [i for i in page["items"] if isinstance(i, dict)]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _b64(value: Any) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        return None


def enrolled_keys(enrollments: dict[int, tuple[str, dict[str, Any]]], served: dict[str, Any], authority_vkey: str,
                  finding: _Findings) -> dict[str, bytes]:
    """key id → public key, for every enrollment entry that holds under the authority."""
    keys: dict[str, bytes] = {}
    for index, (subject, data) in sorted(enrollments.items()):
        digest, key_id = data.get("enrollment_sha256"), data.get("key_id")
        where = f"entry {index} ({ENROLLED} {subject})"
        file = served.get(digest) if isinstance(digest, str) else None
        if file is None:
            finding("enrollment", f"{where}: no enrollment served for it", index, ENROLLED, subject)
            continue
        try:
            enrollment = check_enrollment(file, authority_vkey)
        except EnrollmentError as exc:
            finding("enrollment", f"{where}: {exc}", index, ENROLLED, subject)
            continue
        if (enrollment.sha256, enrollment.public_key, enrollment.signature, enrollment.authority) != (
                digest, data.get("public_key"), data.get("signature"), data.get("authority")):
            finding("enrollment", f"{where}: the entry does not hold the enrollment's hash, key, signature "
                    "and authority", index, ENROLLED, subject)
            continue
        raw = _b64(enrollment.public_key)
        if isinstance(key_id, str) and raw is not None:
            keys[key_id] = raw
    return keys


def _check_one(ref: ActRef, keys: dict[str, bytes], acts: dict[str, dict[str, Any]], authority: str,
               finding: _Findings) -> bool:
    where = f"entry {ref.index} ({ref.type} {ref.subject})"

    def bad(message: str) -> bool:
        finding("act", f"{where}: {message}", ref.index, ref.type, ref.subject)
        return False

    act = ref.act
    if not isinstance(act, dict) or set(act) != {"document_sha256", "key_id", "signature"}:
        return bad("a regulator's decision that carries no signed act")
    key_id, digest = act["key_id"], act["document_sha256"]
    public = keys.get(key_id) if isinstance(key_id, str) else None
    if public is None:
        return bad(f"signed by key {key_id}, which was not enrolled under the regulator authority {authority}")
    served = acts.get(digest) if isinstance(digest, str) else None
    if served is None:
        return bad(f"the signed act {digest} is not served")
    document = served.get("document")
    try:
        message = rfc8785.dumps(document)
    except Exception:  # noqa: BLE001 - a document JSON cannot canonicalise is a finding, not a crash
        return bad("the signed act is not a JSON document")
    if hashlib.sha256(message).hexdigest() != digest:
        return bad("the signed act does not hash to the entry's document_sha256")
    signature = _b64(act["signature"])
    try:
        if signature is None or len(signature) != 64:
            raise InvalidSignature
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return bad(f"the act's signature does not verify under the enrolled key {key_id}")
    if not isinstance(document, dict) or document.get("regulator") != ref.actor:
        return bad(f"the signed act is by {document.get('regulator') if isinstance(document, dict) else None!r}, "
                   f"the entry's by {ref.actor!r}")
    return True


def check_acts(client: httpx.Client, base: str, token: str, authority_vkey: str, get_json: Any,
               enrollments: dict[int, tuple[str, dict[str, Any]]], refs: list[ActRef],
               finding: _Findings) -> int:
    """Check every regulator decision in ``refs``; add findings; return how many hold."""
    authority = authority_id(authority_vkey)
    files = {str(e.get("enrollment_sha256")): e.get("enrollment")
             for e in _pages(get_json, client, f"{base}/v1/oversight/enrollments", token)}
    keys = enrolled_keys(enrollments, files, authority_vkey, finding)
    acts = {str(a.get("document_sha256")): a for a in _pages(get_json, client, f"{base}/v1/oversight/acts", token)}
    return sum(_check_one(ref, keys, acts, authority, finding) for ref in refs)
