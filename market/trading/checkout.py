"""Card payments around the order's transactions (API.md "Orders", payments).

The gateway is called outside any database transaction, with an idempotency key
derived from the order, so a retried request (or a replayed ``Idempotency-Key``) finds
the PaymentIntent the first one made. The webhook is verified by the library, its event
id stored once (``stripe_events``), and the PaymentIntent re-read from the gateway
before the order is settled or marked failed — in one transaction with the event row.
"""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.audit import LEDGER_KEY
from market.context import Ctx
from market.errors import DomainError
from market.payments.gateway import GatewayError, PaymentState, WebhookEvent, payment_key
from market.payments.models import record_event
from market.trading import documents, settlement
from market.trading.models import Order
from market.trading.states import ORDER, PAYABLE, OrderStatus


class GatewayUnavailable(DomainError):
    status, kind, title = 502, "payment-gateway-unavailable", "Payment gateway unavailable"


def _writer(state: Any) -> AsyncSession:
    session: AsyncSession = state.sessionmaker()
    session.info[LEDGER_KEY] = state.ledger
    return session


async def ensure_intent(state: Any, order_id: str, *, retry: bool = False) -> None:
    """Give a card order awaiting payment its PaymentIntent (once; idempotent at the
    gateway); with ``retry``, a failed one a new attempt."""
    async with state.read_sessionmaker() as s:
        order = await s.get(Order, order_id)
    gateway = state.stripe
    if order is None or gateway is None or order.payment_method != "stripe" or order.status not in PAYABLE:
        return
    if order.intent_id is not None and not (retry and order.status == OrderStatus.payment_failed):
        return
    attempt = order.payment_attempt + 1
    try:
        start = await gateway.start(order.id, order.price, order.currency, payment_key(order.id, attempt))
    except GatewayError as exc:
        raise GatewayUnavailable(f"order {order.id} is placed, but the card gateway did not answer ({exc}); send "
                                 "the same request (same Idempotency-Key) again to retry") from None
    async with _writer(state) as session:
        order = await session.get_one(Order, order_id, populate_existing=True)
        if order.payment_attempt >= attempt or order.status not in PAYABLE:
            return  # another request got there first
        ctx = Ctx.system(state)
        await ORDER.move(session, order, "start_payment", ctx, intent_id=start.intent_id,
                         client_secret=start.client_secret, payment_attempt=attempt, updated_at=ctx.now)
        await documents.record(session, "trade.payment_started", f"order:{order.id}",
                               {"order": order.id, "attempt": attempt, "intent": start.intent_id})
        await session.commit()


async def on_event(state: Any, event: WebhookEvent) -> str:
    """Act on a verified webhook event once; returns what was done."""
    gateway = state.stripe
    if event.intent_id is None or event.type not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return await _record_only(state, event, "ignored")
    try:
        intent = await gateway.fetch(event.intent_id)  # the truth, re-read outside any transaction
    except GatewayError as exc:  # the gateway sends the event again later
        raise GatewayUnavailable(f"could not re-read {event.intent_id} ({exc})") from None
    async with _writer(state) as session:
        order = await _order_of(session, intent)
        outcome = _outcome(order, intent, event)
        if not await record_event(session, event, outcome):
            return "duplicate"
        ctx = Ctx.system(state)
        if outcome == "settled":
            assert order is not None
            await settlement.settle(session, ctx, order, reference=f"stripe:{intent.intent_id}")
        elif outcome == "failed":
            assert order is not None
            await settlement.payment_failed(session, ctx, order, intent.failure_code)
        await session.commit()
        return outcome


async def _record_only(state: Any, event: WebhookEvent, outcome: str) -> str:
    async with _writer(state) as session:
        if not await record_event(session, event, outcome):
            return "duplicate"
        await session.commit()
        return outcome


async def _order_of(session: AsyncSession, intent: PaymentState) -> Order | None:
    """The order an intent pays: by the order id the market put in its metadata (an
    earlier attempt's intent may still succeed after a retry made a new one)."""
    if intent.order_id is None:
        return None
    return await session.get(Order, intent.order_id, populate_existing=True)


def _outcome(order: Order | None, intent: PaymentState, event: WebhookEvent) -> str:
    """What the re-read PaymentIntent (not the event's claim) says to do with the order."""
    if order is None or order.status not in PAYABLE:
        return "ignored"  # not ours, or settled or cancelled already
    if intent.status == "succeeded":
        if (intent.amount, intent.currency) != (order.price, order.currency):
            return "mismatch"
        return "settled"
    failed = intent.status == "requires_payment_method" and intent.failure_code is not None
    if event.type == "payment_intent.payment_failed" and failed and intent.intent_id == order.intent_id \
            and order.status != OrderStatus.payment_failed:
        return "failed"
    return "ignored"


async def stop_payment(state: Any, order_id: str, intent_id: str) -> None:
    """Before a card order is cancelled: cancel its PaymentIntent at the gateway, so it
    can no longer be paid. If the payment already went through (or is processing), the
    cancellation is refused: the webhook settles the order, and a dispute may refund it."""
    if state.stripe is None:
        return
    try:
        intent = await state.stripe.cancel(intent_id)
    except GatewayError as exc:
        raise GatewayUnavailable(f"could not cancel the card payment of order {order_id} ({exc}); try again") \
            from None
    if intent.status in ("succeeded", "processing"):
        from market.errors import Conflict

        raise Conflict(f"the card payment of order {order_id} was already made ({intent.status}); the order is "
                       "being settled — open a dispute to be refunded", kind="payment-received")
