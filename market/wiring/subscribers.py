"""Every subscriber of every domain event, in one place, read top to bottom.

A domain publishes what happened (``market.core.events``); the domains that keep
something derived from it react here, in the publishing transaction, in the order
listed. ``subscribe_all`` is called once when the services are built
(``market.wiring.services``), so a reaction never depends on which modules a process
happened to import: a script that revokes an asset through ``market.registry.review``
alone still delists its listings.

Who reacts to whom follows the allowed import direction (oversight → trading →
listings → registry → accounts): the lower domain publishes, the higher one subscribes.
"""

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.events import AttemptRefused, Events, KeyRevoked, Moved, OrderRefunded, OrderSettled
from market.dsp import negotiations
from market.dsp import transfers as dsp_transfers
from market.listings import index
from market.listings import service as listings
from market.listings.models import Listing
from market.oversight import stats, trades
from market.registry import transfers
from market.trading import settlement


def subscribe_all(events: Events) -> None:
    """Register every subscriber on ``events``."""
    # Accounts → registry: a revoked key voids the transfer proposals it signed.
    events.subscribe(KeyRevoked, void_transfers_signed_with)
    # Registry → listings: an asset that changed hands, was cancelled or revoked is
    # delisted; any asset move (freeze, revocation ...) re-evaluates its listings in search.
    events.subscribe(Moved, follow_asset, kind="asset")
    # Accounts → listings: a holder suspended or reinstated takes its listings out of
    # search or back.
    events.subscribe(Moved, follow_holder, kind="account")
    # Listings → listings, trading: a listing's search document follows its moves; a
    # delisted listing ends its unpaid orders.
    events.subscribe(Moved, index_listing, kind="listing")
    events.subscribe(Moved, end_orders_of_delisted, kind="listing")
    # Trading → oversight: the statistics, kept at settlement and refund.
    events.subscribe(OrderSettled, count_settled)
    events.subscribe(OrderRefunded, count_refunded)
    # Trading, registry → oversight: refused attempts kept for the regulator.
    events.subscribe(AttemptRefused, trades.keep_refusal)
    # Trading, registry, listings, accounts → the Dataspace Protocol: a negotiation follows
    # its order; a freeze or a holder's suspension stops what is not yet agreed.
    events.subscribe(Moved, negotiations.follow_order, kind="order")
    events.subscribe(Moved, stop_negotiations, kind="asset")
    events.subscribe(Moved, stop_negotiations, kind="listing")
    events.subscribe(Moved, stop_negotiations, kind="account")
    # Registry, listings, accounts, trading → dsp: a transfer follows its order's access. A
    # freeze of the asset or listing, or the buyer suspended, suspends started transfers
    # (lifting it starts them again with a new token); the registration revoked, the
    # listing delisted, the order expired or refunded terminates the open ones.
    events.subscribe(Moved, transfers_follow_asset, kind="asset")
    events.subscribe(Moved, transfers_follow_listing, kind="listing")
    events.subscribe(Moved, transfers_follow_buyer, kind="account")
    events.subscribe(Moved, transfers_follow_order, kind="order")
    events.subscribe(OrderRefunded, transfers_end_with_refund)


async def void_transfers_signed_with(session: AsyncSession, ctx: Ctx, event: KeyRevoked) -> None:
    await transfers.void_pending(session, ctx, key_id=event.key.id, cause="key_revoked")


async def follow_asset(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action in listings.ENDS_LISTINGS:
        await listings.delist_for_asset(session, ctx, event.row, listings.ENDS_LISTINGS[event.action])
    await index.refresh_listed(session, Listing.asset_id == event.row.id)


async def follow_holder(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    await index.refresh_listed(session, Listing.provider_id == event.row.id)


async def index_listing(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    await index.index_listing(session, event.row)


async def end_orders_of_delisted(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action == "delist":
        await settlement.end_with_listing(session, ctx, event.row)


async def count_settled(session: AsyncSession, ctx: Ctx, event: OrderSettled) -> None:
    await stats.count_settled(session, event.order)


async def count_refunded(session: AsyncSession, ctx: Ctx, event: OrderRefunded) -> None:
    await stats.count_refunded(session, event.order)


async def stop_negotiations(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    """A regulator froze an asset or a listing, or suspended a holder: the negotiations on
    its listings not yet agreed end (``market.dsp.negotiations.follow_enforcement``)."""
    if event.action not in ("freeze", "suspend"):
        return
    if event.kind == "listing":
        ids = [event.row.id]
    else:
        owner = col(Listing.asset_id) if event.kind == "asset" else col(Listing.provider_id)
        ids = list((await session.execute(select(col(Listing.id)).where(owner == event.row.id))).scalars().all())
    why = {"asset": "the asset was frozen by the regulator", "listing": "the listing was frozen by the regulator",
           "account": "the holder's account was suspended by the regulator"}[event.kind]
    await negotiations.follow_enforcement(session, ctx, ids, why)


TRANSFER_ASSET_ACTIONS = frozenset({"freeze", "unfreeze", "revoke"})
TRANSFER_LISTING_ACTIONS = frozenset({"freeze", "unfreeze", "delist"})
TRANSFER_ACCOUNT_ACTIONS = frozenset({"suspend", "reinstate"})
TRANSFER_ORDER_ACTIONS = frozenset({"expire", "refund"})


async def transfers_follow_asset(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action in TRANSFER_ASSET_ACTIONS:
        await dsp_transfers.follow_asset(session, ctx, event.row.id)


async def transfers_follow_listing(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action in TRANSFER_LISTING_ACTIONS:
        await dsp_transfers.follow_listing(session, ctx, event.row.id)


async def transfers_follow_buyer(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action in TRANSFER_ACCOUNT_ACTIONS:
        await dsp_transfers.follow_buyer(session, ctx, event.row.id)


async def transfers_follow_order(session: AsyncSession, ctx: Ctx, event: Moved) -> None:
    if event.action in TRANSFER_ORDER_ACTIONS:
        await dsp_transfers.follow_order(session, ctx, event.row.id)


async def transfers_end_with_refund(session: AsyncSession, ctx: Ctx, event: OrderRefunded) -> None:
    await dsp_transfers.follow_order(session, ctx, event.order.id)
