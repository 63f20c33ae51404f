"""Listings and discovery (挂牌, DESIGN §4.2): listings of registered assets, plans and
licence terms as data, private plans, full-text search in Chinese and English, and the
DCAT catalog.

Modules: ``states``, ``access`` (who sees and orders what), ``service`` (publish,
update, freeze), ``read`` (presenters, search results), ``text`` (segmentation),
``search`` (the query, on SQLite FTS5 or PostgreSQL ``tsvector``), ``index`` (keeping
search documents true), ``catalog`` (DCAT-AP), ``routes``.

A listing's place in search follows its asset and its holder: the observers below
re-evaluate it in the transaction of every asset or account move.
"""

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.states import ACCOUNT
from market.core.context import Ctx
from market.listings import index, service
from market.listings.models import Listing
from market.listings.states import LISTING
from market.registry.states import ASSET


async def _asset_moved(session: AsyncSession, asset: Any, action: str, ctx: Ctx) -> None:
    if action in service.ENDS_LISTINGS:
        await service.delist_for_asset(session, ctx, asset, service.ENDS_LISTINGS[action])
    await index.refresh_listed(session, Listing.asset_id == asset.id)


async def _holder_moved(session: AsyncSession, account: Any, action: str, ctx: Ctx) -> None:
    await index.refresh_listed(session, Listing.provider_id == account.id)


async def _listing_moved(session: AsyncSession, listing: Any, action: str, ctx: Ctx) -> None:
    await index.index_listing(session, listing)


ASSET.observers.append(_asset_moved)
ACCOUNT.observers.append(_holder_moved)
LISTING.observers.append(_listing_moved)
