"""Who may see what in the registry: one SQL clause per object kind, used by single
reads and lists alike (docs/API.md "Registry").

- An asset is public once in notice, registered, or registered before (revoked and
  cancelled ones stay readable for the record); drafts, submissions and rejected
  assets are seen by their holder and staff only. Anyone else gets 404.
- A transfer is seen by its two parties and staff.
- An objection is seen by its objector, the asset's holder and staff (the list of an
  asset's objections applies the same clause).
"""

from typing import Any

from sqlalchemy import or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.errors import Forbidden
from market.core.visibility import load_visible
from market.registry.models import Asset, Objection, Transfer
from market.registry.states import PUBLIC_STATUSES, S
from market.web.auth import Caller


def is_public(asset: Asset) -> bool:
    return asset.status in PUBLIC_STATUSES or asset.registered_revision > 0


def is_change(asset: Asset) -> bool:
    """A submission under review is a change (变更) when a registration stands already."""
    return asset.registered_revision > 0


def holds_registration(asset: Asset) -> bool:
    """Registered, or registered with a change under review: the registration (its
    number, certificate and registered content) stands until a change replaces it."""
    return asset.status == S.registered or (asset.registered_revision > 0 and asset.status in (S.submitted,
                                                                                                S.public_notice))


def is_insider(asset: Asset, caller: Caller | None) -> bool:
    """The holder and staff: who may see reviewers' words, pending uploads and conflicts."""
    return caller is not None and (caller.is_staff or caller.id == asset.provider_id)


def public_assets() -> Any:
    """SQL for ``is_public``."""
    return or_(col(Asset.status).in_([s.value for s in PUBLIC_STATUSES]),
               col(Asset.registered_revision) > 0)


def visible_assets(caller: Caller | None) -> Any:
    if caller is None:
        return public_assets()
    if caller.is_staff:
        return true()
    return or_(public_assets(), col(Asset.provider_id) == caller.id)


def visible_transfers(caller: Caller) -> Any:
    if caller.is_staff:
        return true()
    return or_(col(Transfer.from_id) == caller.id, col(Transfer.to_id) == caller.id)


async def load(session: AsyncSession, asset_id: str, caller: Caller | None) -> Asset:
    """The asset if the caller may see it; 404 otherwise (never another party's draft)."""
    return await load_visible(session, Asset, asset_id, visible_assets(caller), "asset")


async def load_for_holder(session: AsyncSession, asset_id: str, caller: Caller) -> Asset:
    """The asset if the caller holds it: 403 for those who may see it, else 404."""
    asset = await load(session, asset_id, caller)
    if asset.provider_id != caller.id:
        raise Forbidden("only the asset's holder may do this", kind="not-owner")
    return asset


async def load_transfer(session: AsyncSession, transfer_id: str, caller: Caller) -> Transfer:
    return await load_visible(session, Transfer, transfer_id, visible_transfers(caller), "transfer")


def visible_objections(caller: Caller) -> Any:
    if caller.is_staff:
        return true()
    holder = select(Asset.id).where(Asset.id == Objection.asset_id, Asset.provider_id == caller.id).exists()
    return or_(col(Objection.objector_id) == caller.id, holder)


async def load_objection(session: AsyncSession, objection_id: str, caller: Caller) -> Objection:
    return await load_visible(session, Objection, objection_id, visible_objections(caller), "objection")
