"""Disputes (docs/API.md "Orders"): a buyer's complaint about a settled order, and the
operator's resolution — a refund, or a rejection. Services never commit; the route does.

Opening (the order's buyer only: 404 for strangers, 403 for the holder and staff):

- the order is ``active`` (settled, access not ended): else 409 ``invalid-transition``;
- within ``MARKET_DISPUTE_WINDOW`` of ``settled_at``: else 422 ``dispute-window-closed``;
- no other dispute of the order is open: else 409 ``dispute-open``. The order row is
  claimed (``ORDER.guard``) so two concurrent disputes cannot both pass that check.

A free order can be disputed too: its refund moves no money (amount 0) and only ends
access — the buyer's remedy when the data was not what the terms promised.

Resolution (operators only; regulators and everyone else 403):

- ``reject``: the dispute is ``rejected``; the order keeps its access.
- ``refund``: access ends at once. One transaction moves the dispute to ``refunded``
  and the order to ``refunded`` (``refunded_at``) and appends ``trade.refunded``; the
  route commits it *before* any money moves. Then, by payment method:

  - ``stripe``: outside any transaction the gateway refunds the price, with an
    idempotency key derived from the order and the dispute (``refund_key``), and a
    second transaction stores the gateway's refund id (``refund_reference``,
    ``stripe:re_…``). If the gateway fails, the order stays refunded (access ended)
    with ``refund_reference`` NULL and the request answers 502
    ``payment-gateway-unavailable``; the operator sends the same resolution again,
    which then only retries the gateway refund — the same key, so never twice.
  - ``bank_transfer``: the money goes back by bank, outside the market, so the operator
    sends the refund first and then resolves with the bank's ``reference`` of that
    transfer (``bank:<reference>``), which is required (422 ``reference-required``
    naming the field): a refund recorded without one could never be traced, and a
    resolved dispute takes no second resolution. Set in the first transaction: there
    is nothing to retry.
  - ``free``: nothing to refund (``free:<dispute id>``).

  A second ``refund`` of a dispute already refunded is 409, except that retry; any
  ``reject`` of a resolved dispute is 409.

Every event is a confidential entry (``market.trading.documents``) on ``order:<id>``:
``trade.disputed`` {order, dispute, reason_salted_sha256}, ``trade.dispute_rejected``
{order, dispute, reason_salted_sha256}, ``trade.refunded`` {order, dispute, amount,
method, reason_salted_sha256, and ``reference`` for bank and free refunds; a card
refund's id is known only after the gateway call, on the order}. Free text (the reasons) never goes into a document, only
the digest of the salted document holding it (``audit.salted``).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role, Strict
from market.core import audit
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, Unprocessable
from market.core.events import OrderRefunded
from market.core.ids import new_id
from market.core.money import Money
from market.core.pagination import page_of, paginate
from market.core.services import Services
from market.listings.models import Listing
from market.payments.gateway import GatewayError, refund_key
from market.trading import access, documents, notices, returns
from market.trading.models import Dispute, Order
from market.trading.read import listing_titles
from market.trading.schemas import DisputeCreate, DisputeRead, ListingRef
from market.trading.states import DISPUTE, ORDER, DisputeStatus, OrderStatus
from market.web.auth import Caller


class GatewayUnavailable(DomainError):
    status, kind, title = 502, "payment-gateway-unavailable", "Payment gateway unavailable"


# -- shapes --------------------------------------------------------------------------------


class ResolutionBody(Strict):
    """``POST /v1/disputes/{id}/resolution``."""

    decision: Literal["refund", "reject"]
    reason: str = Field(min_length=1, max_length=2000)
    reference: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="refunds of bank transfers (required there, refused elsewhere): the "
                                              "bank's reference of the refund sent")


class RefundRead(BaseModel):
    amount: Money
    method: str
    reference: str | None = Field(description="the gateway's refund, or the bank's; null while a card refund is due")
    refunded_at: datetime | None


class DisputeView(DisputeRead):
    """A dispute with what it takes to act on it: the order, its listing, the parties and
    the money at stake (``created_at`` is when it was opened)."""

    buyer: str
    provider: str = Field(description="the listing's holder, who was paid")
    listing: ListingRef | None = Field(default=None, description="the order's listing: id and title")
    price: Money = Field(description="what the buyer paid: the most a refund gives back")
    payment_method: str
    order_status: str
    refund: RefundRead | None = Field(default=None, description="once refunded")


def dispute_read(dispute: Dispute, order: Order, listing_title: str | None = None) -> DisputeView:
    refund = None
    if dispute.status == DisputeStatus.refunded:
        refund = RefundRead(amount=Money(amount=order.price, currency=order.currency), method=order.payment_method,
                            reference=order.refund_reference, refunded_at=order.refunded_at)
    return DisputeView(id=dispute.id, order_id=dispute.order_id, buyer=dispute.buyer_id, provider=order.provider_id,
                       listing=None if listing_title is None else ListingRef(id=order.listing_id, title=listing_title),
                       price=Money(amount=order.price, currency=order.currency), payment_method=order.payment_method,
                       status=dispute.status, reason=dispute.reason, resolution_reason=dispute.resolution_reason,
                       created_at=dispute.created_at, resolved_at=dispute.resolved_at, order_status=order.status,
                       refund=refund)


async def present(session: AsyncSession, dispute: Dispute, order: Order) -> DisputeView:
    """One dispute with its listing's title."""
    titles = await listing_titles(session, [order.listing_id])
    return dispute_read(dispute, order, titles.get(order.listing_id))


