"""Placing an order through its gates, approvals and cancellation (docs/API.md "Orders");
never commits.

Gates, each with its own problem type and nothing changed: a verified buyer (403); a
plan the caller may see (404); not one's own listing (``422 self-dealing``); an
orderable listing (``409 not-orderable``); a purpose the licence allows
(``422 purpose-not-licensed``); the export gate (``403 export-not-allowed``). The
self-dealing and export refusals are kept for the regulator (``Refused``: the route
publishes the refusal in a transaction of its own, as the order's rolls back).
"""

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import signatures
from market.accounts.schemas import Role
from market.core import audit, signing
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable
from market.core.events import AttemptRefused
from market.core.ids import new_id
from market.core.types import rfc3339
from market.listings import access as listing_access
from market.listings.schemas import without_buyers
from market.registry.models import Asset
from market.trading import access, documents, notices
from market.trading.models import Order
from market.trading.schemas import OrderCreate
from market.trading.states import ORDER, OrderStatus
from market.web.credentials import AccountSnapshot

ORDER_DOCUMENT = "order"
ORDER_FIELDS = frozenset({"type", "v", "market", "buyer", "listing", "terms_version", "terms_sha256", "plan_id",
                          "purpose", "payment_method", "price", "issued_at"})


@dataclass
class Refused(Exception):
    """A gate the regulator watches refused the attempt: ``problem`` is the answer, and
    ``refusal`` is kept (in a transaction of its own) though nothing else changes."""

    problem: DomainError
    refusal: AttemptRefused


@dataclass(frozen=True)
class Wanted:
    listing_id: str
    plan_id: str
    purpose: str
    payment_method: str


def fee_of(price: int, fee_bps: int) -> int:
    """The market's fee: ``price × fee_bps / 10000`` rounded down to the fen."""
    return price * fee_bps // 10_000


def _plan(listing: listing_access.ListingToOrder, plan_id: str, ctx: Ctx) -> dict[str, Any]:
    for plan in listing_access.visible_plans(listing, ctx.caller):
        if plan["id"] == plan_id:
            return plan
    raise NotFound(f"no plan {plan_id} in listing {listing.id}")


def _buyer(ctx: Ctx) -> AccountSnapshot:
    """The caller, a verified buyer: its account as the request's credentials read it
    (the credential memory is never older than the database at the request's start,
    ``market.core.memo``), so not read again."""
    caller = ctx.user
    caller.require(Role.buyer)
    caller.require_verified()
    return caller.account


async def _gates(session: AsyncSession, ctx: Ctx, wanted: Wanted) -> tuple[
        AccountSnapshot, listing_access.ListingToOrder, listing_access.AssetToOrder, dict[str, Any]]:
    buyer = _buyer(ctx)
    # PostgreSQL: the listing and asset held from this read on (``listing_access.hold``).
    listing, asset, orderable = await listing_access.load_to_order(session, wanted.listing_id)
    plan = _plan(listing, wanted.plan_id, ctx)
    if listing.provider_id == buyer.id:
        raise Refused(Unprocessable("a provider cannot buy its own listing", kind="self-dealing"),
                      AttemptRefused(kind="self-dealing", account_id=buyer.id, listing_id=listing.id,
                                     asset_id=asset.id, detail=f"{buyer.id} ordered its own listing {listing.id}"))
    if not orderable:
        raise Conflict(f"listing {listing.id} cannot be ordered now (paused, delisted, frozen, or its asset is "
                       "not registered)", kind="not-orderable")
    licence = json.loads(listing.licence)
    if wanted.purpose not in licence["purposes"]:
        raise Unprocessable(f"purpose {wanted.purpose!r} is not among the licence's purposes "
                            f"{licence['purposes']} (无场景不交易)", kind="purpose-not-licensed")
    home = ctx.settings.jurisdiction
    if buyer.jurisdiction != home and (not asset.export_allowed or licence["territory"] == "domestic"):
        why = "the asset is not cleared for export" if not asset.export_allowed else "the licence is domestic only"
        raise Refused(Forbidden(f"{why}: it cannot go to a buyer in {buyer.jurisdiction} (market: {home})",
                                kind="export-not-allowed"),
                      AttemptRefused(kind="export-not-allowed", account_id=buyer.id, listing_id=listing.id,
                                     asset_id=asset.id, detail=f"{why}; buyer jurisdiction {buyer.jurisdiction}"))
    free = plan["model"] == "free"
    if free != (wanted.payment_method == "free"):
        raise Unprocessable("a free plan is ordered with payment_method free, and only a free plan is",
                            kind="bad-payment-method")
    metered = plan["model"] == "metered"
    if metered != (wanted.payment_method == "postpaid"):
        raise Unprocessable("a metered plan is ordered with payment_method postpaid (each period billed for its "
                            "use), and only a metered plan is", kind="bad-payment-method")
    if wanted.payment_method == "stripe" and not ctx.settings.stripe_secret_key:
        raise Unprocessable("card payments (stripe) are not enabled on this market", kind="payment-method-unavailable")
    return buyer, listing, asset, plan


