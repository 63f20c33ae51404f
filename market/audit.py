"""The one door from the domain to the audit ledger.

``record`` appends a signed entry inside the caller's open transaction, so the business
row and its ledger entry commit together (DESIGN §2.1). The ledger writer for the
session's database is put on ``session.info`` by the session provider.
"""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

LEDGER_KEY = "market.ledger"


async def record(session: AsyncSession, type: str, subject: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
    """Append one entry; returns the signed entry. Raises if no ledger is attached."""
    writer = session.info.get(LEDGER_KEY)
    if writer is None:
        raise RuntimeError("no ledger writer attached to this session")
    return await writer.append(session, type=type, subject=subject, actor=actor, data=data)
