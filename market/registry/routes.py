"""Registry (docs/API.md "Registry"): thin controllers — parse, one service call, commit, present."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import CacheControlHeader
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.errors import NotFound, Unprocessable
from market.core.ids import new_id
from market.core.memo import remembered
from market.core.pagination import DEFAULT_LIMIT, Page
from market.core.services import Services
from market.registry import (
    access,
    assets,
    categories,
    certificates,
    claims,
    content,
    objections,
    regions,
    review,
    transfers,
)
from market.registry.schemas import (
    AssetCreate,
    AssetRead,
    AssetUpdate,
    CancelRequest,
    CategoryList,
    CategoryRead,
    ClaimToSign,
    ContentRead,
    Grade,
    ObjectionCreate,
    ObjectionRead,
    ObjectionResolution,
    RegionRead,
    ReviewDecision,
    SignedSubmission,
    TransferAccept,
    TransferToSign,
)
from market.registry.states import AssetStatus
from market.web.ledger_routes import subject_page
from market.web.requests import json_body

Limit = Annotated[int, Parameter(ge=1, le=500)]
Cursor = str | None


class AssetController(Controller):
    path = "/v1/assets"
    tags = ["registry"]

    @post("/", status_code=201, summary="Create a draft asset (verified provider)")
    async def create(self, request: Request, services: Services, db: AsyncSession, ctx: Ctx,
                     data: AssetCreate) -> Response[AssetRead]:
        async def action() -> tuple[int, Any]:
            asset_id = new_id("ast")
            _, wrapped = services.content_key().new_data_key(asset_id)
            asset = await assets.create(db, ctx, data, wrapped, asset_id)
            return 201, await assets.read(db, asset, ctx.caller)

        return await idempotency.run(request, db, ctx.user.id, data, action)

    @get("/", summary="List assets (public ones, and the caller's own)")
    async def list_assets(
        self, services: Services, maybe_ctx: Ctx,
        status: AssetStatus | None = None, provider: str | None = None, grade: Grade | None = None,
        category: str | None = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    ) -> Response[Page[AssetRead]]:
        # Anonymous pages are the same for everyone: answered from memory until any
        # asset changes (market.core.memo says how every process hears of it at once).
        caller = maybe_ctx.caller
        provider = assets.provider_filter(provider, caller)  # before any memory: provider=me is 401 anonymously

        async def build() -> bytes:
            async with services.read_sessionmaker() as db:
                page = await assets.list_assets(db, caller, status=status, provider=provider, grade=grade,
                                                category=category, limit=limit, cursor=cursor)
            return Page[AssetRead](**page).model_dump_json().encode()

        if caller is not None:
            return json_body(await build())
        key = (status, provider, grade, category, limit, cursor)
        return json_body(await remembered(services.public_assets, key, build))

    @get("/{asset_id:str}", summary="One asset")
    async def get_asset(self, db: AsyncSession, maybe_ctx: Ctx, asset_id: str) -> AssetRead:
        return await assets.read(db, await access.load(db, asset_id, maybe_ctx.caller), maybe_ctx.caller)

    @patch("/{asset_id:str}", summary="Edit a draft (holder)")
    async def update(self, db: AsyncSession, ctx: Ctx, asset_id: str, data: AssetUpdate) -> AssetRead:
        asset = await assets.update_draft(db, ctx, asset_id, data)
        await db.commit()
        return await assets.read(db, asset, ctx.caller)

    @put("/{asset_id:str}/content", request_max_body_size=None, summary="Upload the content (raw body, streamed)")
    async def upload(self, request: Request, services: Services, db: AsyncSession, ctx: Ctx,
                     asset_id: str) -> ContentRead:
        rev = await content.upload(db, ctx, asset_id, request.stream(), request.headers.get("content-length"),
                                   services.blobs, services.content_key())
        return ContentRead(sha256=rev.sha256, size=rev.size, merkle_root=rev.merkle_root, chunk_size=rev.chunk_size,
                           revision=rev.revision)

    @get("/{asset_id:str}/claim", summary="The ownership claim to sign (holder)")
    async def claim(self, db: AsyncSession, ctx: Ctx, asset_id: str, rights: str | None = None) -> ClaimToSign:
        return ClaimToSign(**await claims.claim_to_sign(db, ctx, asset_id, claims.parse_rights(rights)))

    @post("/{asset_id:str}/claim", status_code=200, summary="Submit the signed claim (holder)")
    async def submit(self, db: AsyncSession, ctx: Ctx, asset_id: str, data: SignedSubmission) -> AssetRead:
        try:
            asset = await claims.submit_claim(db, ctx, asset_id, data.signing_bytes, data.key_id, data.signature)
        except Unprocessable as exc:
            if exc.kind == "core-data-refused":  # kept for the regulator, in a transaction of its own
                await claims.keep_core_data_refusal(db, ctx, asset_id, exc.detail)
            raise
        await db.commit()
        return await assets.read(db, asset, ctx.caller)

    @post("/{asset_id:str}/review", status_code=200, summary="Approve or reject (operator)")
    async def review(self, db: AsyncSession, ctx: Ctx, asset_id: str, data: ReviewDecision) -> AssetRead:
        asset = await review.review(db, ctx, asset_id, data.decision, data.reason, data.override_conflict)
        await db.commit()
        return await assets.read(db, asset, ctx.caller)

    @post("/{asset_id:str}/objections", status_code=201, summary="Object during public notice (verified account)")
    async def object(self, request: Request, db: AsyncSession, ctx: Ctx, asset_id: str,
                     data: ObjectionCreate) -> Response[ObjectionRead]:
        async def action() -> tuple[int, Any]:
            objection = await objections.file_objection(db, ctx, asset_id, data.reason, data.evidence)
            return 201, objections.objection_read(objection)

        return await idempotency.run(request, db, ctx.user.id, data, action)

    @get("/{asset_id:str}/objections", summary="Objections (holder and staff: all; others: their own)")
    async def objections(self, db: AsyncSession, ctx: Ctx, asset_id: str) -> Page[ObjectionRead]:
        return Page(items=await objections.list_objections(db, ctx, asset_id), next_cursor=None)

    @get("/{asset_id:str}/certificate", summary="Registration certificate bundle (docs/LEDGER.md §6)")
    async def certificate(self, services: Services, db: AsyncSession, maybe_ctx: Ctx, asset_id: str) -> dict[str, Any]:
        asset = await access.load(db, asset_id, maybe_ctx.caller)
        return await certificates.registration_certificate(db, services.ledger, asset)

    @get("/{asset_id:str}/history", summary="Every ledger entry about the asset, pending ones included (paged)")
    async def history(self, services: Services, db: AsyncSession, maybe_ctx: Ctx, asset_id: str,
                      limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> dict[str, Any]:
        await access.load(db, asset_id, maybe_ctx.caller)
        return await subject_page(db, services.ledger, f"asset:{asset_id}", limit, cursor)

    @post("/{asset_id:str}/cancellation", status_code=200, summary="Cancel a registration (holder)")
    async def cancel(self, db: AsyncSession, ctx: Ctx, asset_id: str, data: CancelRequest) -> AssetRead:
        asset = await review.cancel(db, ctx, asset_id, data.reason)
        await db.commit()
        return await assets.read(db, asset, ctx.caller)

    @get("/{asset_id:str}/transfer-document", summary="The holding-transfer document to sign (holder)")
    async def transfer_document(self, db: AsyncSession, ctx: Ctx, asset_id: str, to: str) -> TransferToSign:
        return TransferToSign(**await transfers.transfer_to_sign(db, ctx, asset_id, to))

    @post("/{asset_id:str}/transfers", status_code=201, summary="Propose a transfer of the holding right (holder)")
    async def propose_transfer(self, request: Request, db: AsyncSession, ctx: Ctx, asset_id: str,
                               data: SignedSubmission) -> Response[dict[str, Any]]:
        async def action() -> tuple[int, Any]:
            transfer = await transfers.propose_transfer(db, ctx, asset_id, data.signing_bytes, data.key_id,
                                                        data.signature)
            return 201, transfers.transfer_read(transfer)

        return await idempotency.run(request, db, ctx.user.id, data, action)


class ObjectionController(Controller):
    path = "/v1/objections"
    tags = ["registry"]

    @post("/{objection_id:str}/resolution", status_code=200, summary="Uphold or dismiss (operator)")
    async def resolve(self, db: AsyncSession, ctx: Ctx, objection_id: str,
                      data: ObjectionResolution) -> ObjectionRead:
        objection = await objections.resolve_objection(db, ctx, objection_id, data.decision, data.reason)
        await db.commit()
        return objections.objection_read(objection)


class TransferController(Controller):
    path = "/v1/transfers"
    tags = ["registry"]

    @get("/{transfer_id:str}", summary="One transfer (its parties, staff)")
    async def get_transfer(self, db: AsyncSession, ctx: Ctx, transfer_id: str) -> dict[str, Any]:
        return transfers.transfer_read(await access.load_transfer(db, transfer_id, ctx.user))

    @post("/{transfer_id:str}/acceptance", status_code=200, summary="Accept and countersign (receiving party)")
    async def accept(self, db: AsyncSession, ctx: Ctx, transfer_id: str, data: TransferAccept) -> dict[str, Any]:
        transfer = await transfers.accept_transfer(db, ctx, transfer_id, data.key_id, data.signature)
        await db.commit()
        return transfers.transfer_read(transfer)

    @delete("/{transfer_id:str}", status_code=204, summary="Withdraw a proposal (its proposer, while proposed)")
    async def withdraw(self, db: AsyncSession, ctx: Ctx, transfer_id: str) -> None:
        await transfers.withdraw(db, ctx, transfer_id)
        await db.commit()


# Reference data: the same for everyone and for a release, so clients may keep it an hour.
_REFERENCE_CACHE = CacheControlHeader(max_age=3600, public=True)


@get("/v1/categories", tags=["registry"], cache_control=_REFERENCE_CACHE,
     summary="The closed list of asset categories (ids and Chinese and English names)")
async def list_categories() -> CategoryList:
    return CategoryList(items=[CategoryRead(**item) for item in categories.listing()])


@get("/v1/regions/{code:str}", tags=["registry"], cache_control=_REFERENCE_CACHE,
     summary="A 行政区划 code (GB/T 2260): its name and its province and prefecture")
async def get_region(code: str) -> RegionRead:
    if not regions.is_code(code):
        raise Unprocessable(f"a 行政区划 code is six digits, got {code!r}", kind="bad-region-code",
                            extra={"errors": [{"field": "code", "message": "six digits (GB/T 2260)"}]})
    region = regions.lookup(code)
    if region is None:
        raise NotFound(f"no 行政区划 code {code} is known to the market")
    return RegionRead(code=region.code, name_zh=region.name_zh, province=region.province, city=region.city,
                      level=region.level, current=region.current)


REFERENCE_ROUTES = [list_categories, get_region]