def order_document(ctx: Ctx, listing: listing_access.ListingToOrder, plan: dict[str, Any], wanted: Wanted) -> dict[str, Any]:
    return {"type": ORDER_DOCUMENT, "v": 1, "market": ctx.market, "buyer": ctx.user.id, "listing": listing.id,
            "terms_version": listing.terms_version, "terms_sha256": listing.terms_sha256, "plan_id": plan["id"],
            "purpose": wanted.purpose, "payment_method": wanted.payment_method, "price": plan["price"],
            "issued_at": rfc3339(ctx.now)}


async def document_to_sign(session: AsyncSession, ctx: Ctx, wanted: Wanted) -> dict[str, Any]:
    """The order document a buyer may sign (checked by every gate, changing nothing)."""
    try:
        _, listing, _, plan = await _gates(session, ctx, wanted)
    except Refused as refused:
        raise refused.problem from None
    return signing.to_sign(order_document(ctx, listing, plan, wanted))


async def _signed(session: AsyncSession, ctx: Ctx, data: OrderCreate) -> tuple[Wanted, dict[str, Any]]:
    assert data.signing_bytes is not None and data.key_id is not None and data.signature is not None
    raw, document = signing.open_document(data.signing_bytes, doc_type=ORDER_DOCUMENT, market=ctx.market,
                                          fields=ORDER_FIELDS)
    if document["buyer"] != ctx.user.id:
        raise Unprocessable("the order document names another buyer", kind="altered-document")
    signing.check_fresh(document, ctx.now)
    await signatures.verify_party_signature(session, ctx.user.id, data.key_id, data.signature, raw)
    wanted = Wanted(str(document["listing"]), str(document["plan_id"]), str(document["purpose"]),
                    str(document["payment_method"]))
    return wanted, {"document": document, "key_id": data.key_id, "signature": data.signature}


async def place(session: AsyncSession, ctx: Ctx, data: OrderCreate) -> tuple[Order, listing_access.ListingToOrder]:
    """Place an order; returns it with the listing it was placed on (as read here)."""
    signed = None
    if data.signing_bytes is not None:
        wanted, signed = await _signed(session, ctx, data)
    else:
        # OrderCreate's validator: without a signed document, all four are given.
        assert data.listing_id is not None and data.plan_id is not None
        assert data.purpose is not None and data.payment_method is not None
        wanted = Wanted(data.listing_id, data.plan_id, data.purpose, data.payment_method)
    buyer, listing, asset, plan = await _gates(session, ctx, wanted)
    if signed is not None:
        document = signed["document"]
        if (document["terms_version"], document["terms_sha256"], document["price"]) != \
                (listing.terms_version, listing.terms_sha256, plan["price"]):
            raise Conflict("the listing's terms changed since the order document was issued; fetch a new one",
                           kind="terms-changed")
    # A metered plan's price is per 1,000 records used: the order itself costs nothing, each period's
    # use is charged (market.usage.metering).
    price = 0 if plan["model"] == "metered" else plan["price"]["amount"]
    fee = fee_of(price, ctx.settings.fee_bps)
    evidence = {} if signed is None else {
        "order_document": signing.canonical(signed["document"]).decode(),
        "buyer_key_id": signed["key_id"], "buyer_signature": signed["signature"]}
    order: Order = ORDER.new(
        id=new_id("ord"), listing_id=listing.id, asset_id=asset.id, buyer_id=buyer.id,
        provider_id=listing.provider_id,
        terms_version=listing.terms_version, terms_sha256=listing.terms_sha256, plan_id=plan["id"],
        plan=json.dumps(without_buyers(plan), ensure_ascii=False), licence=listing.licence, purpose=wanted.purpose,
        payment_method=wanted.payment_method, currency=plan["price"]["currency"], price=price, fee=fee,
        provider_share=price - fee, needs_holder_approval=listing.approval_required,
        needs_regulator_approval=asset.grade == "important", created_at=ctx.now, updated_at=ctx.now, **evidence,
    )
    await ORDER.create(session, order, ctx, {})
    await documents.record(session, ctx, "trade.placed", f"order:{order.id}", placed_document(order))
    await _advance(session, ctx, order)
    await notices.order_placed(session, ctx, order)
    return order, listing


def placed_document(order: Order) -> dict[str, Any]:
    return {
        "order": order.id, "listing": order.listing_id, "asset": order.asset_id, "buyer": order.buyer_id,
        "provider": order.provider_id, "terms_version": order.terms_version, "terms_sha256": order.terms_sha256,
        "plan": json.loads(order.plan), "purpose": order.purpose, "payment_method": order.payment_method,
        "price": {"amount": order.price, "currency": order.currency},
        "fee": {"amount": order.fee, "currency": order.currency},
        "provider_share": {"amount": order.provider_share, "currency": order.currency},
        "buyer_signature": None if order.buyer_signature is None else
        {"key_id": order.buyer_key_id, "value": order.buyer_signature,
         "document_sha256": audit.document_digest(json.loads(order.order_document or "{}"))},
        "placed_at": rfc3339(order.created_at),
    }


