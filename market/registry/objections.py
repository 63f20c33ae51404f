"""Objections (异议) during public notice (DESIGN §4.1).

Verified accounts that are neither the holder nor staff object while the notice period
runs, one open objection per account and asset. Filing claims the asset's row
(``ASSET.guard``), so an objection and the registration that the notice's end would
bring cannot both win: whichever commits second gets 409 or waits a round.
"""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core import audit, outbox
from market.core.context import Ctx
from market.core.errors import Conflict, Forbidden, InvalidTransition
from market.core.ids import new_id
from market.registry import access
from market.registry.models import Objection
from market.registry.review import rejection_values
from market.registry.schemas import ObjectionRead
from market.registry.states import ASSET, OBJECTION, ObjectionStatus, S


async def file_objection(session: AsyncSession, ctx: Ctx, asset_id: str, reason: str, evidence: str) -> Objection:
    caller = ctx.user
    asset = await access.load(session, asset_id, caller)
    if caller.is_staff:
        raise Forbidden("regulators and operators act on registrations through their own acts, not objections",
                        kind="staff-cannot-object")
    caller.require_verified()
    if asset.provider_id == caller.id:
        raise Forbidden("a holder cannot object to its own registration", kind="own-asset")
    if asset.status != S.public_notice:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "objecting")
    if asset.notice_ends_at is not None and ctx.now >= asset.notice_ends_at:
        raise Conflict(f"the notice period of asset {asset_id} ended at {asset.notice_ends_at.isoformat()}",
                       kind="notice-ended")
    await ASSET.guard(session, asset)  # serialises objections and registration of this asset
    mine = (await session.exec(select(Objection.id).where(
        Objection.asset_id == asset_id, Objection.objector_id == caller.id,
        Objection.status == ObjectionStatus.open))).first()
    if mine is not None:
        raise Conflict(f"objection {mine} of this account is still open", kind="duplicate-objection",
                       extra={"objection": mine})
    objection = Objection(id=new_id("obj"), status=OBJECTION.initial, asset_id=asset_id, objector_id=caller.id,
                          reason=reason, evidence=evidence, created_at=ctx.now)
    await OBJECTION.create(session, objection, ctx, {"objection": objection.id})
    await outbox.to_account(session, ctx, "asset.objection_filed", asset.provider_id, asset.id, asset=asset.id,
                         objection=objection.id, reason=reason)
    return objection


async def resolve_objection(session: AsyncSession, ctx: Ctx, objection_id: str, decision: str,
                            reason: str) -> Objection:
    ctx.user.require(Role.operator)
    objection = await access.load_objection(session, objection_id, ctx.user)
    upheld = decision == "uphold"
    action = "uphold" if upheld else "dismiss"
    salted = await audit.salted(session, OBJECTION.subject(objection), OBJECTION.entry_type(action),
                                {"reason": reason})
    await OBJECTION.move(session, objection, action, ctx, {"objection": objection_id, "reason_salted_sha256": salted},
                         resolution_reason=reason, resolved_by=ctx.user.id, resolved_at=ctx.now)
    asset = await access.load(session, objection.asset_id, ctx.user)
    if upheld and asset.status == S.public_notice:
        change = access.is_change(asset)
        await ASSET.move(session, asset, "reject_change" if change else "reject", ctx,
                         {"stage": "objection", "objection": objection_id, "change": change},
                         **rejection_values(asset, ctx, reason))
        await outbox.to_account(session, ctx, "asset.rejected", asset.provider_id, asset.id, asset=asset.id,
                             stage="objection", objection=objection_id, change=change, reason=reason)
    return objection


async def list_objections(session: AsyncSession, ctx: Ctx, asset_id: str) -> list[ObjectionRead]:
    """Holder and staff see every objection; others their own."""
    caller = ctx.user
    asset = await access.load(session, asset_id, caller)
    query = select(Objection).where(Objection.asset_id == asset.id, access.visible_objections(caller))
    rows = (await session.exec(query.order_by(col(Objection.id)))).all()
    return [objection_read(o) for o in rows]


def objection_read(o: Objection) -> ObjectionRead:
    return ObjectionRead(id=o.id, asset_id=o.asset_id, objector_id=o.objector_id, reason=o.reason,
                         evidence=o.evidence, status=o.status, resolution_reason=o.resolution_reason,
                         created_at=o.created_at, resolved_at=o.resolved_at)
