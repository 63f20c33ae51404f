"""What trading tells, and to whom: orders, disputes and payouts, in the transaction of
the change (``market.core.outbox.notify``).

Every recipient gets only what it may see: the buyer its own order; the holder its
order with the buyer and its share; operators and regulators the ids they need to act.
"""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.outbox import OPERATORS, REGULATORS, Recipient, notify
from market.trading.models import Order
from market.trading.read import bank_instructions


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def _order_data(order: Order, **more: Any) -> dict[str, Any]:
    return {"order": order.id, "listing": order.listing_id, "asset": order.asset_id, "status": order.status,
            "price": _money(order.price, order.currency), **more}


def _for_buyer(order: Order, **more: Any) -> Recipient:
    return Recipient(account=order.buyer_id, data=_order_data(order, **more))


def _for_holder(order: Order, **more: Any) -> Recipient:
    return Recipient(account=order.provider_id, data=_order_data(
        order, buyer=order.buyer_id, provider_share=_money(order.provider_share, order.currency), **more))


async def order_placed(session: AsyncSession, ctx: Ctx, order: Order) -> None:
    """A new order waiting for approvals (a ready or free one is told by ``order_ready`` / ``order_active``)."""
    if order.status != "pending_approval":
        return
    if order.needs_holder_approval and order.holder_decision is None:
        await notify(session, ctx, "order.pending_approval", order.id, [_for_holder(order, purpose=order.purpose)])
    if order.needs_regulator_approval and order.regulator_decision is None:
        await notify(session, ctx, "order.regulator_approval_requested", order.id, [Recipient(role=REGULATORS, data={
            "order": order.id, "listing": order.listing_id, "asset": order.asset_id, "buyer": order.buyer_id,
            "provider": order.provider_id, "purpose": order.purpose})])


async def order_ready(session: AsyncSession, ctx: Ctx, order: Order) -> None:
    """Every approval given: the buyer is to pay (bank transfers: with instructions, and operators expect it)."""
    if order.payment_method in ("free", "postpaid"):
        return
    more: dict[str, Any] = {"payment_method": order.payment_method}
    instructions = bank_instructions(order, ctx.settings.bank_account)
    if instructions is not None:
        more["instructions"] = instructions
    await notify(session, ctx, "order.awaiting_payment", order.id, [_for_buyer(order, **more)])
    if instructions is not None:
        await notify(session, ctx, "order.bank_payment_expected", order.id, [Recipient(role=OPERATORS, data={
            "order": order.id, "buyer": order.buyer_id, "amount": _money(order.price, order.currency),
            "reference": instructions["reference"]})])


async def order_status(session: AsyncSession, ctx: Ctx, order: Order, event: str, *, holder: bool = False,
                       **more: Any) -> None:
    """``order.active`` (buyer and holder), ``order.rejected``, ``order.expired``, ``order.payment_failed`` (buyer)."""
    to = [_for_buyer(order, **more)]
    if holder:
        to.append(_for_holder(order))
    await notify(session, ctx, event, order.id, to)


async def dispute_opened(session: AsyncSession, ctx: Ctx, dispute: Any, order: Order) -> None:
    data = {"dispute": dispute.id, "order": order.id, "listing": order.listing_id, "reason": dispute.reason}
    await notify(session, ctx, "dispute.opened", dispute.id, [Recipient(account=order.provider_id, data=data),
                                                             Recipient(role=OPERATORS, data=data)])


async def dispute_resolved(session: AsyncSession, ctx: Ctx, dispute: Any, order: Order) -> None:
    await notify(session, ctx, "dispute.resolved", dispute.id, [Recipient(account=order.buyer_id, data={
        "dispute": dispute.id, "order": order.id, "status": dispute.status, "reason": dispute.resolution_reason})])


async def payout_recorded(session: AsyncSession, ctx: Ctx, payout: Any) -> None:
    await notify(session, ctx, "payout.recorded", payout.id, [Recipient(account=payout.provider_id, data={
        "payout": payout.id, "period": payout.period, "amount": _money(payout.amount, payout.currency),
        "reference": payout.reference})])

