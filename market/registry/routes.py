"""Registry (API.md "Registry"): thin controllers over ``registry.service``."""

import secrets
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market import idempotency
from market.auth import Caller, provide_optional_caller
from market.config import Settings
from market.errors import DomainError
from market.ids import new_id
from market.ledger_routes import entry_json
from market.memo import remembered
from market.pagination import DEFAULT_LIMIT, Page
from market.registry import certificates, service, transfers
from market.registry.schemas import (
    AssetCreate,
    AssetRead,
    AssetStatus,
    AssetUpdate,
    CancelRequest,
    ClaimToSign,
    ContentRead,
    Grade,
    ObjectionCreate,
    ObjectionRead,
    ObjectionResolution,
    ReviewDecision,
    SignedSubmission,
    TransferAccept,
    TransferToSign,
)
from market.storage import ContentTooLarge


class TooLarge(DomainError):
    status, kind, title = 413, "too-large", "Content too large"


def ctx_of(state: State, caller: Caller) -> service.Ctx:
    settings: Settings = state.settings
    return service.Ctx(caller=caller, now=state.clock.now(), market=settings.ledger_origin,
                       notice=settings.notice_delta)


class AssetController(Controller):
    path = "/v1/assets"
    tags = ["registry"]

    @post("/", status_code=201, summary="Create a draft asset (verified provider)")
    async def create(self, request: Request, state: State, db: AsyncSession, caller: Caller,
                     data: AssetCreate) -> Response[AssetRead]:
        async def action() -> tuple[int, Any]:
            asset_id = new_id("ast")
            _, wrapped = state.master_key.new_data_key(asset_id)
            asset = await service.create(db, ctx_of(state, caller), data, wrapped, asset_id)
            return 201, await service.read(db, asset)

        return await idempotency.run(request, db, caller.id, data, action)

    @get("/", summary="List assets (public ones, and the caller's own)",
         dependencies={"maybe_caller": Provide(provide_optional_caller)})
    async def list_assets(
        self, state: State, maybe_caller: Caller | None,
        status: AssetStatus | None = None, provider: str | None = None, grade: Grade | None = None,
        category: str | None = None, limit: Annotated[int, Parameter(ge=1, le=500)] = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Response[Page[AssetRead]]:
        # Anonymous pages are the same for everyone: answered from memory until any
        # asset changes (market.memo says how every process hears of it at once).
        async def build() -> bytes:
            async with state.read_sessionmaker() as db:
                page = await service.list_assets(db, maybe_caller, status=status, provider=provider, grade=grade,
                                                 category=category, limit=limit, cursor=cursor)
            return Page[AssetRead](**page).model_dump_json().encode()

        if maybe_caller is not None:
            return Response(await build(), media_type=MediaType.JSON)
        key = (status, provider, grade, category, limit, cursor)
        return Response(await remembered(state.public_assets, key, build), media_type=MediaType.JSON)

    @get("/{asset_id:str}", summary="One asset", dependencies={"maybe_caller": Provide(provide_optional_caller)})
    async def get_asset(self, db: AsyncSession, maybe_caller: Caller | None, asset_id: str) -> AssetRead:
        return await service.read(db, await service.load(db, asset_id, maybe_caller))

    @patch("/{asset_id:str}", summary="Edit a draft (holder)")
    async def update(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                     data: AssetUpdate) -> AssetRead:
        asset = await service.update_draft(db, ctx_of(state, caller), asset_id, data)
        await db.commit()
        return await service.read(db, asset)

    @put("/{asset_id:str}/content", request_max_body_size=None, summary="Upload the content (raw body, streamed)")
    async def upload(self, request: Request, state: State, db: AsyncSession, caller: Caller,
                     settings: Settings, asset_id: str) -> ContentRead:
        asset = await service.check_upload(db, caller, asset_id)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
            raise TooLarge(f"content is {declared} bytes, the limit is {settings.max_upload_bytes}")
        expected = asset.content_revision
        data_key = state.master_key.unwrap(asset.id, asset.wrapped_key)
        await db.commit()  # hold no transaction, and so no lock, while the body streams in
        blob_id = f"{asset.id}.{secrets.token_hex(8)}"
        try:
            stored = await state.blobs.write(blob_id, data_key, request.stream(), settings.max_upload_bytes)
        except ContentTooLarge:
            raise TooLarge(f"content exceeds the limit of {settings.max_upload_bytes} bytes") from None
        try:
            _, rev, replaced = await service.record_upload(db, ctx_of(state, caller), asset_id, expected, blob_id,
                                                           stored)
            await db.commit()
        except BaseException:
            await state.blobs.delete(blob_id)
            raise
        if replaced:
            await state.blobs.delete(replaced)
        return ContentRead(sha256=rev.sha256, size=rev.size, merkle_root=rev.merkle_root, chunk_size=rev.chunk_size,
                           revision=rev.revision)

    @get("/{asset_id:str}/claim", summary="The ownership claim to sign (holder)")
    async def claim(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                    rights: str | None = None) -> ClaimToSign:
        result = await service.claim_to_sign(db, ctx_of(state, caller), asset_id, service.parse_rights(rights))
        return ClaimToSign(**result)

    @post("/{asset_id:str}/claim", status_code=200, summary="Submit the signed claim (holder)")
    async def submit(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                     data: SignedSubmission) -> AssetRead:
        asset = await service.submit_claim(db, ctx_of(state, caller), asset_id, data.signing_bytes, data.key_id,
                                           data.signature)
        await db.commit()
        return await service.read(db, asset)

    @post("/{asset_id:str}/review", status_code=200, summary="Approve or reject (operator)")
    async def review(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                     data: ReviewDecision) -> AssetRead:
        asset = await service.review(db, ctx_of(state, caller), asset_id, data.decision, data.reason,
                                     data.override_conflict)
        await db.commit()
        return await service.read(db, asset)

    @post("/{asset_id:str}/objections", status_code=201, summary="Object during public notice (verified account)")
    async def object(self, request: Request, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                     data: ObjectionCreate) -> Response[ObjectionRead]:
        async def action() -> tuple[int, Any]:
            objection = await service.file_objection(db, ctx_of(state, caller), asset_id, data.reason, data.evidence)
            return 201, service.objection_read(objection)

        return await idempotency.run(request, db, caller.id, data, action)

    @get("/{asset_id:str}/objections", summary="Objections (holder and staff: all; others: their own)")
    async def objections(self, db: AsyncSession, caller: Caller, asset_id: str) -> Page[ObjectionRead]:
        return Page(items=await service.list_objections(db, caller, asset_id), next_cursor=None)

    @get("/{asset_id:str}/certificate", summary="Registration certificate bundle (LEDGER.md §6)",
         dependencies={"maybe_caller": Provide(provide_optional_caller)})
    async def certificate(self, state: State, db: AsyncSession, maybe_caller: Caller | None,
                          asset_id: str) -> dict[str, Any]:
        asset = await service.load(db, asset_id, maybe_caller)
        return await certificates.registration_certificate(db, state.ledger, asset)

    @get("/{asset_id:str}/history", summary="Every ledger entry about the asset, pending ones included",
         dependencies={"maybe_caller": Provide(provide_optional_caller)})
    async def history(self, state: State, db: AsyncSession, maybe_caller: Caller | None,
                      asset_id: str) -> dict[str, Any]:
        await service.load(db, asset_id, maybe_caller)
        rows = await state.ledger.by_subject(db, f"asset:{asset_id}")
        return {"items": [entry_json(i, leaf) for i, leaf in rows], "next_cursor": None}

    @post("/{asset_id:str}/cancellation", status_code=200, summary="Cancel a registration (holder)")
    async def cancel(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                     data: CancelRequest) -> AssetRead:
        asset = await service.cancel(db, ctx_of(state, caller), asset_id, data.reason)
        await db.commit()
        return await service.read(db, asset)

    @get("/{asset_id:str}/transfer-document", summary="The holding-transfer document to sign (holder)")
    async def transfer_document(self, state: State, db: AsyncSession, caller: Caller, asset_id: str,
                                to: str) -> TransferToSign:
        return TransferToSign(**await transfers.transfer_to_sign(db, ctx_of(state, caller), asset_id, to))

    @post("/{asset_id:str}/transfers", status_code=201, summary="Propose a transfer of the holding right (holder)")
    async def propose_transfer(self, request: Request, state: State, db: AsyncSession, caller: Caller,
                               asset_id: str, data: SignedSubmission) -> Response[dict[str, Any]]:
        async def action() -> tuple[int, Any]:
            transfer = await transfers.propose_transfer(db, ctx_of(state, caller), asset_id, data.signing_bytes,
                                                      data.key_id, data.signature)
            return 201, transfers.transfer_read(transfer)

        return await idempotency.run(request, db, caller.id, data, action)


class ObjectionController(Controller):
    path = "/v1/objections"
    tags = ["registry"]

    @post("/{objection_id:str}/resolution", status_code=200, summary="Uphold or dismiss (operator)")
    async def resolve(self, state: State, db: AsyncSession, caller: Caller, objection_id: str,
                      data: ObjectionResolution) -> ObjectionRead:
        objection = await service.resolve_objection(db, ctx_of(state, caller), objection_id, data.decision,
                                                    data.reason)
        await db.commit()
        return service.objection_read(objection)


class TransferController(Controller):
    path = "/v1/transfers"
    tags = ["registry"]

    @post("/{transfer_id:str}/acceptance", status_code=200, summary="Accept and countersign (receiving party)")
    async def accept(self, state: State, db: AsyncSession, caller: Caller, transfer_id: str,
                     data: TransferAccept) -> dict[str, Any]:
        transfer = await transfers.accept_transfer(db, ctx_of(state, caller), transfer_id, data.key_id, data.signature)
        await db.commit()
        return transfers.transfer_read(transfer)
