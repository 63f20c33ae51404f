"""The one door from the domain to the audit ledger.

``record`` appends a signed entry inside the caller's open transaction, so the business
row and its ledger entry commit together (DESIGN §2.1). The ledger writer for the
session's database is put on ``session.info`` by the session provider. ``salted`` is
the one way a detail the public must not read or guess (a reason, a draft's commitment,
a count) is committed: a salted document kept for the regulator, its digest on the log.
"""

import base64
import hashlib
import secrets
from typing import Any

import rfc8785

from sqlmodel.ext.asyncio.session import AsyncSession

LEDGER_KEY = "market.ledger"

# The closed list of entry types (LEDGER.md §2). A new kind of event is added here
# deliberately, never by a typo in a service.
EVENT_TYPES = frozenset({
    "account.created", "account.verified", "account.rejected", "account.key_added", "account.key_revoked",
    "account.suspended", "account.reinstated", "regulator.enrolled",
    "asset.created", "asset.updated", "asset.content_uploaded", "asset.claim_submitted", "asset.approved",
    "asset.rejected", "asset.notice_ended", "asset.registered", "asset.objection_filed", "asset.objection_upheld",
    "asset.objection_dismissed", "asset.cancelled", "asset.transfer_proposed", "asset.holder_changed",
    "asset.transferred", "asset.transfer_withdrawn", "asset.transfer_voided", "asset.revoked", "asset.frozen",
    "asset.unfrozen",
    "listing.published", "listing.updated", "listing.terms_changed", "listing.paused", "listing.resumed",
    "listing.delisted", "listing.frozen", "listing.unfrozen",
    "trade.placed", "trade.approved", "trade.rejected", "trade.cancelled", "trade.payment_started",
    "trade.payment_failed", "trade.settled", "trade.expired", "trade.refunded", "trade.disputed",
    "trade.dispute_rejected", "trade.payment_refunded", "delivery.sent", "payout.recorded",
    "oversight.action", "oversight.alert_closed",
})


def text_digest(text: str) -> str:
    """Hex SHA-256 of free text. Not for anything short or guessable that goes on the
    public ledger (a reason, a count, a draft's detail): anyone can hash candidates and
    compare. Use ``salted`` for those."""
    return hashlib.sha256(text.encode()).hexdigest()


SALTED_SUFFIX = "_salted_sha256"  # the keys (in entry data or a document) naming salted documents


def salt_document(type: str, subject: str, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as it is kept: its ``event`` and ``subject``, the details, and a
    ``salt`` of 32 random bytes (base64) so nobody can guess it back from its hash."""
    return {"event": type, "subject": subject, **document, "salt": base64.b64encode(secrets.token_bytes(32)).decode()}


async def keep_salted(session: AsyncSession, subject: str, type: str,
                      document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Salt ``document``, keep it, and return ``(its hex SHA-256, the salted document)``;
    ``salted`` for the digest alone."""
    full = salt_document(type, subject, document)
    canonical = rfc8785.dumps(full)
    digest = hashlib.sha256(canonical).hexdigest()
    # Imported here: the trading package's import registers its observers on machines
    # that import this module (a loop at import time otherwise).
    from market.trading.models import TradeDocument  # the table of every salted document

    session.add(TradeDocument(subject=subject, type=type, document=canonical.decode(), document_sha256=digest))
    return digest, full


async def salted(session: AsyncSession, subject: str, type: str, document: dict[str, Any]) -> str:
    """The one way a detail the public must not read (a reason's text, a draft's
    commitment, a count of conflicts) is committed on the ledger: ``document`` (for
    example ``{"reason": text}``) is kept salted in the database, for the regulator
    (``GET /v1/oversight/documents``, with the entry that names it), and its hex SHA-256
    is returned to be recorded under a key ending in ``_salted_sha256`` in the entry of
    ``type`` about ``subject`` (or in that entry's confidential document). Nobody can
    confirm a guess of the text from the log; whoever holds the document can check it."""
    digest, _ = await keep_salted(session, subject, type, document)
    return digest


def document_digest(document: Any) -> str:
    """Hex SHA-256 of the RFC 8785 canonical JSON of ``document``: how a signed document
    or a not-yet-public detail is put on the ledger (LEDGER.md §2 ``document_sha256``)."""
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


async def record(session: AsyncSession, type: str, subject: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
    """Append one entry; returns the signed entry. Raises if no ledger is attached or
    the type is not in ``EVENT_TYPES``."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown ledger entry type {type!r}")
    writer = session.info.get(LEDGER_KEY)
    if writer is None:
        raise RuntimeError("no ledger writer attached to this session")
    return await writer.append(session, type=type, subject=subject, actor=actor, data=data)
