"""Confidential, publicly committed trade entries (LEDGER.md §2).

Each trade event's document — parties, listing, plan, terms hash, purpose, amounts,
range… plus a ``salt`` of 32 random bytes — is kept in ``trade_documents``; the public
entry (actor ``market``) holds only its ``document_sha256``. Nobody reading the log
learns who bought what at what price, or can guess a document back from its hash;
the parties get their documents in bundles, regulators every one through the
oversight API, and each checks it against the entry.
"""

import base64
import secrets
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market import audit, signing
from market.context import MARKET_ACTOR
from market.trading.models import TradeDocument


def salted(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "salt": base64.b64encode(secrets.token_bytes(32)).decode()}


async def record(session: AsyncSession, type: str, subject: str, document: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                                   dict[str, Any]]:
    """Append the confidential entry of ``document`` (salted here) and keep the document.
    Returns ``(entry, salted document)``."""
    full = salted({"event": type, "subject": subject, **document})
    digest = audit.document_digest(full)
    entry = await audit.record(session, type, subject, MARKET_ACTOR, {"document_sha256": digest})
    session.add(TradeDocument(subject=subject, type=type, document=signing.canonical(full).decode(),
                              document_sha256=digest))
    return entry, full
