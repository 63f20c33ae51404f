"""Assets (DESIGN §4.1): drafts, their metadata, content revisions, conflicts, and how
an asset is shown to each reader."""

import json
from typing import Any, Protocol

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.errors import NotAuthenticated
from market.core.pagination import page_of, paginate
from market.registry import access, categories, freezes
from market.registry.models import Asset, AssetRevision
from market.registry.schemas import AssetCreate, AssetRead, AssetUpdate, Commitment
from market.registry.states import ASSET, PENDING_OR_REGISTERED, UNDER_REVIEW
from market.web.auth import Caller


class Committed(Protocol):
    """What ``commitment_of`` reads of a revision (a row of its columns will do)."""

    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def merkle_root(self) -> str: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def revision(self) -> int: ...


def commitment_of(rev: Committed) -> dict[str, Any]:
    return {"sha256": rev.sha256, "size": rev.size, "merkle_root": rev.merkle_root, "chunk_size": rev.chunk_size,
            "revision": rev.revision}


async def revision(session: AsyncSession, asset: Asset, number: int | None = None) -> AssetRevision | None:
    """Revision ``number`` (default: the newest upload); None for revision 0 (no content)."""
    number = asset.content_revision if number is None else number
    if number == 0:
        return None
    return await session.get(AssetRevision, (asset.id, number))


async def registered_rights(session: AsyncSession, asset: Asset) -> list[str]:
    """The rights of the registration that stands (empty when none does)."""
    rev = await revision(session, asset, asset.registered_revision) if access.holds_registration(asset) else None
    return json.loads(rev.rights) if rev is not None and rev.rights else []


# -- drafts -------------------------------------------------------------------------------


async def create(session: AsyncSession, ctx: Ctx, data: AssetCreate, wrapped_key: bytes, asset_id: str) -> Asset:
    caller = ctx.user
    caller.require(Role.provider)
    caller.require_verified()
    asset = Asset(
        id=asset_id, status=ASSET.initial, provider_id=caller.id, title=data.title, description=data.description,
        category=data.category, tags=json.dumps(data.tags, ensure_ascii=False), grade=data.grade,
        personal_info=data.personal_info, legal_basis=data.legal_basis, export_allowed=data.export_allowed,
        source=data.source, format=data.format, wrapped_key=wrapped_key, created_at=ctx.now, updated_at=ctx.now,
    )
    # A draft is not public: its entry carries ids only (docs/LEDGER.md §2).
    await ASSET.create(session, asset, ctx, {"provider": caller.id})
    return asset


async def update_draft(session: AsyncSession, ctx: Ctx, asset_id: str, data: AssetUpdate) -> Asset:
    asset = await access.load_for_holder(session, asset_id, ctx.user)
    changes = data.model_dump(exclude_unset=True)
    if "tags" in changes:
        changes["tags"] = json.dumps(changes["tags"], ensure_ascii=False)
    await ASSET.move(session, asset, "edit", ctx, {"fields": sorted(changes)}, **changes, updated_at=ctx.now)
    return asset


# -- conflicts --------------------------------------------------------------------------------


def _claimed_hashes(asset: Asset) -> set[str]:
    """The content an asset claims: its registered revision, and while it is submitted
    or in notice, the revision under review."""
    hashes = {asset.registered_sha256} if asset.registered_sha256 and asset.status in PENDING_OR_REGISTERED else set()
    if asset.content_sha256 and asset.status in UNDER_REVIEW:
        hashes.add(asset.content_sha256)
    return hashes


async def conflicts_of(session: AsyncSession, assets: list[Asset]) -> dict[str, list[str]]:
    """For each asset, other parties' assets that claim the same content (one query).

    An asset is compared by both its newest upload and its registered revision.
    """
    mine = {a.id: {h for h in (a.content_sha256, a.registered_sha256) if h} for a in assets}
    hashes = sorted(set().union(*mine.values())) if mine else []
    out: dict[str, list[str]] = {a.id: [] for a in assets}
    if not hashes:
        return out
    candidates = (await session.exec(
        select(Asset).where(or_(col(Asset.content_sha256).in_(hashes),
                                col(Asset.registered_sha256).in_(hashes)))
        .order_by(col(Asset.id))
    )).all()
    # Index the candidates by the hashes they claim: one pass, not assets x candidates.
    claiming: dict[str, list[Asset]] = {}
    for other in candidates:
        for h in _claimed_hashes(other):
            claiming.setdefault(h, []).append(other)
    for asset in assets:
        found = {other.id for h in mine[asset.id] for other in claiming.get(h, ())
                 if other.provider_id != asset.provider_id and other.id != asset.id}
        out[asset.id] = sorted(found)
    return out


