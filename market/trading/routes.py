"""Orders (docs/API.md "Orders"): thin controllers — parse, one service call, commit, present."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, Unprocessable
from market.core.pagination import DEFAULT_LIMIT, Page, page_of, paginate
from market.core.services import Services
from market.listings.schemas import Purpose
from market.trading import access, orders, read, returns, settlement
from market.trading.models import Order
from market.trading.schemas import BankPayment, DecisionBody, OrderCreate, OrderRead, OrderToSign, PaymentMethod, Side
from market.trading.states import PAYABLE, OrderStatus
from market.web.dependencies import POINT_READS

Limit = Annotated[int, Parameter(ge=1, le=500)]


@get("/v1/listings/{listing_id:str}/order-document", tags=["orders"],
     summary="The order document to sign (verified buyer; optional)")
async def order_document(db: AsyncSession, ctx: Ctx, listing_id: str, plan_id: str, purpose: Purpose,
                         payment_method: PaymentMethod) -> OrderToSign:
    wanted = orders.Wanted(listing_id, plan_id, purpose, payment_method)
    return OrderToSign(**await orders.document_to_sign(db, ctx, wanted))


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post("/", status_code=201, summary="Place an order (verified buyer)")
    async def place(self, request: Request, services: Services, db: AsyncSession, ctx: Ctx,
                    data: OrderCreate) -> Response[OrderRead]:
        async def action() -> tuple[int, Any]:
            order, listing = await orders.place(db, ctx, data)
            return 201, await read.present(db, order, ctx.user, ctx.settings.bank_account, listing_title=listing.title)

        try:
            response = await idempotency.run(request, db, ctx.user.id, data, action)
        except orders.Refused as refused:
            await orders.keep_refusal(db, ctx, refused)
            raise refused.problem from None
        order_id = response.content["id"] if isinstance(response.content, dict) else None
        if order_id is None or response.content.get("payment", {}).get("provider") != "stripe":
            return response
        # The card gateway, outside any transaction; a replay finds the intent made before.
        from market.trading import checkout

        await checkout.ensure_intent(services, order_id)
        order = await db.get_one(Order, order_id, populate_existing=True)
        return Response(await read.present(db, order, ctx.user, ctx.settings.bank_account), status_code=201)

    @get("/", summary="Orders: the caller's own as buyer or as provider; staff: every order")
    async def list_orders(
            self, db: AsyncSession, ctx: Ctx,
            side: Annotated[Side | None, Parameter(description="buyer (default) or provider: the caller's own "
                                                               "orders on that side; staff without it: all")] = None,
            status: OrderStatus | None = None,
            payment_method: Annotated[PaymentMethod | None, Parameter(
                description="e.g. the operator's queue of transfers to confirm: "
                            "?status=awaiting_payment&payment_method=bank_transfer")] = None,
            limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> Page[OrderRead]:
        caller = ctx.user
        query = select(Order).where(access.listed_orders(caller, side))
        if status is not None:
            query = query.where(col(Order.status) == status)
        if payment_method is not None:
            query = query.where(col(Order.payment_method) == payment_method)
        rows = list((await db.execute(paginate(query, Order.id, limit, cursor))).scalars().all())
        page = page_of(rows, limit, lambda o: o)
        return Page(items=await read.present_many(db, page["items"], caller, ctx.settings.bank_account),
                    next_cursor=page["next_cursor"])

    @get("/{order_id:str}", summary="One order (its buyer, the listing's holder, staff)", opt={POINT_READS: True})
    async def get_order(self, db: AsyncSession, ctx: Ctx, order_id: str) -> OrderRead:
        order = await access.load(db, order_id, ctx.user)
        return await read.present(db, order, ctx.user, ctx.settings.bank_account, await returns.of_order(db, order.id))

    @post("/{order_id:str}/cancellation", status_code=200, summary="Cancel before payment (buyer)")
    async def cancel(self, services: Services, db: AsyncSession, ctx: Ctx, order_id: str) -> OrderRead:
        order = await access.load_for_buyer(db, order_id, ctx.user)
        intent_id = order.intent_id
        if intent_id is not None and order.status in PAYABLE:  # stop the card payment first, outside any transaction
            from market.trading import checkout

            await db.rollback()
            await checkout.stop_payment(services, order_id, intent_id)
        order = await orders.cancel(db, ctx, order_id)
        shown = await read.present(db, order, ctx.user, ctx.settings.bank_account)  # read before the commit
        await db.commit()
        return shown

    @post("/{order_id:str}/approval", status_code=200, summary="Approve or reject (the listing's holder)")
    async def approve(self, db: AsyncSession, ctx: Ctx, order_id: str, data: DecisionBody) -> OrderRead:
        order = await orders.decide(db, ctx, order_id, data.decision, data.reason, as_regulator=False)
        shown = await read.present(db, order, ctx.user, ctx.settings.bank_account)
        await db.commit()
        return shown

    # POST /{order_id}/regulator-approval is a regulator's signed act: market.oversight.action_routes.

    @post("/{order_id:str}/payment", status_code=200, summary="Record a bank transfer received (operator)")
    async def bank_payment(self, db: AsyncSession, ctx: Ctx, order_id: str, data: BankPayment) -> OrderRead:
        try:
            order = await settlement.record_bank_payment(db, ctx, order_id, data.reference, data.amount,
                                                         data.quoted_reference)
        except settlement.Ended as ended:  # the order is cancelled and the transfer owed back: keep that
            await db.commit()
            raise ended.problem from None
        shown = await read.present(db, order, ctx.user, ctx.settings.bank_account)
        await db.commit()
        return shown

    @post("/{order_id:str}/payment-attempts", status_code=200,
          summary="Pay again by card after a failed payment (buyer): a new PaymentIntent")
    async def retry_payment(self, services: Services, db: AsyncSession, ctx: Ctx, order_id: str) -> OrderRead:
        from market.trading import checkout

        order = await access.load_for_buyer(db, order_id, ctx.user)
        if order.payment_method != "stripe" or order.status != OrderStatus.payment_failed:
            raise Conflict(f"order {order_id} is {order.status} ({order.payment_method}); only a failed card "
                           "payment is tried again", kind="invalid-transition")
        await db.rollback()  # no transaction open while the gateway is called
        await checkout.ensure_intent(services, order_id, retry=True)
        order = await db.get_one(Order, order_id, populate_existing=True)
        return await read.present(db, order, ctx.user, ctx.settings.bank_account)

    @get("/{order_id:str}/contract", summary="The contract (交易凭证) bundle, once settled (docs/LEDGER.md §6)",
         opt={POINT_READS: True})
    async def contract(self, services: Services, db: AsyncSession, ctx: Ctx, order_id: str) -> dict[str, Any]:
        order = await access.load_contract(db, order_id, ctx.user)
        return await settlement.contract_bundle(db, services.ledger, order)


@post("/v1/payments/stripe/webhook", status_code=200, tags=["orders"],
      summary="Stripe events (signed with Stripe-Signature)")
async def stripe_webhook(request: Request, services: Services) -> dict[str, str]:
    if services.stripe is None:
        raise Unprocessable("card payments are not enabled on this market", kind="payment-method-unavailable")
    from market.payments.gateway import BadSignature
    from market.trading import checkout

    payload = await request.body()
    try:
        event = services.stripe.parse_webhook(payload, request.headers.get("stripe-signature"))
    except BadSignature as exc:
        raise DomainError(f"the Stripe-Signature does not verify: {exc}", kind="bad-signature") from None
    return {"event": event.id, "outcome": await checkout.on_event(services, event)}
