"""Who may see and act on an order (docs/API.md "Orders").

An order is seen by its buyer, the listing's holder and staff; anyone else gets 404.
A dispute is seen by whoever may see its order.
"""

import functools
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, select, true
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.db import run, table_of
from market.core.errors import Forbidden, NotFound
from market.core.visibility import load_prepared, load_visible, visible_query
from market.trading.models import Dispute, Order
from market.web.auth import Caller


def visible_orders(caller: Caller) -> Any:
    return _visible_orders(caller.is_staff, caller.id)


def _visible_orders(staff: bool, who: Any) -> Any:
    if staff:
        return true()
    return or_(col(Order.buyer_id) == who, col(Order.provider_id) == who)


@functools.cache
def _order_query(staff: bool) -> Any:
    return visible_query(Order, _visible_orders(staff, bindparam("caller")))


def listed_orders(caller: Caller, side: str | None) -> Any:
    """What ``GET /v1/orders`` lists: the caller's own orders on ``side`` (buyer when not
    given); staff asking for no side, every order (the operator's queues)."""
    if side is None and caller.is_staff:
        return true()
    return (col(Order.provider_id) if side == "provider" else col(Order.buyer_id)) == caller.id


async def load(session: AsyncSession, order_id: str, caller: Caller) -> Order:
    order: Order = await load_prepared(session, _order_query(caller.is_staff), {"id": order_id, "caller": caller.id},
                                       "order")
    return order


class Contract(NamedTuple):
    """What ``GET /v1/orders/{id}/contract`` reads of an order."""

    id: str
    status: str
    contract: str | None
    contract_leaf: bytes | None


@functools.cache
def _contract_query(staff: bool) -> Any:
    return (select(col(Order.id), col(Order.status), col(Order.contract), col(Order.contract_leaf))
            .where(col(Order.id) == bindparam("id"), _visible_orders(staff, bindparam("caller"))))


async def load_contract(session: AsyncSession, order_id: str, caller: Caller) -> Contract:
    """The order's contract columns, as ``load`` would let the caller see the order (404
    otherwise): four columns, not the ORM's loading of the whole row (~0.6 ms)."""
    rows = (await run(session, _contract_query(caller.is_staff), {"id": order_id, "caller": caller.id})).all()
    if not rows:
        raise NotFound(f"no order {order_id}")
    return Contract(*rows[0])


async def load_for_buyer(session: AsyncSession, order_id: str, caller: Caller) -> Order:
    order = await load(session, order_id, caller)
    if order.buyer_id != caller.id:
        raise Forbidden("only the order's buyer may do this", kind="not-buyer")
    return order


async def load_for_holder(session: AsyncSession, order_id: str, caller: Caller) -> Order:
    order = await load(session, order_id, caller)
    if order.provider_id != caller.id:
        raise Forbidden("only the listing's holder may do this", kind="not-holder")
    return order


async def load_dispute(session: AsyncSession, dispute_id: str, caller: Caller) -> Dispute:
    visible = col(Dispute.order_id).in_(
        table_of(Order).select().with_only_columns(col(Order.id)).where(visible_orders(caller)))
    return await load_visible(session, Dispute, dispute_id, visible, "dispute")
