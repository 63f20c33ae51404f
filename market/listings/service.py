"""Publishing and changing listings (DESIGN §4.2, docs/API.md "Listings"); never commits.

Every publication and every move is on the ledger in the listing's transaction:
``listing.published`` and ``listing.terms_changed`` carry ``terms_version`` and
``terms_sha256`` (the hex SHA-256 of the RFC 8785 JSON of ``{"plans", "licence"}``);
free text is there only as ``text_sha256`` (docs/LEDGER.md §2). Each version of the terms is
kept in ``listing_terms``: an order names the version it accepted.
"""

import dataclasses
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core import audit, outbox
from market.core.context import Ctx
from market.core.errors import Conflict, Unprocessable
from market.core.ids import new_id
from market.listings import access, index
from market.listings.models import Listing, ListingTerms
from market.listings.schemas import ListingCreate, ListingUpdate, Plan, plan_dicts
from market.listings.states import LISTING, ListingStatus
from market.registry import access as registry_access
from market.registry import tables
from market.registry.assets import registered_rights
from market.registry.models import Asset
from market.registry.states import ASSET

TEXT_FIELDS = ("title", "summary", "description", "tags")


def terms_digest(plans: list[dict[str, Any]], licence: dict[str, Any]) -> str:
    return audit.document_digest({"plans": plans, "licence": licence})


def _text_digest(title: str, summary: str, description: str, tags: str) -> str:
    """The listing's free text as it goes on the ledger: its digest only (docs/LEDGER.md §2)."""
    return audit.document_digest({"title": title, "summary": summary, "description": description,
                                  "tags": json.loads(tags)})


async def _listable_asset(session: AsyncSession, ctx: Ctx, asset_id: str) -> Asset:
    """The caller's asset if a listing of it may be published now (docs/API.md "Listings")."""
    asset = await registry_access.load_for_holder(session, asset_id, ctx.user)
    if asset.frozen:
        raise Conflict(f"asset {asset.id} is frozen by a regulator; it cannot be listed", kind="not-listable")
    if not registry_access.holds_registration(asset):
        raise Conflict(f"asset {asset.id} is {asset.status}; only a registered asset can be listed",
                       kind="not-listable")
    if "operation" not in await registered_rights(session, asset):
        raise Unprocessable(f"the registration of asset {asset.id} does not include the operation right (经营权)",
                            kind="missing-operation-right")
    return asset


async def _check_buyers(session: AsyncSession, holder_id: str, plans: list[Plan]) -> None:
    named = {buyer for p in plans for buyer in p.private_to or []}
    if holder_id in named:
        raise Unprocessable("a private plan is for other accounts, not its holder", kind="bad-private-plan")
    if not named:
        return
    rows = (await session.execute(select(col(Account.id), col(Account.roles)).where(col(Account.id).in_(sorted(named))))).all()
    buyers = {r.id for r in rows if Role.buyer.value in r.roles.split(",")}
    missing = sorted(named - buyers)
    if missing:
        raise Unprocessable(f"private_to names accounts that are not buyers: {', '.join(missing)}",
                            kind="unknown-buyer")


