"""The one door from the domain to the audit ledger.

``record`` appends a signed entry inside the caller's open transaction, so the business
row and its ledger entry commit together (DESIGN §2.1). The ledger writer is the one
of the market's services (``ctx.services.ledger``). ``salted`` is the one way a detail
the public must not read or guess (a reason, a draft's commitment, a count) is
committed: a salted document kept for the regulator (``TradeDocument``, the table of
every salted document), its digest on the log.
"""

import base64
import hashlib
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Text, insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import jcs
from market.core.db import run, table_of
from market.core.types import UTCDateTime, utcnow

if TYPE_CHECKING:
    from market.core.context import Ctx

# The closed list of entry types (docs/LEDGER.md §2). A new kind of event is added here
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
    "asset.table_described", "usage.query", "usage.period", "usage.charge_paid",
    # The Dataspace Protocol (market.dsp): every step of a negotiation or a transfer, confidential.
    "dsp.negotiation_requested", "dsp.negotiation_offered", "dsp.negotiation_accepted", "dsp.negotiation_agreed",
    "dsp.negotiation_verified", "dsp.negotiation_finalized", "dsp.negotiation_terminated",
    "dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_suspended", "dsp.transfer_completed",
    "dsp.transfer_terminated",
})


def text_digest(text: str) -> str:
    """Hex SHA-256 of free text. Not for anything short or guessable that goes on the
    public ledger (a reason, a count, a draft's detail): anyone can hash candidates and
    compare. Use ``salted`` for those."""
    return hashlib.sha256(text.encode()).hexdigest()


class TradeDocument(SQLModel, table=True):
    """Every salted document the ledger commits to: the document behind each confidential
    entry (docs/LEDGER.md §2: the entry holds only ``document_sha256``), and each salted
    detail (``audit.salted``: a reason, a draft's commitment, a count) an entry or a
    document names by ``*_salted_sha256``. The parties get theirs in bundles, regulators
    all of them (``GET /v1/oversight/documents``)."""

    __tablename__ = "trade_documents"

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=60, index=True)  # order:ord_… / payout:pay_… / asset:… (salted details)
    type: str = Field(max_length=40)  # the entry type
    document: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON, salt included
    document_sha256: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


_KEEP = insert(table_of(TradeDocument))

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
    canonical = jcs(full)
    digest = hashlib.sha256(canonical).hexdigest()
    # Core, not the unit of work: the row is inserted now, in the order the documents come.
    await run(session, _KEEP, {"subject": subject, "type": type, "document": canonical.decode(),
                               "document_sha256": digest, "created_at": utcnow()})
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
    or a not-yet-public detail is put on the ledger (docs/LEDGER.md §2 ``document_sha256``)."""
    return hashlib.sha256(jcs(document)).hexdigest()


async def record(session: AsyncSession, ctx: "Ctx", type: str, subject: str, actor: str,
                 data: dict[str, Any]) -> dict[str, Any]:
    """Append one entry to ``ctx``'s ledger in ``session``'s transaction; returns the
    signed entry. Raises if the type is not in ``EVENT_TYPES``."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown ledger entry type {type!r}")
    return await ctx.services.ledger.append(session, type=type, subject=subject, actor=actor, data=data)
