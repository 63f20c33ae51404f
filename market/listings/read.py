"""Listings as callers see them: one listing, many, and search results (API.md "Listings")."""

import json

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.auth import Caller
from market.listings import access, search
from market.listings.models import Listing
from market.listings.schemas import Licence, ListingRead, PlanRead, SearchPage
from market.registry.models import Asset


async def read(session: AsyncSession, listing: Listing, caller: Caller | None) -> ListingRead:
    return (await read_many(session, [listing], caller))[0]


async def read_many(session: AsyncSession, listings: list[Listing], caller: Caller | None) -> list[ListingRead]:
    """Response shapes in three queries: assets, holders' names, and which are orderable."""
    if not listings:
        return []
    ids = [listing.id for listing in listings]
    assets = {a.id: a for a in (await session.execute(
        select(Asset).where(Asset.id.in_({x.asset_id for x in listings})))).scalars()}  # type: ignore[attr-defined]
    names = dict((await session.execute(
        select(Account.id, Account.name).where(Account.id.in_({x.provider_id for x in listings})))).all())  # type: ignore[attr-defined]
    orderable = set((await session.execute(
        select(Listing.id).where(Listing.id.in_(ids), access.orderable_clause()))).scalars())  # type: ignore[attr-defined]
    out = []
    for listing in listings:
        asset = assets[listing.asset_id]
        out.append(ListingRead(
            id=listing.id, asset_id=asset.id, provider=listing.provider_id, provider_name=names[listing.provider_id],
            registration_number=asset.registration_number, title=listing.title, summary=listing.summary,
            description=listing.description, tags=json.loads(listing.tags), category=asset.category,
            grade=asset.grade, personal_info=asset.personal_info, export_allowed=asset.export_allowed,
            status=listing.status, frozen=listing.frozen, orderable=listing.id in orderable,  # type: ignore[arg-type]
            approval_required=listing.approval_required, terms_version=listing.terms_version,
            terms_sha256=listing.terms_sha256,
            plans=[PlanRead(**p) for p in access.visible_plans(listing, caller)],
            licence=Licence(**json.loads(listing.licence)), created_at=listing.created_at,
            updated_at=listing.updated_at,
        ))
    return out


async def find(session: AsyncSession, caller: Caller | None, params: search.SearchParams) -> SearchPage:
    found = await search.search(session, caller, params)
    rows = {x.id: x for x in (await session.execute(
        select(Listing).where(Listing.id.in_(found.listing_ids)))).scalars()}  # type: ignore[attr-defined]
    items = await read_many(session, [rows[i] for i in found.listing_ids if i in rows], caller)
    return SearchPage(items=items, next_cursor=found.next_cursor, facets=found.facets, total=found.total)