async def conflicts(session: AsyncSession, asset: Asset) -> list[str]:
    """Other parties' assets, pending or registered, claiming the same content."""
    return (await conflicts_of(session, [asset]))[asset.id]


# -- reading -----------------------------------------------------------------------------------


async def read(session: AsyncSession, asset: Asset, viewer: Caller | None) -> AssetRead:
    return (await read_many(session, [asset], viewer))[0]


async def read_many(session: AsyncSession, assets: list[Asset], viewer: Caller | None) -> list[AssetRead]:
    """Response shapes for several assets in two queries (revisions, conflicts), three
    when some are frozen.

    ``commitment`` and ``rights`` are the registration's once there is one (what buyers
    receive), else the newest upload and its claim. What a reviewer wrote
    (``status_reason``), the newest upload when it is not the registered one
    (``uploaded_commitment``) and ``conflicts_with`` are shown to the holder and staff
    only; to others they are null. So is a regulator's reason for a freeze
    (``frozen_reason``; a third query, only when some asset is frozen); that it is
    frozen and since when (``frozen_at``) everyone who sees the asset sees.
    """
    keys = {(a.id, n) for a in assets for n in (a.content_revision, a.registered_revision) if n}
    revisions: dict[tuple[str, int], AssetRevision] = {}
    if keys:
        # By asset id (the primary key's prefix), the wanted revisions picked here: an
        # OR of (id, revision) pairs costs more to build than the few extra rows.
        rows = (await session.exec(select(AssetRevision).where(
            col(AssetRevision.asset_id).in_(sorted({asset_id for asset_id, _ in keys})))
            .execution_options(populate_existing=True))).all()
        revisions = {(r.asset_id, r.revision): r for r in rows if (r.asset_id, r.revision) in keys}
    insiders = [a for a in assets if access.is_insider(a, viewer)]
    clashes = await conflicts_of(session, insiders)
    frozen = await freezes.latest(session, [f"asset:{a.id}" for a in assets if a.frozen])
    out = []
    for asset in assets:
        insider = asset.id in clashes
        shown = asset.registered_revision or asset.content_revision
        rev = revisions.get((asset.id, shown))
        newest = revisions.get((asset.id, asset.content_revision)) if asset.content_revision != shown else None
        freeze = frozen.get(f"asset:{asset.id}")
        out.append(AssetRead(
            id=asset.id, provider_id=asset.provider_id, title=asset.title, description=asset.description,
            category=asset.category, tags=json.loads(asset.tags), grade=asset.grade,
            personal_info=asset.personal_info, legal_basis=asset.legal_basis, export_allowed=asset.export_allowed,
            source=asset.source, format=asset.format, status=asset.status,
            status_reason=asset.status_reason if insider else None, frozen=asset.frozen,
            frozen_reason=freeze.reason if freeze and insider else None, frozen_at=freeze.at if freeze else None,
            registration_number=asset.registration_number,
            commitment=Commitment(**commitment_of(rev)) if rev else None,
            uploaded_commitment=Commitment(**commitment_of(newest)) if newest and insider else None,
            registered_revision=asset.registered_revision,
            rights=json.loads(rev.rights) if rev is not None and rev.rights else [],
            conflicts_with=clashes[asset.id] if insider else None, submitted_at=asset.submitted_at,
            notice_ends_at=asset.notice_ends_at, registered_at=asset.registered_at, created_at=asset.created_at,
            updated_at=asset.updated_at,
        ))
    return out


def provider_filter(provider: str | None, caller: Caller | None) -> str | None:
    """The ``provider`` filter as an account id: ``me`` is the caller (401 without one).
    Another party's id needs nothing more: the list shows only what the caller may see
    (that party's public assets; its drafts to staff alone)."""
    if provider != "me":
        return provider
    if caller is None:
        raise NotAuthenticated("provider=me needs 'Authorization: Bearer <token>'", kind="missing-token")
    return caller.id


async def list_assets(
    session: AsyncSession, caller: Caller | None, *, status: str | None, provider: str | None, grade: str | None,
    category: str | None, limit: int, cursor: str | None,
) -> dict[str, Any]:
    """A page of the assets ``caller`` may see; ``provider`` an account id or ``me``
    (``provider_filter``), ``category`` an id of the list (else 422)."""
    provider = provider_filter(provider, caller)
    categories.check(category)
    query = select(Asset).where(access.visible_assets(caller))
    for column, value in ((Asset.status, status), (Asset.provider_id, provider), (Asset.grade, grade),
                          (Asset.category, category)):
        if value is not None:
            query = query.where(column == value)
    rows = list((await session.exec(paginate(query, col(Asset.id), limit, cursor))).all())
    page = page_of(rows, limit, lambda a: a)
    page["items"] = await read_many(session, page["items"], caller)
    return page
