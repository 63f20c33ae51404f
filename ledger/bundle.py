"""Offline checking of a certificate or contract bundle (docs/LEDGER.md §6), with no
database and no market code::

    {"document": {...}, "ledger": {"index": 12, "leaf": "<base64>",
     "checkpoint": "<signed note>", "inclusion_proof": ["<base64>", ...], "vkey": "..."}}

``index`` is null (and checkpoint and proof absent or null) while the entry is pending.
``verify_bundle`` checks the document hash, the entry signature, the checkpoint
signature and the inclusion proof (RFC 9162 §2.1.3.2), trusting only the vkey given;
it reports rather than raises.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785

from .entry import parse_entry, verify_entry
from .errors import LedgerError, MalformedError, VerificationError
from .merkle import leaf_hash, verify_inclusion
from .note import Checkpoint, log_verifier, open_checkpoint
from .sources import decode_hash

__all__ = ["BundleReport", "verify_bundle"]


@dataclass
class BundleReport:
    """The outcome of ``verify_bundle``: valid, pending (not yet in the log), invalid, or
    ``not-a-bundle`` (the input is no bundle at all: not JSON, or JSON with neither
    ``document`` nor ``ledger``, such as an error response saved in its place).

    ``problem`` holds the ``status``, ``title`` and ``detail`` of such an input when it
    is an RFC 9457 problem document, so a tool can say what the server had answered.
    """

    status: Literal["valid", "pending", "invalid", "not-a-bundle"]
    failed_check: str | None = None
    error: str | None = None
    index: int | None = None
    checkpoint: Checkpoint | None = None
    entry: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None


def _problem_summary(value: Any) -> dict[str, Any] | None:
    """``status``, ``title`` and ``detail`` of an RFC 9457 problem document, else None."""
    if not isinstance(value, dict) or not isinstance(value.get("title"), str):
        return None
    if not isinstance(value.get("type"), str) and not isinstance(value.get("status"), int):
        return None
    return {k: value[k] for k in ("status", "title", "detail") if isinstance(value.get(k), (str, int))}


def verify_bundle(bundle: dict[str, Any] | bytes | str, vkey: str) -> BundleReport:
    """Check a bundle ``{"document", "ledger": {...}}`` against the log key ``vkey``.

    Checks, in order: the bundle's shape; the leaf's form (canonical entry JSON);
    ``data.document_sha256`` of the leaf
    against the SHA-256 of the RFC 8785 form of ``document``; the leaf's entry
    signature by the vkey's key (its kid must be the vkey's key id); then, unless
    the entry is pending (``index`` null and no checkpoint or proof), the
    checkpoint's signature by the vkey and the inclusion proof against the
    checkpoint's root and size. The bundle's own ``vkey`` is never trusted.
    """
    check = "bundle"
    try:
        check = "vkey"
        verifier = log_verifier(vkey)
        check = "bundle"
        if isinstance(bundle, (bytes, str)):
            if len(bundle) > 16 << 20:
                raise MalformedError("bundle is over 16 MiB")
            try:
                bundle = json.loads(bundle)
            except (ValueError, RecursionError):
                return BundleReport("not-a-bundle", failed_check=check, error="not JSON")
        if not isinstance(bundle, dict) or ("document" not in bundle and "ledger" not in bundle):
            problem = _problem_summary(bundle)
            what = "an error response (RFC 9457 problem)" if problem else "JSON without document and ledger"
            return BundleReport("not-a-bundle", failed_check=check, error=what, problem=problem)
        if "document" not in bundle or not isinstance(bundle.get("ledger"), dict):
            raise MalformedError('bundle must be {"document": ..., "ledger": {...}}')
        led = bundle["ledger"]
        leaf_b64 = led.get("leaf")
        if not isinstance(leaf_b64, str):
            raise MalformedError("ledger.leaf must be a base64 string")
        try:
            leaf = base64.b64decode(leaf_b64, validate=True)
        except ValueError:
            raise MalformedError("ledger.leaf is not base64") from None
        index = led.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise MalformedError("ledger.index must be null or an integer >= 0")

        check = "leaf"
        entry = parse_entry(leaf)
        check = "document hash"
        want = entry["data"].get("document_sha256")
        try:
            got = hashlib.sha256(rfc8785.dumps(bundle["document"])).hexdigest()
        except (rfc8785.CanonicalizationError, RecursionError) as e:
            raise MalformedError(f"document cannot be canonicalised: {e}") from None
        if want != got:
            raise VerificationError(f"leaf has document_sha256 {want!r}, the document hashes to {got}")

        check = "entry signature"
        verify_entry(leaf, verifier.ed25519, verifier.key_id)

        if index is None:
            check = "bundle"
            if led.get("checkpoint") is not None or led.get("inclusion_proof"):
                raise MalformedError("a pending bundle (index null) must have no checkpoint or proof")
            return BundleReport("pending", entry=entry)

        check = "checkpoint signature"
        note = led.get("checkpoint")
        if not isinstance(note, str):
            raise MalformedError("ledger.checkpoint must be a signed note")
        checkpoint, _ = open_checkpoint(note, verifier)

        check = "inclusion proof"
        proof = led.get("inclusion_proof")
        if not isinstance(proof, list) or len(proof) > 64:
            raise MalformedError("ledger.inclusion_proof must be a list of base64 hashes")
        hashes = [decode_hash(h, "inclusion proof hash") for h in proof]
        verify_inclusion(index, checkpoint.size, leaf_hash(leaf), hashes, checkpoint.root)
        return BundleReport("valid", index=index, checkpoint=checkpoint, entry=entry)
    except LedgerError as e:
        return BundleReport("invalid", failed_check=check, error=str(e))
