"""The alert rules (docs/alerts.md): each reads one order, or one refused attempt, and
returns its findings. ``market.oversight.alerts`` stores them as alerts and runs the rules
over what happened (its evaluator)."""

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.context import Ctx
from market.core.db import run
from market.core.types import rfc3339
from market.oversight.models import Refusal
from market.registry.models import Asset
from market.trading.models import Order

RULES = ("self_dealing", "wash_trade", "price_outlier", "order_burst", "refused_attempt", "identifiable_pi_sale")

# Refusals that are not export or core-data attempts: ordering one's own listing is a
# mistake the order gate answers (422), not an attempt to move data out.
NOT_REFUSED_ATTEMPTS = frozenset({"self-dealing"})

# price_outlier needs this many earlier priced trades in the category to have a median.
PRICE_MIN_SAMPLE = 3

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket(at: datetime, width: timedelta) -> str:
    """The start of the fixed period of ``width`` (counted from the Unix epoch) holding ``at``."""
    n = (at - EPOCH) // width
    return rfc3339(EPOCH + n * width)


@dataclass
class Finding:
    rule: str
    subject_key: str
    window: str
    subjects: list[str]
    evidence: dict[str, Any]
    orders: list[str] = field(default_factory=list)
    refusal: int | None = None


# -- the rules --------------------------------------------------------------------------


def controller_of(account: Account) -> str | None:
    return getattr(account, "controller_uscc", None) or None


async def self_dealing(session: AsyncSession, ctx: Ctx, order: Order) -> list[Finding]:
    buyer = await session.get_one(Account, order.buyer_id)
    provider = await session.get_one(Account, order.provider_id)
    how = None
    if provider.uscc and controller_of(buyer) == provider.uscc:
        how = "provider_controls_buyer"
    elif buyer.uscc and controller_of(provider) == buyer.uscc:
        how = "buyer_controls_provider"
    elif controller_of(buyer) and controller_of(buyer) == controller_of(provider):
        how = "same_controller"
    if how is None:
        return []
    pair = sorted([buyer.id, provider.id])
    at = order.settled_at
    assert at is not None  # a rule run on settled orders
    return [Finding("self_dealing", "|".join(pair), at.strftime("%Y-%m"),
                    [buyer.id, provider.id, order.id],
                    {"relation": how, "buyer": buyer.id, "provider": provider.id,
                     "buyer_uscc": buyer.uscc, "provider_uscc": provider.uscc,
                     "buyer_controller_uscc": controller_of(buyer),
                     "provider_controller_uscc": controller_of(provider),
                     "order": order.id, "settled_at": rfc3339(at)},
                    [order.id])]


class _Trade(NamedTuple):
    """What ``wash_trade`` cites of a trade."""

    id: str
    buyer_id: str
    provider_id: str
    settled_at: datetime


# The rules' queries run for every trade document: built once (a query built per call is
# walked whole for its cache key each time), and run as Core statements (``db.run``) for
# the columns the findings need: the ORM's work around them (result objects, Order
# instances for trades that are only cited) was most of the evaluator's CPU.
@functools.cache
def _reverse_trades() -> Any:
    return (select(col(Order.id), col(Order.buyer_id), col(Order.provider_id), col(Order.settled_at))
            .where(col(Order.buyer_id) == bindparam("buyer"), col(Order.provider_id) == bindparam("provider"),
                   col(Order.settled_at).is_not(None), col(Order.settled_at) >= bindparam("lo"),
                   col(Order.settled_at) <= bindparam("hi"))
            .order_by(col(Order.settled_at), col(Order.id)))


@functools.cache
def _buyers_orders() -> Any:
    return (select(col(Order.id)).where(col(Order.buyer_id) == bindparam("buyer"),
                                        col(Order.created_at) > bindparam("after"), col(Order.created_at) <= bindparam("until"))
            .order_by(col(Order.created_at), col(Order.id)).limit(bindparam("limit")))


async def wash_trade(session: AsyncSession, ctx: Ctx, order: Order) -> list[Finding]:
    window = ctx.settings.wash_delta
    at = order.settled_at
    assert at is not None
    rows = (await run(session, _reverse_trades(), {"buyer": order.provider_id, "provider": order.buyer_id,
                                                   "lo": at - window, "hi": at + window})).all()
    found = []
    pair = sorted([order.buyer_id, order.provider_id])
    this = _Trade(order.id, order.buyer_id, order.provider_id, at)
    for other in map(_Trade._make, rows):
        first, second = sorted([this, other], key=lambda o: (o.settled_at, o.id))
        found.append(Finding(
            "wash_trade", "|".join(pair), bucket(first.settled_at, window),
            [*pair, first.id, second.id],
            {"window": ctx.settings.wash_window, "first": {"order": first.id, "buyer": first.buyer_id,
                                                           "provider": first.provider_id,
                                                           "settled_at": rfc3339(first.settled_at)},
             "second": {"order": second.id, "buyer": second.buyer_id, "provider": second.provider_id,
                        "settled_at": rfc3339(second.settled_at)}},
            [first.id, second.id]))
    return found