def approvals_due(order: Order) -> bool:
    return (order.needs_holder_approval and order.holder_decision != "approve") or \
        (order.needs_regulator_approval and order.regulator_decision != "approve")


async def _advance(session: AsyncSession, ctx: Ctx, order: Order) -> None:
    """Past approvals once all are given; a free or postpaid order is then settled at once.

    Both callers found the order settleable earlier in this transaction, under the locks
    that keep it so (placing: ``_gates``; approving: ``_approvable``)."""
    if order.status != OrderStatus.pending_approval or approvals_due(order):
        return
    await ORDER.move(session, order, "ready", ctx, updated_at=ctx.now)
    await notices.order_ready(session, ctx, order)
    if order.payment_method in ("free", "postpaid"):
        from market.trading import settlement

        await settlement.settle(session, ctx, order, reference=f"{order.payment_method}:{order.id}", checked=True)


async def decide(session: AsyncSession, ctx: Ctx, order_id: str, decision: str, reason: str,
                 as_regulator: bool, act: dict[str, str] | None = None) -> Order:
    """The holder's (approval listings) or a regulator's (important data) decision. A
    regulator's comes as a signed act, checked by the caller (``oversight.actions``):
    ``act`` is its evidence (document hash, key id, signature), kept in the decision's
    trade document."""
    caller = ctx.user
    if as_regulator:
        caller.require(Role.regulator)
        if act is None:
            raise Unprocessable("a regulator's decision is a signed act", kind="unsigned-act")
        order = await access.load(session, order_id, caller)
        if not order.needs_regulator_approval:
            raise Conflict(f"order {order_id} needs no regulator approval", kind="approval-not-required")
        if order.regulator_decision is not None:
            raise Conflict(f"order {order_id} was decided by a regulator already", kind="already-decided")
        values: dict[str, Any] = {"regulator_decision": decision}
    else:
        order = await access.load_for_holder(session, order_id, caller)
        if not order.needs_holder_approval:
            raise Conflict(f"order {order_id} needs no approval by its holder", kind="approval-not-required")
        if order.holder_decision is not None:
            raise Conflict(f"order {order_id} was decided by its holder already", kind="already-decided")
        values = {"holder_decision": decision}
    if decision == "approve":
        await _approvable(session, order, as_regulator)
    by = "regulator" if as_regulator else "holder"
    event = "trade.rejected" if decision == "reject" else "trade.approved"
    reason_sha256 = await audit.salted(session, f"order:{order.id}", event, {"reason": reason})
    document: dict[str, Any] = {"order": order.id, "by": by, "account": caller.id, "decision": decision,
                "reason_salted_sha256": reason_sha256}
    if act is not None:
        document["act"] = act
    if decision == "reject":
        await ORDER.move(session, order, "reject", ctx, **values, status_reason=reason or None, updated_at=ctx.now)
        await documents.record(session, ctx, "trade.rejected", f"order:{order.id}", document)
        await notices.order_status(session, ctx, order, "order.rejected", by=by, reason=reason or None)
        return order
    await ORDER.move(session, order, "approve", ctx, **values, updated_at=ctx.now)
    await documents.record(session, ctx, "trade.approved", f"order:{order.id}", document)
    await _advance(session, ctx, order)
    return order


async def _approvable(session: AsyncSession, order: Order, as_regulator: bool) -> None:
    """An approval moves the order towards payment (a free one to settlement): only while
    it could be settled, and never by a provider that no longer holds the asset."""
    from market.trading import settlement

    why = await settlement.why_unsettleable(session, order)
    if why is None:
        return
    asset = await session.get_one(Asset, order.asset_id)
    if not as_regulator and asset.provider_id != order.provider_id:
        raise Forbidden(f"order {order.id} cannot be approved by {order.provider_id}: {why}", kind="not-holder")
    raise Conflict(f"order {order.id} cannot be approved now: {why}", kind="not-orderable", extra={"reason": why})


async def cancel(session: AsyncSession, ctx: Ctx, order_id: str) -> Order:
    order = await access.load_for_buyer(session, order_id, ctx.user)
    await ORDER.move(session, order, "cancel", ctx, updated_at=ctx.now)
    await documents.record(session, ctx, "trade.cancelled", f"order:{order.id}", {"order": order.id, "by": ctx.user.id})
    return order


async def keep_refusal(session: AsyncSession, ctx: Ctx, refused: Refused) -> None:
    """Publish a refused attempt on its own (the order's transaction was rolled back), for
    the regulator's record."""
    await session.rollback()
    await ctx.services.events.publish(session, ctx, refused.refusal)
    await session.commit()