# -- opening -------------------------------------------------------------------------------


async def _open_dispute_of(session: AsyncSession, order_id: str) -> Dispute | None:
    return (await session.execute(select(Dispute).where(col(Dispute.order_id) == order_id,
                                                        col(Dispute.status) == DisputeStatus.open))).scalars().first()


async def open_dispute(session: AsyncSession, ctx: Ctx, order_id: str, data: DisputeCreate) -> tuple[Dispute, Order]:
    order = await access.load_for_buyer(session, order_id, ctx.user)
    ORDER.check(order, "refund")  # active: settled, access not ended
    assert order.settled_at is not None
    closes = order.settled_at + ctx.settings.dispute_delta
    if ctx.now > closes:
        raise Unprocessable(f"order {order.id} was settled at {order.settled_at.isoformat()}; disputes close "
                            f"{ctx.settings.dispute_window} after settlement", kind="dispute-window-closed")
    if await _open_dispute_of(session, order.id) is not None:
        raise Conflict(f"order {order.id} has an open dispute already", kind="dispute-open")
    await ORDER.guard(session, order)  # a concurrent dispute of this order now loses (409)
    dispute = Dispute(id=new_id("dsp"), order_id=order.id, buyer_id=order.buyer_id, reason=data.reason,
                      status=DisputeStatus.open, created_at=ctx.now)
    await DISPUTE.create(session, dispute, ctx, {})
    await documents.record(session, ctx, "trade.disputed", f"order:{order.id}", {
        "order": order.id, "dispute": dispute.id,
        "reason_salted_sha256": await audit.salted(session, f"order:{order.id}", "trade.disputed",
                                                   {"reason": data.reason})})
    await notices.dispute_opened(session, ctx, dispute, order)
    return dispute, order


# -- reading -------------------------------------------------------------------------------


async def load(session: AsyncSession, dispute_id: str, caller: Caller) -> tuple[Dispute, Order]:
    dispute = await access.load_dispute(session, dispute_id, caller)
    order = await session.get_one(Order, dispute.order_id, populate_existing=True)
    return dispute, order


async def of_order(session: AsyncSession, order_id: str, caller: Caller) -> list[DisputeView]:
    order = await access.load(session, order_id, caller)
    rows = (await session.execute(select(Dispute).where(col(Dispute.order_id) == order.id)
                                  .order_by(col(Dispute.id)))).scalars().all()
    title = (await listing_titles(session, [order.listing_id])).get(order.listing_id)
    return [dispute_read(d, order, title) for d in rows]


async def list_disputes(session: AsyncSession, caller: Caller, status: DisputeStatus | None, limit: int,
                        cursor: str | None) -> dict[str, Any]:
    """``GET /v1/disputes``: staff see every dispute, anyone else those of its own orders
    (as buyer or as the listing's holder); oldest first, paged, in one query."""
    query: Any = (select(Dispute, Order, col(Listing.title)).join(Order, col(Order.id) == col(Dispute.order_id))
                  .join(Listing, col(Listing.id) == col(Order.listing_id)).where(access.visible_orders(caller)))
    if status is not None:
        query = query.where(col(Dispute.status) == status)
    rows = list((await session.execute(paginate(query, col(Dispute.id), limit, cursor))).all())
    return page_of(rows, limit, lambda row: dispute_read(*row), id_of=lambda row: row[0].id)


# -- resolution ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRefund:
    """A card refund still to be made at the gateway, after the commit."""

    dispute_id: str
    order_id: str
    intent_id: str
    amount: int
    idempotency_key: str


