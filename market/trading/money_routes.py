"""Disputes, refunds, provider statements and payouts (docs/API.md "Orders"): thin
controllers — parse, one service call, commit, present.

    POST /v1/orders/{id}/disputes        the buyer, within MARKET_DISPUTE_WINDOW → 201
    GET  /v1/orders/{id}/disputes        whoever sees the order
    GET  /v1/disputes                    staff: all; buyers and holders: their own; ?status=, paged
    GET  /v1/disputes/{id}               the buyer, the listing's holder, staff
    POST /v1/disputes/{id}/resolution    operators: refund or reject
    GET  /v1/providers/me/statement      providers: ?period=YYYY-MM (default: this month, UTC)
    POST /v1/payouts                     operators → 201
"""

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from market.core.services import Services
from market.trading import disputes, statements
from market.trading.disputes import DisputeView, ResolutionBody
from market.trading.schemas import DisputeCreate, PayoutCreate, PayoutRead
from market.trading.statements import Statement
from market.trading.states import DisputeStatus


@post("/v1/orders/{order_id:str}/disputes", status_code=201, tags=["orders"],
      summary="Dispute a settled order (its buyer, within the dispute window)")
async def open_dispute(request: Request, db: AsyncSession, ctx: Ctx, order_id: str,
                       data: DisputeCreate) -> Response[DisputeView]:
    async def action() -> tuple[int, Any]:
        dispute, order = await disputes.open_dispute(db, ctx, order_id, data)
        return 201, await disputes.present(db, dispute, order)

    return await idempotency.run(request, db, ctx.user.id, data, action)


@get("/v1/orders/{order_id:str}/disputes", tags=["orders"],
     summary="An order's disputes (its buyer, the listing's holder, staff)")
async def order_disputes(db: AsyncSession, ctx: Ctx, order_id: str) -> list[DisputeView]:
    return await disputes.of_order(db, order_id, ctx.user)


@get("/v1/disputes", tags=["orders"],
     summary="Disputes: staff every one, buyers and holders those of their own orders; paged")
async def list_disputes(db: AsyncSession, ctx: Ctx, status: DisputeStatus | None = None,
                        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                        cursor: str | None = None) -> Page[DisputeView]:
    return Page(**await disputes.list_disputes(db, ctx.user, status, limit, cursor))


@get("/v1/disputes/{dispute_id:str}", tags=["orders"],
     summary="One dispute (the order's buyer, the listing's holder, staff)")
async def get_dispute(db: AsyncSession, ctx: Ctx, dispute_id: str) -> DisputeView:
    dispute, order = await disputes.load(db, dispute_id, ctx.user)
    return await disputes.present(db, dispute, order)


@post("/v1/disputes/{dispute_id:str}/resolution", status_code=200, tags=["orders"],
      summary="Refund or reject a dispute (operator); a refund ends access at once")
async def resolve_dispute(services: Services, db: AsyncSession, ctx: Ctx, dispute_id: str,
                          data: ResolutionBody) -> DisputeView:
    dispute, order, card_refund = await disputes.resolve(db, ctx, dispute_id, data)
    shown = await disputes.present(db, dispute, order)  # read in the transaction, not after it
    await db.commit()  # access ends here, before any money moves
    if card_refund is not None:
        await disputes.refund_at_gateway(services, db, card_refund)
        dispute, order = await disputes.load(db, dispute_id, ctx.user)
        shown = disputes.dispute_read(dispute, order, shown.listing.title if shown.listing else None)
    return shown


@get("/v1/providers/me/statement", tags=["orders"],
     summary="The caller's statement for a month (provider): ?period=YYYY-MM, default the current month")
async def provider_statement(
        db: AsyncSession, ctx: Ctx,
        period: Annotated[str | None, Parameter(description="a calendar month in UTC: YYYY-MM; default the "
                                                            "current month (UTC) by the market's clock")] = None) \
        -> Statement:
    return await statements.own_statement(db, ctx, period)


@post("/v1/payouts", status_code=201, tags=["orders"],
      summary="Record a payout to a provider (operator); never more than is due")
async def record_payout(request: Request, db: AsyncSession, ctx: Ctx, data: PayoutCreate) -> Response[PayoutRead]:
    async def action() -> tuple[int, Any]:
        return 201, statements.payout_read(await statements.record_payout(db, ctx, data))

    return await idempotency.run(request, db, ctx.user.id, data, action)


MONEY_ROUTES = [open_dispute, order_disputes, list_disputes, get_dispute, resolve_dispute, provider_statement,
                record_payout]

__all__ = ["MONEY_ROUTES"]
