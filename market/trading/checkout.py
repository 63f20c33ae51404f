"""Card payments around the order's transactions (docs/API.md "Orders", payments).

The gateway is called outside any database transaction, with an idempotency key
derived from the order, so a retried request (or a replayed ``Idempotency-Key``) finds
the PaymentIntent the first one made. The webhook is verified by the library, its event
id stored once (``stripe_events``), and the PaymentIntent re-read from the gateway
before the order is settled or marked failed — in one transaction with the event row.

Money that must go back (a payment of an order that can no longer be settled, or of an
attempt other than the one that settled it) is recorded in that transaction
(``returns``) and refunded at the gateway after the commit; PaymentIntents of orders the
market ended unpaid are cancelled after theirs. The clock retries both
(``settle_gateway_work``) when the gateway did not answer.
"""

from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.logs import log
from market.core.money import Money
from market.core.services import Services
from market.payments.gateway import GatewayError, PaymentState, WebhookEvent, payment_key, return_key
from market.payments.models import record_event
from market.trading import documents, returns, settlement
from market.trading.models import Order, PaymentReturn
from market.trading.states import ORDER, PAYABLE, OrderStatus


class GatewayUnavailable(DomainError):
    status, kind, title = 502, "payment-gateway-unavailable", "Payment gateway unavailable"


async def ensure_intent(services: Services, order_id: str, *, retry: bool = False) -> None:
    """Give a card order awaiting payment its PaymentIntent (once; idempotent at the
    gateway); with ``retry``, a failed one a new attempt."""
    async with services.read_sessionmaker() as s:
        order = await s.get(Order, order_id)
    gateway = services.stripe
    if order is None or gateway is None or order.payment_method != "stripe" or order.status not in PAYABLE:
        return
    if order.intent_id is not None and not (retry and order.status == OrderStatus.payment_failed):
        return
    if order.intent_id is not None:  # the buyer holds its client secret: it must not pay as well
        await stop_payment(services, order.id, order.intent_id)
    attempt = order.payment_attempt + 1
    try:
        start = await gateway.start(order.id, order.price, order.currency, payment_key(order.id, attempt))
    except GatewayError as exc:
        raise GatewayUnavailable(f"order {order.id} is placed, but the card gateway did not answer ({exc}); send "
                                 "the same request (same Idempotency-Key) again to retry") from None
    async with services.sessionmaker() as session:
        order = await session.get_one(Order, order_id, populate_existing=True)
        if order.payment_attempt >= attempt or order.status not in PAYABLE:
            return  # another request got there first
        ctx = Ctx.system(services)
        await ORDER.move(session, order, "start_payment", ctx, intent_id=start.intent_id,
                         client_secret=start.client_secret, payment_attempt=attempt, updated_at=ctx.now)
        await documents.record(session, ctx, "trade.payment_started", f"order:{order.id}",
                               {"order": order.id, "attempt": attempt, "intent": start.intent_id})
        await session.commit()


async def on_event(services: Services, event: WebhookEvent) -> str:
    """Act on a verified webhook event once; returns what was done."""
    gateway = services.stripe
    if event.intent_id is None or event.type not in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return await _record_only(services, event, "ignored")
    assert gateway is not None  # the gateway verified the event (the webhook route refuses without one)
    try:
        intent = await gateway.fetch(event.intent_id)  # the truth, re-read outside any transaction
    except GatewayError as exc:  # the gateway sends the event again later
        raise GatewayUnavailable(f"could not re-read {event.intent_id} ({exc})") from None
    async with services.sessionmaker() as session:
        order = await _order_of(session, intent)
        outcome, given_back = await _act(session, Ctx.system(services), order, intent, event)
        if outcome is None:
            return "duplicate"
        await session.commit()
    if given_back is not None:  # after the commit, outside any transaction
        await refund_return(services, given_back)
    if outcome == "not-settleable":
        await cancel_intents_due(services)
    return outcome


async def _act(session: AsyncSession, ctx: Ctx, order: Order | None, intent: PaymentState,
               event: WebhookEvent) -> tuple[str | None, int | None]:
    """The event's effect in this transaction: (outcome or None for a duplicate, the id
    of a payment return to make at the gateway after the commit)."""
    outcome = _outcome(order, intent, event)
    why = None
    if outcome == "settled":
        assert order is not None
        why = await settlement.why_unsettleable(session, order)  # under the locks ordering takes
        outcome = "settled" if why is None else "not-settleable"
    if not await record_event(session, event, outcome):
        return None, None
    paid = Money(amount=intent.amount, currency=intent.currency)
    reference = f"{returns.CARD_PREFIX}{intent.intent_id}"
    if outcome == "settled":
        assert order is not None
        await settlement.settle(session, ctx, order, reference=reference)
    elif outcome == "failed":
        assert order is not None
        await settlement.payment_failed(session, ctx, order, intent.failure_code)
    elif outcome == "not-settleable":
        assert order is not None and why is not None
        await settlement.end_unsettled(session, ctx, order, why, cause="not-settleable")
        return outcome, (await returns.owe(session, ctx, order, reference, paid, cause="not-settleable")).id
    elif outcome == "returned":
        assert order is not None
        cause = "superseded-attempt" if order.payment_reference is not None else "order-ended"
        return outcome, (await returns.owe(session, ctx, order, reference, paid, cause=cause)).id
    return outcome, None


