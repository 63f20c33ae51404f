"""Contract negotiations (DSP 2025-1), provider side: a negotiation is an order of the
market, placed through the same gates and approvals and settled by the same payment;
the agreement is its contract (交易凭证). Never commits.

The consumer's messages move the negotiation directly (``request``, ``counter``,
``accept``, ``verify``, ``terminate``); the market's side moves with the order, through
subscribers of the order's moves (``follow_order``) and of regulators' actions
(``follow_enforcement``), in the transaction of that move:

- placed, approvals due → ``REQUESTED`` (nothing to say yet)
- a priced order awaiting payment → ``OFFERED`` (``ContractOfferMessage``: the plan's terms and price)
- settled (a free order at once) → ``AGREED`` (``ContractAgreementMessage``), after the consumer
  accepted an offer
- verified → ``FINALIZED`` if the order can still be delivered, else ``TERMINATED``
- a gate refused, the holder or a regulator rejected, the order ended unpaid, a freeze or
  suspension before agreement, a counter-offer (the terms are the listing's) →
  ``TERMINATED`` (``ContractNegotiationTerminationMessage``, ``code`` the problem type)
- refunded or expired after agreement → ``TERMINATED``; a finalized agreement stays final.
"""

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import money
from market.core.context import Ctx
from market.core.errors import DomainError, Unprocessable
from market.core.events import Moved
from market.core.ids import new_id
from market.core.types import rfc3339
from market.dsp import callbacks, odrl, protocol, steps
from market.dsp.models import DspNegotiation
from market.dsp.protocol import DspError
from market.dsp.states import NEGOTIATION as DSP_NEGOTIATION
from market.dsp.states import UNAGREED, NegotiationState
from market.listings import access as listing_access
from market.listings.models import Listing
from market.notifications import webhooks
from market.trading import delivery, orders, settlement
from market.trading.models import Order
from market.trading.schemas import OrderCreate
from market.trading.states import UNPAID, OrderStatus

N = NegotiationState
ERROR = "ContractNegotiationError"
PAYMENT_METHOD = {"free": "free", "metered": "postpaid"}  # any other plan is paid by bank transfer


def body(row: DspNegotiation, state: str | None = None) -> dict[str, Any]:
    """The ``ContractNegotiation`` the protocol answers with."""
    return {"@context": protocol.CONTEXT, "@type": "ContractNegotiation", "providerPid": row.id,
            "consumerPid": row.consumer_pid, "state": state or row.status}


def _fail(status: int, code: str, reason: str, row: DspNegotiation | None = None,
          consumer_pid: str | None = None) -> DspError:
    return DspError(status, code, reason, error_type=ERROR, provider_pid=row.id if row else None,
                    consumer_pid=row.consumer_pid if row else consumer_pid)


def check_message(message: Any, type_: str, row: DspNegotiation | None = None) -> dict[str, Any]:
    """The message's envelope (``protocol.envelope``), naming this process's pids where it
    has them (400 otherwise)."""
    message = protocol.envelope(message, type_, ERROR, (row.id, row.consumer_pid) if row else (None, None))
    if row is not None:
        if message.get("providerPid") not in (None, row.id) or message["consumerPid"] != row.consumer_pid:
            raise _fail(400, "bad-message", "the message names another process", row)
    return message


def _wanted_offer(message: dict[str, Any], row: DspNegotiation | None) -> tuple[str, str, str | None]:
    """``(listing_id, plan_id, narrowed purpose or None)`` of the message's offer (400 when
    the offer is missing, unknown in form, or its ``target`` is another dataset's)."""
    offer = message.get("offer")
    if not isinstance(offer, dict) or not isinstance(offer.get("@id"), str):
        raise _fail(400, "bad-offer", "the message carries no offer with an @id", row, message.get("consumerPid"))
    ids = protocol.parse_offer_id(offer["@id"])
    if ids is None:
        raise _fail(400, "unknown-offer", f"no offer {offer['@id']}", row, message.get("consumerPid"))
    target = offer.get("target")
    if target is not None and target != protocol.dataset_id(ids[0]):
        raise _fail(400, "target-mismatch", f"offer {offer['@id']} is not an offer of {target}", row,
                    message.get("consumerPid"))
    return ids[0], ids[1], _narrowed_purpose(offer)


def _narrowed_purpose(offer: dict[str, Any]) -> str | None:
    for rule in offer.get("permission") or []:
        for constraint in (rule.get("constraint") or []) if isinstance(rule, dict) else []:
            if isinstance(constraint, dict) and constraint.get("leftOperand") == "purpose" \
                    and constraint.get("operator") == "eq":
                return odrl.parse_purpose_iri(str(constraint.get("rightOperand")))
    return None


