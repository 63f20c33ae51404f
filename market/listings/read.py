"""Listings as callers see them: one listing, many, and search results (docs/API.md "Listings")."""

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.memo import Memo
from market.listings import access, search
from market.listings.models import Listing
from market.listings.schemas import Licence, ListingRead, PlanRead, SearchPage
from market.registry import freezes
from market.registry.models import Asset
from market.web.auth import Caller


async def read(session: AsyncSession, listing: Listing, caller: Caller | None) -> ListingRead:
    return (await read_many(session, [listing.id], caller))[0]


async def read_many(session: AsyncSession, ids: list[str], caller: Caller | None,
                    orderable: set[str] | None = None) -> list[ListingRead]:
    """The listings ``ids``, in that order, in one query (with their assets and holders'
    names). ``orderable``: the ids known to be orderable (search documents store it);
    otherwise ``access.orderable_clause`` is evaluated."""
    if not ids:
        return []
    query = (select(Listing, Asset, col(Account.name)).join(Asset, col(Asset.id) == col(Listing.asset_id))
             .join(Account, col(Account.id) == col(Listing.provider_id)).where(col(Listing.id).in_(ids))
             .execution_options(populate_existing=True))
    rows = {listing.id: (listing, asset, name) for listing, asset, name in (await session.execute(query)).all()}
    if orderable is None:
        orderable = set((await session.execute(
            select(col(Listing.id)).where(col(Listing.id).in_(ids), access.orderable_clause()))).scalars())
    found = await freezes.latest(session, [s for listing, asset, _ in rows.values() for s in _frozen(listing, asset)])
    return [_present(*rows[i], i in orderable, caller, [found[s] for s in _frozen(*rows[i][:2]) if s in found])
            for i in ids if i in rows]


def _frozen(listing: Listing, asset: Asset) -> list[str]:
    """What freezes the listing, its own freeze first: ``listing:<id>``, ``asset:<id>``."""
    return [subject for subject, frozen in ((f"listing:{listing.id}", listing.frozen), (f"asset:{asset.id}",
                                                                                        asset.frozen)) if frozen]


def _present(listing: Listing, asset: Asset, provider_name: str, orderable: bool, caller: Caller | None,
             found: list[freezes.Freeze]) -> ListingRead:
    """A listing frozen by itself or through its asset says so (``frozen``, ``frozen_by``,
    since when); the regulator's reason (the listing's own freeze first) only to the
    holder and staff."""
    first = found[0] if found else None
    return ListingRead(
        id=listing.id, asset_id=asset.id, provider=listing.provider_id, provider_name=provider_name,
        registration_number=asset.registration_number, title=listing.title, summary=listing.summary,
        description=listing.description, tags=json.loads(listing.tags), category=asset.category,
        grade=asset.grade, personal_info=asset.personal_info, export_allowed=asset.export_allowed,
        status=listing.status, frozen=listing.frozen or asset.frozen,
        frozen_by=[what for what, frozen in (("listing", listing.frozen), ("asset", asset.frozen)) if frozen],
        frozen_reason=first.reason if first and access.is_insider(listing, caller) else None,
        frozen_at=first.at if first else None, orderable=orderable,
        approval_required=listing.approval_required, terms_version=listing.terms_version,
        terms_sha256=listing.terms_sha256, plans=[PlanRead(**p) for p in access.visible_plans(listing, caller)],
        licence=Licence(**json.loads(listing.licence)), created_at=listing.created_at,
        updated_at=listing.updated_at,
    )


async def find(session: AsyncSession, caller: Caller | None, params: search.SearchParams) -> SearchPage:
    found = await search.search(session, caller, params)
    items = await read_many(session, found.listing_ids, caller, found.listed)
    return SearchPage(items=items, next_cursor=found.next_cursor, facets=found.facets, total=found.total)


async def find_json(session: AsyncSession, caller: Caller | None, params: search.SearchParams,
                    memo: Memo[Any] | None = None, items_memo: Memo[bytes] | None = None) -> bytes:
    """``find``'s page as JSON (``SearchPage``). With ``memo`` (the memory of public
    answers), the public part of the search is shared with every caller's (``search``);
    with ``items_memo``, so is the JSON of each listing the caller sees as an anonymous
    caller does: only the listings it sees more of are read and presented for it."""
    found = await search.search(session, caller, params, memo)
    items = await _items_json(session, found, caller, items_memo)
    rest = SearchPage(items=[], next_cursor=found.next_cursor, facets=found.facets,
                      total=found.total).model_dump_json().encode()
    assert rest.startswith(_NO_ITEMS)
    return b'{"items":[' + b",".join(items) + b"]" + rest[len(_NO_ITEMS):]


_NO_ITEMS = b'{"items":[]'


async def _items_json(session: AsyncSession, found: search.SearchResult, caller: Caller | None,
                      memo: Memo[bytes] | None) -> list[bytes]:
    """The JSON of the page's listings, in order: those the caller sees as anyone does
    from ``memo`` (or read once as anonymous and kept), the others read for it."""
    ids = found.listing_ids
    kept: dict[str, bytes] = {}
    if memo is not None:
        for i in found.common:
            value = memo.get(("listing-json", i, i in found.listed))
            if value is not None:
                kept[i] = value
    ticket = memo.ticket() if memo is not None else 0
    common = [i for i in ids if i in found.common and i not in kept]
    for item in await read_many(session, common, None, found.listed):
        kept[item.id] = item.model_dump_json().encode()
        if memo is not None:
            memo.put(("listing-json", item.id, item.id in found.listed), kept[item.id], ticket)
    # The listings the caller sees more of, as it sees them: kept for it alone (its id and
    # whether it is staff in the key; a change to its account empties the memory too).
    def mine(i: str) -> tuple[Any, ...]:
        return "listing-json-for", caller.id if caller else None, caller is not None and caller.is_staff, i, i in found.listed

    personal = [i for i in ids if i not in found.common]
    if memo is not None:
        for i in personal:
            value = memo.get(mine(i))
            if value is not None:
                kept[i] = value
    for item in await read_many(session, [i for i in personal if i not in kept], caller, found.listed):
        kept[item.id] = item.model_dump_json().encode()
        if memo is not None:
            memo.put(mine(item.id), kept[item.id], ticket)
    return [kept[i] for i in ids if i in kept]


__all__: list[Any] = ["find", "find_json", "read", "read_many"]
