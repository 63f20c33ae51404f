"""Money that goes back (docs/trading.md "Payments"): a payment that reached the market
for an order it did not settle with it. Never commits; the gateway calls that give a
card payment back are in ``market.trading.checkout``.

- A card payment of an order that was ended meanwhile (cancelled, or it could no longer
  be settled), or of a superseded attempt when another one paid: refunded at the gateway
  after the commit (``pending`` until then, ``refunded`` with the refund's id after).
- A bank transfer the operator records for an order that cannot be settled: ``owed``
  (the operator sends it back by bank, as with a bank refund).

Each is one ``payment_returns`` row per payment received (unique on the order and the
payment reference) and a confidential ``trade.payment_refunded`` entry, written in the
transaction that decides it. The buyer and staff see them in the order's ``payment``.
"""

from typing import Any

from sqlalchemy import and_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.money import Money
from market.trading import documents
from market.trading.models import Order, PaymentReturn

PENDING, REFUNDED, OWED = "pending", "refunded", "owed"
CARD_PREFIX = "stripe:"


def status_of(row: PaymentReturn) -> str:
    """``owed`` (a bank transfer the operator sends back), or for a card payment
    ``pending`` until the gateway refunded it and ``refunded`` after."""
    if row.method != "stripe":
        return OWED
    return PENDING if row.refund_reference is None else REFUNDED


def pending_at_gateway() -> Any:
    """SQL over ``payment_returns``: card payments still to refund at the gateway."""
    return and_(col(PaymentReturn.method) == "stripe", col(PaymentReturn.refund_reference).is_(None))


def paid_intent(order: Order) -> str | None:
    """The PaymentIntent that actually paid a settled card order (its ``payment_reference``
    is ``stripe:<intent>``), which need not be the order's latest attempt."""
    reference = order.payment_reference
    if order.payment_method != "stripe" or reference is None or not reference.startswith(CARD_PREFIX):
        return None
    return reference.removeprefix(CARD_PREFIX)


async def owe(session: AsyncSession, ctx: Ctx, order: Order, paid_reference: str, paid: Money,
              cause: str) -> PaymentReturn:
    """Record that the payment ``paid_reference`` (``stripe:<intent>`` or ``bank:<ref>``)
    of ``paid`` goes back to the buyer; the same payment again returns the first record."""
    found = (await session.execute(select(PaymentReturn).where(
        col(PaymentReturn.order_id) == order.id, col(PaymentReturn.paid_reference) == paid_reference))).scalars().first()
    if found is not None:
        return found
    card = paid_reference.startswith(CARD_PREFIX)
    row = PaymentReturn(order_id=order.id, method="stripe" if card else "bank_transfer",
                        paid_reference=paid_reference, currency=paid.currency, amount=paid.amount, cause=cause,
                        created_at=ctx.now)
    session.add(row)
    await session.flush()
    await documents.record(session, ctx, "trade.payment_refunded", f"order:{order.id}", {
        "order": order.id, "payment": {"method": row.method, "reference": paid_reference},
        "amount": {"amount": paid.amount, "currency": paid.currency}, "cause": cause, "status": status_of(row)})
    return row


async def of_order(session: AsyncSession, order_id: str) -> list[PaymentReturn]:
    rows = (await session.execute(select(PaymentReturn).where(col(PaymentReturn.order_id) == order_id)
                                  .order_by(col(PaymentReturn.id)))).scalars().all()
    return list(rows)


def view(row: PaymentReturn) -> dict[str, Any]:
    return {"reference": row.paid_reference, "amount": {"amount": row.amount, "currency": row.currency},
            "cause": row.cause, "status": status_of(row), "refund_reference": row.refund_reference,
            "created_at": row.created_at, "refunded_at": row.refunded_at}