async def _known_plan(session: AsyncSession, ctx: Ctx, listing_id: str, plan_id: str,
                      consumer_pid: str | None) -> tuple[Listing, dict[str, Any]]:
    """The listing and plan an offer names, if the consumer may see it (400 otherwise)."""
    listing = await session.get(Listing, listing_id)
    plans = [] if listing is None else listing_access.visible_plans(listing, ctx.caller)
    plan = next((p for p in plans if p["id"] == plan_id), None)
    if listing is None or plan is None:
        raise _fail(400, "unknown-offer", f"no offer {protocol.offer_id(listing_id, plan_id)}",
                    consumer_pid=consumer_pid)
    return listing, plan


async def find(session: AsyncSession, ctx: Ctx, consumer_pid: str) -> DspNegotiation | None:
    return (await session.execute(select(DspNegotiation).where(
        col(DspNegotiation.account_id) == ctx.user.id, col(DspNegotiation.consumer_pid) == consumer_pid))).scalars().first()


async def load(session: AsyncSession, ctx: Ctx, provider_pid: str) -> DspNegotiation:
    """The caller's negotiation (404 for an unknown one or another party's)."""
    row = await session.get(DspNegotiation, provider_pid)
    if row is None or row.account_id != ctx.user.id:
        raise _fail(404, "not-found", f"no negotiation {provider_pid}")
    return row


async def request(session: AsyncSession, ctx: Ctx, message: Any) -> DspNegotiation:
    """A consumer's first ``ContractRequestMessage``: the negotiation and its order. A gate
    that refuses raises ``Refused`` or a ``DomainError`` (the caller then records the
    negotiation as requested and terminated, ``terminated_at_once``)."""
    message = check_message(message, "ContractRequestMessage")
    if "providerPid" in message:
        raise _fail(400, "bad-message", "a first request names no providerPid; a counter-offer goes to "
                    "/negotiations/{providerPid}/request", consumer_pid=message["consumerPid"])
    address = message.get("callbackAddress")
    if not isinstance(address, str) or not address:
        raise _fail(400, "bad-message", "callbackAddress is missing", consumer_pid=message["consumerPid"])
    try:
        await webhooks.check_url(address.strip(), ctx.settings.webhook_allow_private)
    except DomainError as exc:
        raise protocol.from_domain(exc, ERROR, consumer_pid=message["consumerPid"]) from None
    listing_id, plan_id, purpose = _wanted_offer(message, None)
    listing, plan = await _known_plan(session, ctx, listing_id, plan_id, message["consumerPid"])
    licence = json.loads(listing.licence)
    if purpose is not None and purpose not in licence["purposes"]:  # the order's own gate, said before the order
        raise Unprocessable(f"purpose {purpose!r} is not among the licence's purposes {licence['purposes']}",
                            kind="purpose-not-licensed")
    row = DspNegotiation(id=new_id("dng"), consumer_pid=message["consumerPid"], account_id=ctx.user.id,
                         listing_id=listing.id, plan_id=plan_id, purpose=purpose or licence["purposes"][0],
                         status=N.REQUESTED, callback_address=address.strip(), created_at=ctx.now,
                         updated_at=ctx.now)
    order, _ = await orders.place(session, ctx, OrderCreate(
        listing_id=listing.id, plan_id=plan_id, purpose=row.purpose,
        payment_method=PAYMENT_METHOD.get(plan["model"], "bank_transfer")))
    row.order_id = order.id
    await DSP_NEGOTIATION.create(session, row, ctx, {})
    await steps.negotiation(session, ctx, row, "requested", "consumer", offer=protocol.offer_id(listing.id, plan_id))
    await _follow(session, ctx, row, order)
    return row


async def terminated_at_once(session: AsyncSession, ctx: Ctx, message: dict[str, Any], code: str,
                             reason: str) -> DspNegotiation:
    """A first request a gate refused: requested, then terminated by the provider, with no order."""
    listing_id, plan_id, purpose = _wanted_offer(message, None)
    row = DspNegotiation(id=new_id("dng"), consumer_pid=message["consumerPid"], account_id=ctx.user.id,
                         listing_id=listing_id, plan_id=plan_id, purpose=purpose or "", status=N.REQUESTED,
                         callback_address=str(message["callbackAddress"]).strip(), created_at=ctx.now,
                         updated_at=ctx.now)
    await DSP_NEGOTIATION.create(session, row, ctx, {})
    await steps.negotiation(session, ctx, row, "requested", "consumer", offer=protocol.offer_id(listing_id, plan_id))
    await _end(session, ctx, row, code, reason)
    return row


