"""The dashboard's trades (``market.oversight.dashboard``): the trade search of
``GET /v1/oversight/trades`` as a page, one trade's page, and its CSV for the signed-in
regulator.

- ``GET /oversight/trades``: the API's filters (``from``, ``to``, ``provider``,
  ``buyer``, ``category``, ``grade``, ``status``, ``alerted``; parsed by
  ``trades.TradeFilters``, so a bad value is the API's own message, shown on the page
  with ``422``), ``PAGE_SIZE`` rows a page in the API's order (oldest first, keyset
  ``cursor``), names for every party, asset and listing, money in yuan.
- ``GET /oversight/trades.csv``: the same filters, the API's ``Accept: text/csv``
  answer itself (``trades.csv_chunks``: every matching row, streamed in batches, each
  read in its own session, constant memory), for the session cookie instead of a bearer
  token. No session: to sign-in; a session whose account may no longer use the
  dashboard: ``403``; nothing is streamed for a bad filter.
- ``GET /oversight/trades/{id}``: one order (parties, asset, listing, amounts, times)
  and the alerts that name it, their evidence described; links to act on its asset,
  listing and parties.
"""

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.response import Stream
from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.services import Services
from market.oversight import trades
from market.oversight.alerts import alert_read
from market.oversight.dashboard_data import with_evidence
from market.oversight.dashboard_names import account_ref, asset_ref, ids_in, lookup
from market.oversight.dashboard_web import HEADERS, PATH, gate, page
from market.oversight.models import Alert, AlertedOrder
from market.trading.models import Order
from market.trading.states import OrderStatus

__all__ = ["FILTERS", "PAGE_SIZE", "TradesController"]

FILTERS = ("from", "to", "provider", "buyer", "category", "grade", "status", "alerted")
PAGE_SIZE = 50
_STATUS_NAMES = {
    "pending_approval": "待审批 pending approval", "awaiting_payment": "待付款 awaiting payment",
    "active": "已成交 active", "expired": "已过期 expired", "rejected": "已拒绝 rejected",
    "cancelled": "已取消 cancelled", "payment_failed": "付款失败 payment failed", "refunded": "已退款 refunded",
}
STATUS_LABELS = {s.value: _STATUS_NAMES.get(s.value, s.value) for s in OrderStatus}  # every status, in order
GRADE_LABELS = {"general": "一般数据 general", "important": "重要数据 important", "core": "核心数据 core"}
_MAX_FILTER = 200  # characters of one filter value kept (ids and dates are far shorter)


def chosen(params: Any) -> dict[str, str]:
    """The filters of the query string, blank ones left out."""
    found = {name: str(params.get(name) or "").strip()[:_MAX_FILTER] for name in FILTERS}
    return {name: value for name, value in found.items() if value}


def filters_of(values: dict[str, str]) -> trades.TradeFilters:
    """The API's parsed filters (``Unprocessable`` for a bad one, before anything is read)."""
    return trades.TradeFilters(values.get("from"), values.get("to"), values.get("provider"), values.get("buyer"),
                               values.get("category"), values.get("grade"), values.get("status"),
                               values.get("alerted"))


async def trade_page(db: AsyncSession, ctx: Ctx, values: dict[str, str], cursor: str | None) -> dict[str, Any]:
    """One page of the search (``trades.search``), each row with its refs."""
    found = await trades.search(db, ctx, filters_of(values), PAGE_SIZE, cursor or None)
    names = await lookup(db, [i for t in found["items"] for i in (t["id"], t["listing"])]
                         + [values.get("provider"), values.get("buyer")])
    for t in found["items"]:
        t["refs"] = {"order": names(t["id"]), "listing": names(t["listing"]),
                     "buyer": account_ref(t["buyer"]["id"], t["buyer"]["name"], side="buyer"),
                     "provider": account_ref(t["provider"]["id"], t["provider"]["name"], side="provider"),
                     "asset": asset_ref(t["asset"]["id"], t["asset"]["title"])}
        t["status_label"] = STATUS_LABELS.get(t["status"], t["status"])
    return {"rows": found["items"], "next_cursor": found["next_cursor"],
            "party": {"provider": names(values.get("provider"), "provider"),
                      "buyer": names(values.get("buyer"), "buyer")}}


async def trade_detail(db: AsyncSession, ctx: Ctx, order_id: str) -> dict[str, Any] | None:
    """One order and the alerts naming it (None: no such order)."""
    ctx.user.require(Role.regulator, Role.operator)
    order = await db.get(Order, order_id)
    if order is None:
        return None
    rows = (await db.execute(select(Alert).join(AlertedOrder, col(AlertedOrder.alert_id) == col(Alert.id))
                             .where(col(AlertedOrder.order_id) == order_id).order_by(col(Alert.id)))).scalars().all()
    alerts = [alert_read(a) for a in rows]
    names = await lookup(db, [order.id, order.listing_id, order.asset_id, order.buyer_id, order.provider_id,
                              *(i for a in alerts for i in (*a["subjects"], *ids_in(a["evidence"])))])
    with_evidence(alerts, names, ctx.settings.zone)
    return {"order": order, "alerts": alerts, "status_label": STATUS_LABELS.get(order.status, order.status),
            "refs": {"order": names(order.id), "listing": names(order.listing_id), "asset": names(order.asset_id),
                     "buyer": names(order.buyer_id, "buyer"), "provider": names(order.provider_id, "provider")}}


def _query(values: dict[str, str], **more: str) -> str:
    return urlencode({**values, **{k: v for k, v in more.items() if v}})


class TradesController(Controller):
    path = PATH
    include_in_schema = False

    def _render(self, request: Request, session: Any, values: dict[str, str], status: int = 200,
                found: dict[str, Any] | None = None, error: str | None = None) -> Response[str]:
        return page(request, session, "trades", "trades.html", status=status, values=values, found=found,
                    error=error, query=_query(values), statuses=STATUS_LABELS, grades=GRADE_LABELS,
                    next_query=_query(values, cursor=(found or {}).get("next_cursor") or ""),
                    cursor=request.query_params.get("cursor", ""))

    @get("/trades")
    async def trades_page(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        values = chosen(request.query_params)
        try:
            found = await trade_page(db, Ctx.of(services, session.caller), values,
                                     request.query_params.get("cursor"))
        except DomainError as exc:
            return self._render(request, session, values, exc.status, error=exc.detail)
        return self._render(request, session, values, found=found)

    @get("/trades.csv")
    async def trades_csv(self, request: Request, db: AsyncSession, services: Services) -> Response[Any]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        Ctx.of(services, session.caller).user.require(Role.regulator, Role.operator)  # as the API
        values = chosen(request.query_params)
        try:
            filters = filters_of(values)
        except DomainError as exc:
            return self._render(request, session, values, exc.status, error=exc.detail)
        return Stream(trades.csv_chunks(services.read_sessionmaker, filters, trades.CSV_BATCH),
                      headers={**HEADERS, "Content-Type": "text/csv; charset=utf-8",
                               "Content-Disposition": 'attachment; filename="trades.csv"'})

    @get("/trades/{order_id:str}")
    async def trade(self, request: Request, db: AsyncSession, services: Services, order_id: str) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        found = await trade_detail(db, Ctx.of(services, session.caller), order_id)
        if found is None:
            return page(request, session, "trades", "trade.html", status=404, found=None, order_id=order_id)
        return page(request, session, "trades", "trade.html", found=found, order_id=order_id)