async def resolve(session: AsyncSession, ctx: Ctx, dispute_id: str,
                  data: ResolutionBody) -> tuple[Dispute, Order, GatewayRefund | None]:
    """Decide a dispute (first transaction). Returns the card refund the caller must make
    at the gateway after committing, if any (also when this is a retry of one)."""
    ctx.user.require(Role.operator)
    dispute = await access.load_dispute(session, dispute_id, ctx.user)
    order = await session.get_one(Order, dispute.order_id, populate_existing=True)
    if dispute.status == DisputeStatus.refunded and data.decision == "refund":
        pending = _gateway_refund(dispute, order)
        if pending is not None:  # the retry of a card refund the gateway did not make
            return dispute, order, pending
    DISPUTE.check(dispute, data.decision)  # 409 once resolved
    event = "trade.dispute_rejected" if data.decision == "reject" else "trade.refunded"
    document: dict[str, Any] = {"order": order.id, "dispute": dispute.id, "reason_salted_sha256": await audit.salted(
        session, f"order:{order.id}", event, {"reason": data.reason})}
    if data.decision == "reject":
        if data.reference is not None:
            raise Unprocessable("a reference is given only with a refund", kind="reference-not-expected")
        await DISPUTE.move(session, dispute, "reject", ctx, resolution_reason=data.reason, resolved_at=ctx.now)
        await documents.record(session, ctx, "trade.dispute_rejected", f"order:{order.id}", document)
        await notices.dispute_resolved(session, ctx, dispute, order)
        return dispute, order, None
    if data.reference is not None and order.payment_method != "bank_transfer":
        raise Unprocessable(f"order {order.id} was paid by {order.payment_method}; a reference is given only for "
                            "a refund sent by bank transfer", kind="reference-not-expected")
    if data.reference is None and order.payment_method == "bank_transfer":
        raise Unprocessable(f"order {order.id} was paid by bank transfer: send the refund by bank first, then "
                            "resolve with the bank's reference of that transfer", kind="reference-required",
                            extra={"errors": [{"field": "reference", "message": "required for a bank refund"}]})
    ORDER.check(order, "refund")  # still active (an order whose access expired meanwhile: 409)
    reference = {
        "bank_transfer": f"bank:{data.reference}",
        "free": f"free:{dispute.id}",
        "postpaid": f"postpaid:{dispute.id}",  # nothing was paid for the order itself; its periods' charges stand
    }.get(order.payment_method)  # stripe: set once the gateway has refunded
    await DISPUTE.move(session, dispute, "refund", ctx, resolution_reason=data.reason, resolved_at=ctx.now)
    await ORDER.move(session, order, "refund", ctx, refunded_at=ctx.now, refund_reference=reference,
                     updated_at=ctx.now)
    await ctx.services.events.publish(session, ctx, OrderRefunded(order))
    if reference is not None:
        document["reference"] = reference
    await documents.record(session, ctx, "trade.refunded", f"order:{order.id}", {
        **document, "amount": {"amount": order.price, "currency": order.currency}, "method": order.payment_method})
    await notices.dispute_resolved(session, ctx, dispute, order)
    return dispute, order, _gateway_refund(dispute, order)


def _gateway_refund(dispute: Dispute, order: Order) -> GatewayRefund | None:
    if order.payment_method != "stripe" or order.status != OrderStatus.refunded or order.refund_reference is not None:
        return None
    paid = returns.paid_intent(order)  # the attempt that paid, not necessarily the latest
    assert paid is not None  # a settled card order was paid through an intent
    return GatewayRefund(dispute_id=dispute.id, order_id=order.id, intent_id=paid, amount=order.price,
                         idempotency_key=refund_key(order.id, dispute.id))


async def refund_at_gateway(services: Services, session: AsyncSession, refund: GatewayRefund) -> str:
    """Make the card refund, then store its id in a second transaction on ``session``
    (whose first transaction the caller committed: no transaction is open during the
    gateway call). Returns the ``refund_reference``; 502 if the gateway did not refund."""
    gateway = services.stripe
    if gateway is None:
        raise GatewayUnavailable(f"order {refund.order_id} is refunded and its access ended, but card payments are "
                                 "not enabled on this market now; the card refund is still due")
    try:
        result = await gateway.refund(refund.intent_id, refund.amount, idempotency_key=refund.idempotency_key)
    except GatewayError as exc:
        raise GatewayUnavailable(f"order {refund.order_id} is refunded and its access ended, but the card gateway "
                                 f"did not refund ({exc}); send the resolution again to retry the card refund") \
            from None
    reference = f"stripe:{result.refund_id}"
    # Only the first store counts (a concurrent retry got the same refund from the gateway).
    await session.execute(update(Order).where(col(Order.id) == refund.order_id,
                                              col(Order.refund_reference).is_(None))
                          .values(refund_reference=reference, version=col(Order.version) + 1))
    await session.commit()
    return reference
