"""Content uploads (DESIGN §4.1): the saga that streams a body into the encrypted blob
store with no transaction open, then records it as the asset's newest revision.

A failed or raced upload leaves the previous content as it was and deletes its own
blob; a replaced, never-registered revision's blob is deleted once the new one is
recorded (registered revisions are kept).
"""

import secrets
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import audit
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, Unprocessable
from market.registry import access
from market.registry.assets import commitment_of, revision
from market.registry.models import Asset, AssetRevision
from market.registry.states import ASSET
from market.storage import BlobStore, ContentTooLarge, MasterKey


class TooLarge(DomainError):
    status, kind, title = 413, "too-large", "Content too large"


async def check_upload(session: AsyncSession, ctx: Ctx, asset_id: str) -> Asset:
    """May the caller upload content now? (Checked before the body is read.)"""
    asset = await access.load_for_holder(session, asset_id, ctx.user)
    ASSET.check(asset, "upload")
    return asset


async def upload(session: AsyncSession, ctx: Ctx, asset_id: str, body: AsyncIterator[bytes],
                 declared_length: str | None, blobs: BlobStore, master_key: MasterKey) -> AssetRevision:
    """Store ``body`` as the asset's newest content and commit. The session's
    transaction is closed while the body streams (no lock is held meanwhile)."""
    limit = ctx.settings.max_upload_bytes
    asset = await check_upload(session, ctx, asset_id)
    if declared_length and declared_length.isdigit() and int(declared_length) > limit:
        raise TooLarge(f"content is {declared_length} bytes, the limit is {limit}")
    seen = asset.version
    data_key = master_key.unwrap(asset.id, asset.wrapped_key)
    await session.commit()  # hold no transaction, and so no lock, while the body streams in
    blob_id = f"{asset.id}.{secrets.token_hex(8)}"
    try:
        stored = await blobs.write(blob_id, data_key, body, limit)
    except ContentTooLarge:
        raise TooLarge(f"content exceeds the limit of {limit} bytes") from None
    try:
        rev, replaced = await record_upload(session, ctx, asset_id, seen, blob_id, stored)
        await session.commit()
    except BaseException:
        await blobs.delete(blob_id)
        raise
    if replaced:
        await blobs.delete(replaced)
    return rev


async def record_upload(
    session: AsyncSession, ctx: Ctx, asset_id: str, seen_version: int, blob_id: str, stored: Any
) -> tuple[AssetRevision, str | None]:
    """After the blob is safely stored: make it the asset's newest revision, provided
    the asset has not changed since the upload began (else 409, upload again).

    Returns the revision, and the blob id of a replaced, never-registered revision
    that the caller may now delete.
    """
    if stored.size == 0:  # every empty asset would claim the same content
        raise Unprocessable("the content is empty; a data asset holds at least one byte", kind="empty-content")
    asset = await check_upload(session, ctx, asset_id)
    if asset.version != seen_version:
        raise Conflict("the asset changed while the content was uploading; upload again", kind="concurrent-update")
    old = await revision(session, asset)
    # Revision numbers never repeat: a rejected change leaves its revision on record.
    latest = (await session.exec(select(func.max(AssetRevision.revision))
                                 .where(AssetRevision.asset_id == asset_id))).one()
    number = (latest or 0) + 1
    rev = AssetRevision(asset_id=asset_id, revision=number, blob_id=blob_id, sha256=stored.sha256, size=stored.size,
                        merkle_root=stored.merkle_root, chunk_size=stored.chunk_size, created_at=ctx.now)
    session.add(rev)
    # The commitment is public only once the revision is under notice; until then the
    # ledger holds its digest (docs/LEDGER.md §2: ids and hashes only).
    salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type("upload"),
                                {"revision": number, "commitment": commitment_of(rev)})
    await ASSET.move(session, asset, "upload", ctx, {"revision": number, "commitment_salted_sha256": salted},
                     content_revision=number, content_sha256=stored.sha256, updated_at=ctx.now)
    replaced = old.blob_id if old is not None and old.revision > asset.registered_revision else None
    return rev, replaced
