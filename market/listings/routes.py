"""Listings (docs/API.md "Listings"): thin controllers — parse, one service call, commit, present."""

import json
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.errors import Forbidden
from market.core.memo import remembered
from market.core.money import MAX_AMOUNT
from market.core.pagination import DEFAULT_LIMIT
from market.core.services import Services
from market.listings import access, catalog, read, search, service
from market.listings.schemas import (
    Delivery,
    ListingCreate,
    ListingRead,
    ListingUpdate,
    PlanModel,
    Purpose,
    SearchPage,
    Sort,
)
from market.listings.search import SearchParams
from market.registry.schemas import Grade
from market.web.requests import json_body

Limit = Annotated[int, Parameter(ge=1, le=500)]
# Bounded (0..MAX_AMOUNT) by the search itself, as 422 ``bad-price`` naming the field.
Price = Annotated[int | None, Parameter(description=f"minor units (fen), 0..{MAX_AMOUNT}")]


class ListingController(Controller):
    path = "/v1/listings"
    tags = ["listings"]

    @post("/", status_code=201, summary="Publish a listing (holder of the operation right)")
    async def publish(self, request: Request, db: AsyncSession, ctx: Ctx, data: ListingCreate) -> Response[ListingRead]:
        async def action() -> tuple[int, Any]:
            listing = await service.publish(db, ctx, data)
            return 201, await read.read(db, listing, ctx.caller)

        return await idempotency.run(request, db, ctx.user.id, data, action)

    @get("/", summary="Search listings (full text in Chinese and English, filters, facets)")
    async def search(
        self, services: Services, maybe_ctx: Ctx,
        q: str | None = None, category: str | None = None, grade: Grade | None = None, provider: str | None = None,
        model: PlanModel | None = None, delivery: Delivery | None = None, purpose: Purpose | None = None,
        min_price: Price = None,
        max_price: Price = None, currency: str | None = None, sort: Sort | None = None,
        include: Literal["all"] | None = None, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None,
    ) -> Response[SearchPage]:
        caller = maybe_ctx.caller
        if include == "all" and not (caller is not None and (caller.is_staff or provider == caller.id)):
            raise Forbidden("include=all is for staff, or for a provider's own listings (provider=<own id>)",
                            kind="wrong-role")
        params = SearchParams(q=q, category=category, grade=grade, provider=provider, model=model, delivery=delivery,
                              purpose=purpose,
                              min_price=min_price, max_price=max_price, currency=currency, sort=sort, limit=limit,
                              cursor=cursor, include_all=include == "all")

        memo = services.public_listings if services.settings.search_memory else None
        items_memo = services.public_listing_items if memo is not None else None

        async def build() -> bytes:
            async with services.read_sessionmaker() as db:
                return await read.find_json(db, None if shared else caller, params, memo, items_memo)

        # Most callers see what an anonymous caller sees (search.audience says who does
        # not): their answers come from memory until any listing, asset or account
        # changes (market.core.memo). The others' are computed for them, from the same
        # memory's public part (counts, pages, listings) and their own few extras.
        shared = caller is None or (not caller.is_staff and not params.include_all
                                    and caller.id not in await self._audience(services))
        if not shared or memo is None:
            return json_body(await build())
        return json_body(await remembered(memo, params, build))

    @staticmethod
    async def _audience(services: Services) -> frozenset[str]:
        async def build() -> frozenset[str]:
            async with services.read_sessionmaker() as db:
                return await search.audience(db)

        return await remembered(services.public_listings, "audience", build)

    @get("/{listing_id:str}", summary="One listing, with the plans the caller may order")
    async def get_listing(self, db: AsyncSession, maybe_ctx: Ctx, listing_id: str) -> ListingRead:
        return await read.read(db, await access.load(db, listing_id), maybe_ctx.caller)

    @patch("/{listing_id:str}", summary="Change text, terms or status (holder)")
    async def update(self, db: AsyncSession, ctx: Ctx, listing_id: str, data: ListingUpdate) -> ListingRead:
        listing = await service.update(db, ctx, listing_id, data)
        await db.commit()
        return await read.read(db, listing, ctx.caller)


@get("/v1/catalog", tags=["listings"], media_type="application/ld+json",
     summary="Public listings as a DCAT-AP catalog (JSON-LD, context inline, paged)")
async def dcat_catalog(request: Request, services: Services, limit: Limit = DEFAULT_LIMIT,
                       cursor: str | None = None) -> Response[bytes]:
    params = SearchParams(sort="newest", limit=limit, cursor=cursor)
    base = (services.settings.public_url or str(request.base_url)).rstrip("/")

    async def build() -> bytes:
        async with services.read_sessionmaker() as db:
            page = await read.find(db, None, params)
        after = None if page.next_cursor is None else f"{base}/v1/catalog?limit={limit}&cursor={page.next_cursor}"
        document = catalog.catalog(base, services.settings.name, page.items, after)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    body = await remembered(services.public_listings, ("catalog", base, limit, cursor), build)
    return Response(body, media_type="application/ld+json")
