"""The one door from the domain to the audit ledger.

``record`` appends a signed entry inside the caller's open transaction, so the business
row and its ledger entry commit together (DESIGN §2.1). The ledger writer for the
session's database is put on ``session.info`` by the session provider.
"""

import hashlib
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
    """Hex SHA-256 of free text (a reason, a note). Free text never goes on the public
    ledger (LEDGER.md §2: ids, hashes, enums only); its digest does, so the text kept
    in the database can later be shown to be the one recorded."""
    return hashlib.sha256(text.encode()).hexdigest()


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