async def price_outlier(session: AsyncSession, ctx: Ctx, order: Order) -> list[Finding]:
    """A priced trade beyond ``factor`` × the median of the category's earlier priced
    trades in its currency (strictly above ``factor × median`` or below ``median / factor``)."""
    if order.price <= 0:
        return []
    asset = await session.get_one(Asset, order.asset_id)
    earlier = (select(col(Order.price)).join(Asset, col(Asset.id) == col(Order.asset_id))
               .where(col(Asset.category) == asset.category, col(Order.currency) == order.currency, col(Order.price) > 0,
                      col(Order.settled_at).is_not(None), col(Order.id) != order.id,
                      or_(col(Order.settled_at) < order.settled_at,
                          (col(Order.settled_at) == order.settled_at) & (col(Order.id) < order.id))))
    n = (await session.execute(select(func.count()).select_from(earlier.subquery()))).scalar_one()
    if n < PRICE_MIN_SAMPLE:
        return []
    middle = (await session.execute(earlier.order_by(col(Order.price)).offset((n - 1) // 2)
                                    .limit(2 if n % 2 == 0 else 1))).scalars().all()
    twice_median = 2 * middle[0] if len(middle) == 1 else middle[0] + middle[1]
    factor = ctx.settings.price_outlier_factor
    price2 = 2 * order.price
    if price2 > factor * twice_median:
        direction = "above"
    elif price2 * factor < twice_median:
        direction = "below"
    else:
        return []
    return [Finding("price_outlier", order.id, "order", [order.id, order.asset_id, order.provider_id, order.buyer_id],
                    {"order": order.id, "category": asset.category, "currency": order.currency,
                     "price": order.price, "median": twice_median / 2 if twice_median % 2 else twice_median // 2,
                     "sample": n, "factor": factor, "direction": direction},
                    [order.id])]


async def identifiable_pi_sale(session: AsyncSession, ctx: Ctx, order: Order) -> list[Finding]:
    asset = await session.get_one(Asset, order.asset_id)
    if asset.personal_info != "identifiable":
        return []
    at = order.settled_at
    assert at is not None  # a rule run on settled orders
    return [Finding("identifiable_pi_sale", order.id, "order",
                    [order.id, order.asset_id, order.provider_id, order.buyer_id],
                    {"order": order.id, "asset": asset.id, "personal_info": asset.personal_info,
                     "purpose": order.purpose, "settled_at": rfc3339(at)},
                    [order.id])]


async def order_burst(session: AsyncSession, ctx: Ctx, order: Order) -> list[Finding]:
    """More than ``order_burst_count`` orders by one buyer within ``order_burst_window``
    ending at this order's placement."""
    width, limit = ctx.settings.order_burst_delta, ctx.settings.order_burst_count
    at = order.created_at
    ids = [row[0] for row in (await run(session, _buyers_orders(), {
        "buyer": order.buyer_id, "after": at - width, "until": at, "limit": limit + 1})).all()]
    if len(ids) <= limit:
        return []
    return [Finding("order_burst", order.buyer_id, bucket(at, width), [order.buyer_id],
                    {"buyer": order.buyer_id, "more_than": limit, "window": ctx.settings.order_burst_window,
                     "orders": ids, "until": rfc3339(at)},
                    [*ids, order.id])]


def refused_attempt(refusal: Refusal) -> list[Finding]:
    if refusal.kind in NOT_REFUSED_ATTEMPTS:
        return []
    key = "|".join([refusal.account_id, refusal.kind, refusal.asset_id or ""])
    return [Finding("refused_attempt", key, refusal.created_at.strftime("%Y-%m-%d"),
                    [x for x in (refusal.account_id, refusal.asset_id, refusal.listing_id) if x],
                    {"account": refusal.account_id, "kind": refusal.kind, "asset": refusal.asset_id,
                     "listing": refusal.listing_id, "refusals": [refusal.id],
                     "first_at": rfc3339(refusal.created_at)},
                    refusal=refusal.id)]


ON_SETTLED = (self_dealing, wash_trade, price_outlier, identifiable_pi_sale)
ON_PLACED = (order_burst,)


__all__ = ["NOT_REFUSED_ATTEMPTS", "ON_PLACED", "ON_SETTLED", "PRICE_MIN_SAMPLE", "RULES", "Finding", "bucket",
           "controller_of", "identifiable_pi_sale", "order_burst", "price_outlier", "refused_attempt", "self_dealing",
           "wash_trade"]