async def counter(session: AsyncSession, ctx: Ctx, provider_pid: str, message: Any) -> DspNegotiation:
    """A counter-offer: taken (``REQUESTED``), then refused by the provider, whose terms are
    the listing's: the order is cancelled and the negotiation terminated."""
    row = await load(session, ctx, provider_pid)
    check_message(message, "ContractRequestMessage", row)
    listing_id, plan_id, _ = _wanted_offer(message, row)
    await _known_plan(session, ctx, listing_id, plan_id, row.consumer_pid)
    await DSP_NEGOTIATION.move(session, row, "counter", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "consumer", offer=protocol.offer_id(listing_id, plan_id))
    await _end(session, ctx, row, "counter-offer-refused",
               "the market's terms are its listing's: a different offer is a new negotiation")
    return row


async def accept(session: AsyncSession, ctx: Ctx, provider_pid: str, message: Any) -> DspNegotiation:
    """``ContractNegotiationEventMessage`` ``ACCEPTED`` (the only event a consumer sends)."""
    row = await load(session, ctx, provider_pid)
    check_message(message, "ContractNegotiationEventMessage", row)
    if message.get("eventType") != "ACCEPTED":
        raise _fail(400, "invalid-transition", f"a consumer sends the ACCEPTED event, not {message.get('eventType')!r}",
                    row)
    await DSP_NEGOTIATION.move(session, row, "accept", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "consumer")
    order = await _order(session, row)
    if order is not None and order.status == OrderStatus.active:  # paid before it was accepted
        await _agree(session, ctx, row, order)
    return row


async def verify(session: AsyncSession, ctx: Ctx, provider_pid: str, message: Any) -> DspNegotiation:
    """``ContractAgreementVerificationMessage``: verified, then finalized if the order can still
    be delivered (else terminated with why)."""
    row = await load(session, ctx, provider_pid)
    check_message(message, "ContractAgreementVerificationMessage", row)
    await DSP_NEGOTIATION.move(session, row, "verify", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "consumer")
    assert row.order_id is not None  # agreed: it has its order
    try:
        await delivery.check_access(session, ctx, row.order_id)
    except DomainError as exc:
        await _end(session, ctx, row, exc.kind, exc.detail)
        return row
    await DSP_NEGOTIATION.move(session, row, "finalize", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "provider")
    await _tell(session, ctx, row, "/events", {"@type": "ContractNegotiationEventMessage", "eventType": "FINALIZED"})
    return row


async def terminate(session: AsyncSession, ctx: Ctx, provider_pid: str, message: Any) -> DspNegotiation:
    """The consumer ends it: before agreement its unpaid order is cancelled; after, only the
    process ends (the contract stands; money goes back only through a dispute)."""
    row = await load(session, ctx, provider_pid)
    check_message(message, "ContractNegotiationTerminationMessage", row)
    code = str(message.get("code") or "consumer-terminated")[:100]
    unagreed = row.status in UNAGREED
    await DSP_NEGOTIATION.move(session, row, "terminate", ctx, **_values(ctx, code, _reason(message)))
    await _stepped(session, ctx, row, "consumer", code=code)
    order = await _order(session, row)
    if unagreed and order is not None and order.status in UNPAID:
        await orders.cancel(session, ctx, order.id)
    return row


def _reason(message: dict[str, Any]) -> str | None:
    reason = message.get("reason")
    if isinstance(reason, list):
        reason = "; ".join(str(r) for r in reason)
    return None if reason is None else str(reason)[:500]


# -- the market's side ------------------------------------------------------------------


async def _order(session: AsyncSession, row: DspNegotiation) -> Order | None:
    return None if row.order_id is None else await session.get(Order, row.order_id)


