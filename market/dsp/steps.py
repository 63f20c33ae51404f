"""Each step of a negotiation or a transfer on the ledger, like the order's own: a
confidential ``dsp.*`` entry whose salted document (``market.trading.documents``) names
the process, both pids, the order, who moved it and why."""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.dsp.models import DspNegotiation, DspTransfer
from market.trading import documents


async def negotiation(session: AsyncSession, ctx: Ctx, row: DspNegotiation, step: str, by: str,
                      **extra: Any) -> None:
    """``dsp.negotiation_<step>``; ``by`` is ``consumer``, ``provider`` or ``market``."""
    subject = f"order:{row.order_id}" if row.order_id else f"negotiation:{row.id}"
    await documents.record(session, ctx, f"dsp.negotiation_{step}", subject, {
        "negotiation": row.id, "consumer_pid": row.consumer_pid, "consumer": row.account_id,
        "listing": row.listing_id, "plan_id": row.plan_id, "order": row.order_id, "state": row.status, "by": by,
        **{k: v for k, v in extra.items() if v is not None}})


async def transfer(session: AsyncSession, ctx: Ctx, row: DspTransfer, step: str, by: str, **extra: Any) -> None:
    """``dsp.transfer_<step>``."""
    await documents.record(session, ctx, f"dsp.transfer_{step}", f"order:{row.order_id}", {
        "transfer": row.id, "consumer_pid": row.consumer_pid, "consumer": row.account_id,
        "negotiation": row.negotiation_id, "order": row.order_id, "state": row.status, "by": by,
        **{k: v for k, v in extra.items() if v is not None}})
