"""Review, public notice and registration; cancellation, revocation and freezing of a
registration (DESIGN §4.1). Free text goes on the ledger as its SHA-256 only."""

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core import audit, outbox
from market.core.context import Ctx
from market.core.errors import Conflict, InvalidTransition
from market.registry import access, certificates, transfers
from market.registry.assets import conflicts
from market.registry.models import Asset, Objection, RegistrationCounter
from market.registry.states import ASSET, ObjectionStatus, S


def rejection_values(asset: Asset, ctx: Ctx, reason: str) -> dict[str, Any]:
    """Row values of a rejection. A rejected change leaves the registration exactly as it
    was: the registered revision is the current one again (its claim is on it)."""
    values: dict[str, Any] = {"status_reason": reason, "updated_at": ctx.now}
    if access.is_change(asset):
        values.update(content_revision=asset.registered_revision, content_sha256=asset.registered_sha256)
    return values


async def review(
    session: AsyncSession, ctx: Ctx, asset_id: str, decision: str, reason: str, override_conflict: bool
) -> Asset:
    ctx.user.require(Role.operator)
    asset = await access.load(session, asset_id, ctx.user)
    if asset.status != S.submitted:
        raise InvalidTransition(f"asset {asset_id}", asset.status, f"review ({decision})")
    if decision == "reject":
        change = access.is_change(asset)
        action = "reject_change" if change else "reject"
        salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type(action), {"reason": reason})
        await ASSET.move(session, asset, action, ctx,
                         {"stage": "review", "change": change, "reason_salted_sha256": salted},
                         **rejection_values(asset, ctx, reason))
        await outbox.to_account(session, ctx, "asset.rejected", asset.provider_id, asset.id, asset=asset.id,
                             stage="review", change=change, reason=reason)
        return asset
    others = await conflicts(session, asset)
    if others and not override_conflict:
        raise Conflict(f"the content is also claimed by {', '.join(others)}; resolve it or override with a reason",
                       kind="unresolved-conflict", extra={"conflicts_with": others})
    notice = ctx.settings.notice_delta
    data: dict[str, Any] = {"notice_seconds": int(notice.total_seconds()),
                            "change": access.is_change(asset)}
    if others:
        data.update(override_conflict=True, conflicts_with=others, reason_salted_sha256=await audit.salted(
            session, ASSET.subject(asset), ASSET.entry_type("approve"), {"reason": reason}))
    await ASSET.move(session, asset, "approve", ctx, data, status_reason=reason or None, notice_started_at=ctx.now,
                     notice_ends_at=ctx.now + notice, updated_at=ctx.now)
    if notice <= timedelta(0):
        await register(session, ctx, asset)
    return asset


async def _registration_number(session: AsyncSession, year: int) -> str:
    """Next number of ``year``, gap-free: the counter moves in the registering transaction."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(RegistrationCounter).values(year=year, last=0).on_conflict_do_nothing())
    result = await session.execute(
        update(RegistrationCounter).where(col(RegistrationCounter.year) == year)
        .values(last=col(RegistrationCounter.last) + 1).returning(col(RegistrationCounter.last))
    )
    return f"DR-{year}-{result.scalar_one():06d}"


async def register(session: AsyncSession, ctx: Ctx, asset: Asset) -> None:
    """The notice period is over: register (the market's own act), issue the certificate."""
    ctx = dataclasses.replace(ctx, caller=None)
    change = access.is_change(asset)
    number = asset.registration_number or await _registration_number(session, ctx.now.year)
    await ASSET.move(session, asset, "register", ctx, {"registration_number": number},
                     registration_number=number, registered_at=ctx.now, registered_revision=asset.content_revision,
                     registered_sha256=asset.content_sha256, updated_at=ctx.now)
    await certificates.issue(session, asset, ctx, "asset.registered", {"change": change})
    await outbox.to_account(session, ctx, "asset.registered", asset.provider_id, asset.id, asset=asset.id,
                         registration_number=number, change=change)
    if change:  # proposals name the content registered before
        await transfers.void_pending(session, ctx, asset_id=asset.id, cause="content_changed")


async def close_notice_periods(session: AsyncSession, ctx: Ctx) -> list[str]:
    """Register every unfrozen asset whose notice has ended with no open objection.
    Idempotent; an asset changed meanwhile is left for the next round."""
    open_objection = select(Objection.id).where(Objection.asset_id == Asset.id,
                                                Objection.status == ObjectionStatus.open).exists()
    due = (await session.exec(
        select(Asset).where(col(Asset.status) == S.public_notice, col(Asset.notice_ends_at) <= ctx.now,
                            col(Asset.frozen) == False, ~open_objection)  # noqa: E712
        .order_by(col(Asset.notice_ends_at))
    )).all()
    done = []
    for asset in due:
        try:
            async with session.begin_nested():
                await register(session, ctx, asset)
            done.append(asset.id)
        except Conflict:
            continue  # changed since read (an objection, another process): next round
    return done


async def cancel(session: AsyncSession, ctx: Ctx, asset_id: str, reason: str) -> Asset:
    """注销: the holder ends its registration."""
    asset = await access.load_for_holder(session, asset_id, ctx.user)
    salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type("cancel"), {"reason": reason})
    await ASSET.move(session, asset, "cancel", ctx, {"reason_salted_sha256": salted},
                     status_reason=reason, updated_at=ctx.now)
    await transfers.void_pending(session, ctx, asset_id=asset.id, cause="cancelled")
    return asset


async def revoke(session: AsyncSession, ctx: Ctx, asset_id: str, reason: str) -> Asset:
    """A regulator revokes a registration (oversight's ``revoke_registration``)."""
    ctx.user.require(Role.regulator)
    asset = await access.load(session, asset_id, ctx.user)
    if not access.holds_registration(asset):
        raise InvalidTransition(f"asset {asset_id}", asset.status, "revoke (nothing is registered)")
    salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type("revoke"), {"reason": reason})
    document = certificates.revocation_document(asset, ctx, salted)
    entry = await ASSET.move(session, asset, "revoke", ctx, {"reason_salted_sha256": salted,
                                                             "document_sha256": audit.document_digest(document)},
                             status_reason=reason, updated_at=ctx.now)
    assert entry is not None
    certificates.keep_revocation(asset, document, entry)
    await outbox.to_account(session, ctx, "asset.revoked", asset.provider_id, asset.id, asset=asset.id,
                         registration_number=asset.registration_number, reason=reason)
    session.add(asset)
    await session.flush()
    await transfers.void_pending(session, ctx, asset_id=asset.id, cause="revoked")
    return asset


async def set_frozen(session: AsyncSession, ctx: Ctx, asset_id: str, frozen: bool, reason: str) -> Asset:
    """A regulator freezes (or unfreezes) an asset: every move marked ``frozen_blocks``
    is refused meanwhile, and pending transfer proposals are void."""
    ctx.user.require(Role.regulator)
    asset = await access.load(session, asset_id, ctx.user)
    if asset.frozen == frozen:
        raise Conflict(f"asset {asset_id} is already {'frozen' if frozen else 'not frozen'}", kind="no-change")
    action = "freeze" if frozen else "unfreeze"
    salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type(action), {"reason": reason})
    await ASSET.move(session, asset, action, ctx, {"reason_salted_sha256": salted}, frozen=frozen,
                     updated_at=ctx.now)
    await outbox.to_account(session, ctx, "asset.frozen" if frozen else "asset.unfrozen", asset.provider_id, asset.id,
                         asset=asset.id, reason=reason)
    if frozen:
        await transfers.void_pending(session, ctx, asset_id=asset.id, cause="frozen")
    return asset
