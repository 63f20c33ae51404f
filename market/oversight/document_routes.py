"""``GET /v1/oversight/documents?start=&limit=`` (docs/API.md "Oversight"): regulators read
the document behind every confidential ledger entry, and every salted detail an entry
names, paged by ledger index."""

from typing import Annotated, Any

from litestar import get
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.log import MAX_INDEX
from market.core.context import Ctx
from market.oversight import documents


@get("/v1/oversight/documents", tags=["oversight"],
     summary="The documents behind confidential ledger entries and salted details from `start` on (regulator)")
async def oversight_documents(
    db: AsyncSession,
    ctx: Ctx,
    start: Annotated[int, Parameter(ge=0, le=MAX_INDEX, description="a ledger index (0-based)")] = 0,
    limit: Annotated[int, Parameter(ge=1, le=documents.MAX_LIMIT)] = documents.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """``{"items": [{"index", "document", "salted"}], "next"}``: integrated ``trade.*``,
    ``delivery.*`` and ``payout.*`` entries, and entries naming salted details
    (``*_salted_sha256``), in index order: ``document`` the confidential entry's salted
    document (null if none is kept, or the entry is not confidential), ``salted`` each
    named detail's document by its digest; ``next`` is the index to continue from, null
    at the end of the log."""
    return await documents.page(db, ctx, start, limit)
