"""Why and since when a regulator froze an asset or a listing, as its holder and staff
are told (API.md "Registry", "Listings").

A freeze is a regulator's signed action (``oversight.actions``); the service it reaches
(``review.set_frozen``, ``listings.service.set_frozen``) keeps the action's reason as the
salted document of the ``asset.frozen`` / ``listing.frozen`` ledger entry
(``audit.salted``, in ``trade_documents``). That document is read back here: no column
repeats it, it cannot drift from what the ledger commits to, and it is there for every
freeze made before this was shown. An asset's ``status_reason`` stays the reviewer's.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.audit import TradeDocument

EVENTS = {"asset": "asset.frozen", "listing": "listing.frozen"}


@dataclass(frozen=True)
class Freeze:
    reason: str
    at: datetime  # when the freeze was recorded (its ledger entry's time)


async def latest(session: AsyncSession, subjects: Sequence[str]) -> dict[str, Freeze]:
    """The newest freeze of each of ``subjects`` (``asset:<id>``, ``listing:<id>``) that
    was ever frozen, in one query; the caller asks only for what is frozen now."""
    if not subjects:
        return {}
    rows = (await session.exec(select(TradeDocument).where(
        col(TradeDocument.subject).in_(sorted(set(subjects))), col(TradeDocument.type).in_(sorted(EVENTS.values())))
        .order_by(col(TradeDocument.id)))).all()
    found: dict[str, Freeze] = {}
    for row in rows:  # oldest first: a later freeze of the subject replaces an earlier one
        found[row.subject] = Freeze(reason=str(json.loads(row.document).get("reason", "")), at=row.created_at)
    return found