def _with_ids(plans: list[Plan], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plans with ids: a given id must name a current plan (it keeps its id); others get new ones."""
    known = {p["id"] for p in current}
    out = []
    for plan in plan_dicts(plans):
        if "id" in plan and plan["id"] not in known:
            raise Unprocessable(f"plan {plan['id']} is not one of this listing's plans", kind="unknown-plan")
        out.append({"id": plan.get("id") or new_id("pln"), **{k: v for k, v in plan.items() if k != "id"}})
    return out


async def _check_delivery(session: AsyncSession, asset: Asset, plans: list[Plan]) -> None:
    """Sandbox and api plans need the asset's table description (and api plans a key column)."""
    wanted = {p.delivery for p in plans} & {"sandbox", "api"}
    if not wanted:
        return
    table = await tables.current(session, asset)
    if table is None:
        raise Unprocessable(f"sandbox and api plans need the table description of asset {asset.id}'s registered "
                            "content: PUT /v1/assets/{id}/table first", kind="table-required")
    if "api" in wanted and not any(c["role"] == "key" for c in json.loads(table.columns)):
        raise Unprocessable(f"an api plan looks records up by a key column; asset {asset.id}'s table has none",
                            kind="table-required")


async def publish(session: AsyncSession, ctx: Ctx, data: ListingCreate) -> Listing:
    caller = ctx.user
    caller.require(Role.provider)
    caller.require_verified()
    asset = await _listable_asset(session, ctx, data.asset_id)
    await _check_buyers(session, caller.id, data.plans)
    await _check_delivery(session, asset, data.plans)
    live = (await session.execute(select(col(Listing.id)).where(col(Listing.live_asset_id) == asset.id))).scalar()
    if live is not None:
        raise Conflict(f"asset {asset.id} is listed already as {live}; change that listing instead",
                       kind="already-listed")
    plans = _with_ids(data.plans, [])
    licence = data.licence.model_dump()
    digest = terms_digest(plans, licence)
    listing = Listing(
        id=new_id("lst"), status=LISTING.initial, asset_id=asset.id, provider_id=caller.id, live_asset_id=asset.id,
        title=data.title,
        summary=data.summary, description=data.description, tags=json.dumps(data.tags, ensure_ascii=False),
        approval_required=data.approval_required, terms_version=1, plans=json.dumps(plans, ensure_ascii=False),
        licence=json.dumps(licence), terms_sha256=digest, created_at=ctx.now, updated_at=ctx.now,
    )
    # The asset must not change (freeze, transfer, revocation) between the checks above
    # and this commit: claim its row, so whichever writer is second gets 409.
    await ASSET.guard(session, asset)
    try:
        await LISTING.create(session, listing, ctx, {
            "asset": asset.id, "provider": caller.id, "terms_version": 1, "terms_sha256": digest,
            "text_sha256": _text_digest(listing.title, listing.summary, listing.description, listing.tags)})
    except IntegrityError:
        raise Conflict(f"asset {asset.id} was listed meanwhile", kind="already-listed") from None
    session.add(ListingTerms(listing_id=listing.id, version=1, plans=listing.plans, licence=listing.licence,
                             terms_sha256=digest, created_at=ctx.now))
    await index.index_listing(session, listing, asset)
    return listing


async def update(session: AsyncSession, ctx: Ctx, listing_id: str, data: ListingUpdate) -> Listing:
    """Text, approval, terms, then status — each change its own move and entry."""
    listing = await access.load_for_holder(session, listing_id, ctx.user)
    given = data.model_fields_set - {"reason"}
    if data.status == ListingStatus.delisted and given != {"status"}:
        raise Unprocessable("delisting is final: send it alone, without other changes", kind="bad-update")
    edits = {name: getattr(data, name) for name in given & {*TEXT_FIELDS, "approval_required"}}
    if "tags" in edits:
        edits["tags"] = json.dumps(edits["tags"], ensure_ascii=False)
    edits = {k: v for k, v in edits.items() if getattr(listing, k) != v}
    if edits:
        text = {name: edits.get(name, getattr(listing, name)) for name in TEXT_FIELDS}
        await LISTING.move(session, listing, "edit", ctx,
                           {"fields": sorted(edits), "text_sha256": _text_digest(**text)},
                           **edits, updated_at=ctx.now)
    if data.plans is not None or data.licence is not None:
        await _change_terms(session, ctx, listing, data)
    if data.status is not None and data.status != listing.status:
        await _set_status(session, ctx, listing, ListingStatus(data.status), data.reason)
    return listing


async def _change_terms(session: AsyncSession, ctx: Ctx, listing: Listing, data: ListingUpdate) -> None:
    current = json.loads(listing.plans)
    plans = current if data.plans is None else _with_ids(data.plans, current)
    if data.plans is not None:
        await _check_buyers(session, listing.provider_id, data.plans)
        await _check_delivery(session, await session.get_one(Asset, listing.asset_id), data.plans)
    licence = json.loads(listing.licence) if data.licence is None else data.licence.model_dump()
    digest = terms_digest(plans, licence)
    if digest == listing.terms_sha256:
        return  # the same terms again: no new version
    version = listing.terms_version + 1
    plans_json = json.dumps(plans, ensure_ascii=False)
    licence_json = json.dumps(licence)
    await LISTING.move(session, listing, "change_terms", ctx, {"terms_version": version, "terms_sha256": digest},
                       terms_version=version, plans=plans_json, licence=licence_json, terms_sha256=digest,
                       updated_at=ctx.now)
    session.add(ListingTerms(listing_id=listing.id, version=version, plans=plans_json, licence=licence_json,
                             terms_sha256=digest, created_at=ctx.now))


async def _set_status(session: AsyncSession, ctx: Ctx, listing: Listing, target: ListingStatus,
                      reason: str | None) -> None:
    action = {ListingStatus.delisted: "delist", ListingStatus.paused: "pause"}.get(target, "resume")
    data = {"reason_salted_sha256": await audit.salted(session, LISTING.subject(listing), LISTING.entry_type(action),
                                                       {"reason": reason})} if reason else {}
    if target == ListingStatus.delisted:
        await LISTING.move(session, listing, "delist", ctx, data, live_asset_id=None, updated_at=ctx.now)
    elif target == ListingStatus.paused:
        await LISTING.move(session, listing, "pause", ctx, data, updated_at=ctx.now)
    else:
        LISTING.check(listing, "resume")
        asset = await _listable_asset(session, ctx, listing.asset_id)
        await ASSET.guard(session, asset)
        await LISTING.move(session, listing, "resume", ctx, data, updated_at=ctx.now)


async def set_frozen(session: AsyncSession, ctx: Ctx, listing_id: str, frozen: bool, reason: str) -> Listing:
    """A regulator freezes or unfreezes a listing (out of search, not orderable)."""
    ctx.user.require(Role.regulator)
    listing = await access.load(session, listing_id)
    if listing.frozen == frozen:
        raise Conflict(f"listing {listing_id} is already {'frozen' if frozen else 'unfrozen'}", kind="no-change")
    action = "freeze" if frozen else "unfreeze"
    salted = await audit.salted(session, LISTING.subject(listing), LISTING.entry_type(action), {"reason": reason})
    await LISTING.move(session, listing, action, ctx, {"reason_salted_sha256": salted}, frozen=frozen,
                       status_reason=reason, updated_at=ctx.now)
    if frozen:
        await outbox.to_account(session, ctx, "listing.frozen", listing.provider_id, listing.id, listing=listing.id,
                             asset=listing.asset_id, reason=reason)
    return listing


# Asset moves after which its live listing can never be ordered again: the market
# delists it (actor ``market``), so the offer ends and a new holder may list.
ENDS_LISTINGS = {"transfer": "asset_transferred", "cancel": "asset_cancelled", "revoke": "registration_revoked"}


async def delist_for_asset(session: AsyncSession, ctx: Ctx, asset: Asset, cause: str) -> None:
    rows = (await session.execute(select(Listing).where(col(Listing.live_asset_id) == asset.id))).scalars().all()
    market = dataclasses.replace(ctx, caller=None)
    for listing in rows:
        await LISTING.move(session, listing, "delist", market, {"cause": cause}, live_asset_id=None,
                           updated_at=ctx.now)
