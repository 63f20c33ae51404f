"""Confidential, publicly committed trade entries (docs/LEDGER.md §2).

Each trade event's document — parties, listing, plan, terms hash, purpose, amounts,
range… plus a ``salt`` of 32 random bytes — is kept in ``trade_documents``; the public
entry (actor ``market``) holds only its ``document_sha256``. Nobody reading the log
learns who bought what at what price, or can guess a document back from its hash;
the parties get their documents in bundles, regulators every one through the
oversight API, and each checks it against the entry.
"""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import audit
from market.core.context import MARKET_ACTOR, Ctx


async def record(session: AsyncSession, ctx: Ctx, type: str, subject: str,
                 document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Append the confidential entry of ``document`` (salted and kept by
    ``audit.keep_salted``). Returns ``(entry, salted document)``."""
    digest, full = await audit.keep_salted(session, subject, type, document)
    entry = await audit.record(session, ctx, type, subject, MARKET_ACTOR, {"document_sha256": digest})
    return entry, full