async def _record_only(services: Services, event: WebhookEvent, outcome: str) -> str:
    async with services.sessionmaker() as session:
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
    if order is None or order.payment_method != "stripe":
        return "ignored"  # not ours
    if order.status not in PAYABLE:
        if intent.status == "succeeded" and order.payment_reference != f"{returns.CARD_PREFIX}{intent.intent_id}":
            return "returned"  # paid for an order ended meanwhile, or settled by another attempt: it goes back
        return "ignored"  # the payment that settled it, again
    if intent.status == "succeeded":
        if (intent.amount, intent.currency) != (order.price, order.currency):
            return "mismatch"
        return "settled"
    failed = intent.status == "requires_payment_method" and intent.failure_code is not None
    if event.type == "payment_intent.payment_failed" and failed and intent.intent_id == order.intent_id \
            and order.status != OrderStatus.payment_failed:
        return "failed"
    return "ignored"


async def stop_payment(services: Services, order_id: str, intent_id: str) -> None:
    """Before a card order is cancelled, or a new attempt made: cancel its PaymentIntent at
    the gateway, so it can no longer be paid. If the payment already went through (or is
    processing), the cancellation or the new attempt is refused (``409 payment-received``):
    the webhook settles the order, and a dispute may refund it."""
    if services.stripe is None:
        return
    try:
        intent = await services.stripe.cancel(intent_id)
    except GatewayError as exc:
        raise GatewayUnavailable(f"could not cancel the card payment of order {order_id} ({exc}); try again") \
            from None
    if intent.status in ("succeeded", "processing"):
        from market.core.errors import Conflict

        raise Conflict(f"the card payment of order {order_id} was already made ({intent.status}); the order is "
                       "being settled — open a dispute to be refunded", kind="payment-received")


# -- giving back, after the commit ---------------------------------------------------------


async def refund_return(services: Services, return_id: int) -> bool:
    """Refund a pending card payment return at the gateway (idempotency key from the order
    and the intent), then store the refund's id. False if it is left for the next try."""
    gateway = services.stripe
    async with services.read_sessionmaker() as s:
        row = await s.get(PaymentReturn, return_id)
    if row is None or returns.status_of(row) != returns.PENDING or gateway is None:
        return False
    intent_id = row.paid_reference.removeprefix(returns.CARD_PREFIX)
    try:
        result = await gateway.refund(intent_id, row.amount, idempotency_key=return_key(row.order_id, intent_id))
    except GatewayError as exc:
        log.warning("payment return not refunded yet; the clock tries again", order=row.order_id,
                    intent=intent_id, error=str(exc))
        return False
    async with services.sessionmaker() as session:
        await session.execute(update(PaymentReturn).where(
            col(PaymentReturn.id) == return_id, returns.pending_at_gateway())
            .values(refund_reference=f"stripe:{result.refund_id}", refunded_at=Ctx.system(services).now))
        await session.commit()
    return True


async def cancel_intents_due(services: Services, limit: int = 100) -> int:
    """Cancel at the gateway the PaymentIntents of orders the market ended unpaid. One
    that was paid meanwhile is not an error: its webhook gives the money back."""
    if services.stripe is None:
        return 0
    async with services.read_sessionmaker() as s:
        due = (await s.execute(select(col(Order.id), col(Order.intent_to_cancel)).where(
            col(Order.intent_to_cancel).is_not(None)).limit(limit))).all()
    done = 0
    for order_id, intent_id in due:
        try:
            await services.stripe.cancel(intent_id)
        except GatewayError as exc:
            log.warning("PaymentIntent not cancelled yet; the clock tries again", order=order_id, error=str(exc))
            continue
        async with services.sessionmaker() as session:
            # Bookkeeping beside the order's state (no version bump: no move of the order races with it).
            await session.execute(update(Order).where(col(Order.id) == order_id,
                                                      col(Order.intent_to_cancel) == intent_id)
                                  .values(intent_to_cancel=None))
            await session.commit()
        done += 1
    return done


async def settle_gateway_work(services: Services, limit: int = 100) -> None:
    """The clock's round: intents still to cancel, card payment returns still to refund."""
    await cancel_intents_due(services, limit)
    if services.stripe is None:
        return
    async with services.read_sessionmaker() as s:
        pending = (await s.execute(select(col(PaymentReturn.id)).where(returns.pending_at_gateway())
                                   .order_by(col(PaymentReturn.id)).limit(limit))).scalars().all()
    for return_id in pending:
        await refund_return(services, return_id)