def _values(ctx: Ctx, code: str | None = None, reason: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": ctx.now}
    if code is not None:
        values.update(code=code, reason=reason)
    return values


async def _stepped(session: AsyncSession, ctx: Ctx, row: DspNegotiation, by: str, code: str | None = None,
                   **extra: Any) -> None:
    """The ledger step of the move just made (``dsp.negotiation_<state>``)."""
    await steps.negotiation(session, ctx, row, row.status.lower(), by, code=code, **extra)


async def _tell(session: AsyncSession, ctx: Ctx, row: DspNegotiation, path: str, message: dict[str, Any]) -> None:
    full = {"@context": protocol.CONTEXT, "@type": message.pop("@type"), "providerPid": row.id,
            "consumerPid": row.consumer_pid, **message}
    await callbacks.owe(session, ctx, row.id, row.callback_address, f"/negotiations/{row.consumer_pid}{path}", full)


async def _end(session: AsyncSession, ctx: Ctx, row: DspNegotiation, code: str, reason: str) -> None:
    """The provider terminates: the termination message, and an unpaid order cancelled."""
    await DSP_NEGOTIATION.move(session, row, "terminate", ctx, **_values(ctx, code, reason[:500]))
    await _stepped(session, ctx, row, "provider", code=code)
    await _tell(session, ctx, row, "/termination", {"@type": "ContractNegotiationTerminationMessage",
                                                    "code": code, "reason": [reason]})
    order = await _order(session, row)
    if order is not None and order.status in UNPAID:
        await settlement.end_unsettled(session, ctx, order, reason, cause=f"negotiation-{code}")


def _terms(order: Order) -> dict[str, Any]:
    rules = odrl.rules(json.loads(order.licence), [order.purpose])
    if order.price:
        rules["obligation"] = [{"action": "compensate", "constraint": [
            {"leftOperand": "payAmount", "operator": "eq",
             "rightOperand": money.decimal(order.price, order.currency), "unit": order.currency}]}]
    return rules


async def _offer(session: AsyncSession, ctx: Ctx, row: DspNegotiation, order: Order) -> None:
    await DSP_NEGOTIATION.move(session, row, "offer", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "provider")
    await _tell(session, ctx, row, "/offers", {"@type": "ContractOfferMessage", "offer": {
        "@type": "Offer", "@id": protocol.offer_id(row.listing_id, row.plan_id),
        "target": protocol.dataset_id(row.listing_id), **_terms(order)}})


async def _agree(session: AsyncSession, ctx: Ctx, row: DspNegotiation, order: Order) -> None:
    await DSP_NEGOTIATION.move(session, row, "agree", ctx, **_values(ctx))
    await _stepped(session, ctx, row, "provider", agreement=protocol.agreement_id(order.id))
    await _tell(session, ctx, row, "/agreement", {"@type": "ContractAgreementMessage", "agreement": agreement(
        ctx, order)})


def agreement(ctx: Ctx, order: Order) -> dict[str, Any]:
    """The ``Agreement``: the order's contract, its terms as accepted, in ODRL."""
    return {"@id": protocol.agreement_id(order.id), "@type": "Agreement",
            "target": protocol.dataset_id(order.listing_id),
            "timestamp": rfc3339(order.settled_at or ctx.now),
            "assigner": protocol.market_participant(ctx.settings),
            "assignee": protocol.participant(order.buyer_id), **_terms(order)}


async def _follow(session: AsyncSession, ctx: Ctx, row: DspNegotiation, order: Order) -> None:
    """Bring the negotiation to where its order is."""
    if order.status == OrderStatus.active and row.status in (N.REQUESTED, N.ACCEPTED):
        await _agree(session, ctx, row, order)
    elif order.status == OrderStatus.awaiting_payment and row.status == N.REQUESTED \
            and order.payment_method not in ("free", "postpaid"):  # those settle in the same breath
        await _offer(session, ctx, row, order)
    elif order.status in (OrderStatus.rejected, OrderStatus.cancelled) and row.status in UNAGREED:
        await _end(session, ctx, row, f"order-{order.status}", order.status_reason or f"the order was {order.status}")
    elif order.status in (OrderStatus.refunded, OrderStatus.expired) and row.status in (N.AGREED, N.VERIFIED):
        await _end(session, ctx, row, f"order-{order.status}", f"the order was {order.status}")


async def follow_order(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    """Subscriber of every order move: its negotiation, if it has one, follows."""
    order: Order = event.row
    if order.created_at == ctx.now:
        # A move in the transaction that placed the order (a free one settled at once): no
        # negotiation can name it yet; ``request`` brings its own to the order's state after.
        return
    row = (await session.execute(select(DspNegotiation).where(col(DspNegotiation.order_id) == order.id))).scalars().first()
    if row is not None:
        await _follow(session, ctx, row, order)


async def follow_enforcement(session: AsyncSession, ctx: Ctx, listing_ids: list[str], why: str) -> None:
    """A freeze or a suspension stops what is not yet agreed on ``listing_ids``: terminated,
    its unpaid order ended (a consumer is not left waiting on a payment that cannot settle)."""
    if not listing_ids:
        return
    rows = (await session.execute(select(DspNegotiation).where(
        col(DspNegotiation.listing_id).in_(listing_ids), col(DspNegotiation.status).in_([s.value for s in UNAGREED]))
        .order_by(col(DspNegotiation.id)))).scalars().all()
    for row in rows:
        await _end(session, ctx, row, "frozen", why)
