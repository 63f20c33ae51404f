"""The regulator's actions (docs/API.md "Oversight"): freeze and unfreeze an asset or a
listing, suspend and reinstate an account, revoke a registration; and the approvals
queue (important-data orders waiting for a regulator).

An action dispatches to the service that owns the row (``review.set_frozen``,
``listings.service.set_frozen``, ``accounts.service.set_suspended``,
``review.revoke``), which checks the role, moves the row through its state machine and
writes its own entry (``asset.frozen`` …), and whose observers take a listing out of
search in the same transaction. The action itself is a signed act of the regulator
(``market.oversight.acts``): it is kept in ``oversight_actions`` and recorded as
``oversight.action`` (action, target, and ``act``: the signed document's
``document_sha256``, key id and signature; the document, salted, holds the reason and
is kept in ``regulator_acts``), all in one transaction. Never commits.
"""

import base64
import dataclasses
from typing import Any, Literal

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle
from ledger.entry import canonical as canonical_entry
from market.accounts import service as accounts
from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core import audit
from market.core.context import Ctx
from market.core.errors import NotFound
from market.core.ids import new_id
from market.core.pagination import page_of, paginate
from market.core.types import rfc3339
from market.listings import service as listings
from market.listings.models import Listing
from market.oversight import acts
from market.oversight.models import OversightAction
from market.registry import review
from market.registry.models import Asset
from market.trading import orders
from market.trading.models import Order
from market.trading.read import listing_titles, order_read
from market.trading.states import OrderStatus

ActionName = Literal["freeze_asset", "unfreeze_asset", "freeze_listing", "unfreeze_listing", "suspend_account",
                     "reinstate_account", "revoke_registration"]


@dataclasses.dataclass(frozen=True)
class Kind:
    model: Any
    what: str  # the target's kind, for 404s and the effect's ledger subject
    effect: str  # the entry type the owning service writes


ACTIONS: dict[str, Kind] = {
    "freeze_asset": Kind(Asset, "asset", "asset.frozen"),
    "unfreeze_asset": Kind(Asset, "asset", "asset.unfrozen"),
    "revoke_registration": Kind(Asset, "asset", "asset.revoked"),
    "freeze_listing": Kind(Listing, "listing", "listing.frozen"),
    "unfreeze_listing": Kind(Listing, "listing", "listing.unfrozen"),
    "suspend_account": Kind(Account, "account", "account.suspended"),
    "reinstate_account": Kind(Account, "account", "account.reinstated"),
}


async def _dispatch(session: AsyncSession, ctx: Ctx, action: str, target: str, reason: str) -> None:
    match action:
        case "freeze_asset" | "unfreeze_asset":
            await review.set_frozen(session, ctx, target, action == "freeze_asset", reason)
        case "revoke_registration":
            await review.revoke(session, ctx, target, reason)
        case "freeze_listing" | "unfreeze_listing":
            await listings.set_frozen(session, ctx, target, action == "freeze_listing", reason)
        case "suspend_account" | "reinstate_account":
            await accounts.set_suspended(session, ctx, target, action == "suspend_account", reason)
        case _:  # the request schema admits only the actions above
            raise ValueError(action)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def action_read(row: OversightAction, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = ACTIONS[row.action]
    body: dict[str, Any] = {
        "id": row.id, "action": row.action, "target": row.target, "reason": row.reason, "actor": row.actor_id,
        "created_at": rfc3339(row.created_at),
        "effect": {"type": kind.effect, "subject": f"{kind.what}:{row.target}"},
        "entry": {"type": "oversight.action", "subject": f"action:{row.id}",
                  "leaf_hash": _b64(bytes.fromhex(row.entry_sha256)) if row.entry_sha256 else None},
    }
    if entry is not None:
        body["entry"]["entry"] = entry
    return body


async def perform(session: AsyncSession, ctx: Ctx, body: Any) -> dict[str, Any]:
    """Take the action the signed act ``body`` says (``acts.accept``: 403 unless a
    regulator, 422 for an unsigned or bad act): 404 for an unknown target, 409 when it
    changes nothing (``no-change``) or the target's state forbids it."""
    ctx.user.require(Role.regulator)
    action_id = new_id("act")
    accepted = await acts.accept(session, ctx, "action", body, f"action:{action_id}")
    action, target, reason = (accepted.fields[k] for k in ("action", "target", "reason"))
    kind = ACTIONS[action]
    if await session.get(kind.model, target) is None:
        raise NotFound(f"no {kind.what} {target}")
    await _dispatch(session, ctx, action, target, reason)
    row = OversightAction(id=action_id, action=action, target=target, reason=reason, actor_id=ctx.user.id,
                          created_at=ctx.now)
    # The act's salted document holds the reason: its hash replaces a bare reason_sha256.
    entry = await audit.record(session, ctx, "oversight.action", f"action:{row.id}", ctx.user.id,
                               {"action": action, "target": target, "act": accepted.evidence})
    row.entry_sha256 = merkle.leaf_hash(canonical_entry(entry)).hex()
    session.add(row)
    await session.flush()
    return action_read(row, entry)


async def list_actions(session: AsyncSession, ctx: Ctx, target: str | None, action: str | None, limit: int,
                       cursor: str | None) -> dict[str, Any]:
    ctx.user.require(Role.regulator, Role.operator)
    query = select(OversightAction)
    if target:
        query = query.where(col(OversightAction.target) == target)
    if action:
        query = query.where(col(OversightAction.action) == action)
    rows = list((await session.execute(paginate(query, OversightAction.id, limit, cursor))).scalars().all())
    return page_of(rows, limit, action_read)


async def decide_approval(session: AsyncSession, ctx: Ctx, order_id: str, body: Any) -> Order:
    """A regulator's decision on an important-data order, as a signed act about that
    order; the act's evidence goes into the decision's trade document."""
    ctx.user.require(Role.regulator)
    accepted = await acts.accept(session, ctx, "approval", body, f"order:{order_id}", order=order_id)
    return await orders.decide(session, ctx, order_id, accepted.fields["decision"], accepted.fields["reason"],
                               as_regulator=True, act=accepted.evidence)


async def approvals(session: AsyncSession, ctx: Ctx, limit: int, cursor: str | None) -> dict[str, Any]:
    """Important-data orders waiting for a regulator's decision (given through
    ``POST /v1/orders/{id}/regulator-approval``)."""
    ctx.user.require(Role.regulator)
    query = select(Order).where(col(Order.needs_regulator_approval) == True,  # noqa: E712
                                col(Order.regulator_decision).is_(None),
                                col(Order.status) == OrderStatus.pending_approval)
    rows = list((await session.execute(paginate(query, Order.id, limit, cursor))).scalars().all())
    caller = ctx.user
    titles = await listing_titles(session, [o.listing_id for o in rows[:limit]])
    return page_of(rows, limit, lambda o: order_read(o, caller, listing_title=titles.get(o.listing_id))
                   .model_dump(mode="json"))
