"""The oversight services' answers shaped for the dashboard's pages (``market.oversight.dashboard``):
lists capped for a page, with a name and a link for every id they show (looked up once
per page, ``dashboard_names``), charts as data for the SVG templates, and the form
actions, which go through the JSON API's own input schemas and services."""


from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.services import Services
from market.oversight import actions as oversight_actions
from market.oversight import alerts as oversight_alerts
from market.oversight import ledger_status as ledger_module
from market.oversight import stats, trades
from market.oversight.dashboard_evidence import describe
from market.oversight.dashboard_format import money
from market.oversight.dashboard_names import Names, account_ref, ids_in, lookup
from market.registry import regions

# --- the data: the oversight services, shaped for the pages -----------------------------

ACTION_NAMES = tuple(oversight_actions.ACTIONS)
ACTION_LABELS = {
    "freeze_asset": "冻结资产 Freeze asset", "unfreeze_asset": "解冻资产 Unfreeze asset",
    "freeze_listing": "冻结挂牌 Freeze listing", "unfreeze_listing": "解冻挂牌 Unfreeze listing",
    "suspend_account": "暂停账户 Suspend account", "reinstate_account": "恢复账户 Reinstate account",
    "revoke_registration": "撤销登记 Revoke registration"}
REFUSAL_KINDS = {"export-not-allowed": "不允许出境 Export not allowed", "core-data-refused": "核心数据 Core data",
                 "self-dealing": "自我交易 Self-dealing"}
LIST_CAP = 2000  # rows read from a list service for one page (newest shown first)
SHOWN = 200
CHART_W, CHART_H = 640, 220


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    text: str  # the value as shown
    x: float
    y: float
    w: float
    h: float
    href: str | None = None


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    bars: list[Bar]
    width: int
    height: int
    horizontal: bool
    empty: bool


def _region_name(code: str) -> str | None:
    """The name of a 行政区划 code (GB/T 2260, shipped with the market); None for a code it
    does not know (the page shows the code)."""
    return regions.name(code)


def _shown(orders: int, value: int, currency: str) -> str:
    return f"{orders} 笔 orders · {money(value, currency)}"


def columns(chart_id: str, title: str, points: list[tuple[str, int, int]], currency: str) -> Chart:
    """A column chart (one column per day; height: orders settled), geometry in SVG units."""
    top = max((n for _, n, _ in points), default=0) or 1
    count = max(len(points), 1)
    plot_h = CHART_H - 40
    step = (CHART_W - 60) / count
    bars = []
    for i, (label, orders, value) in enumerate(points):
        h = plot_h * orders / top
        bars.append(Bar(label, orders, _shown(orders, value, currency), 50 + i * step + step * 0.1, 10 + plot_h - h,
                        max(step * 0.8, 1), h))
    return Chart(chart_id, title, bars, CHART_W, CHART_H, False, not any(n for _, n, _ in points))


def rows_chart(chart_id: str, title: str, points: list[tuple[str, int, int]], currency: str,
               links: list[str | None] | None = None) -> Chart:
    """A bar chart (one row per key, as ordered by the service: highest value first);
    ``links``: where each bar leads (same order as ``points``)."""
    points = points[:12]
    hrefs = (links or [])[:12] + [None] * (len(points) - len(links or []))
    top = max((n for _, n, _ in points), default=0) or 1
    row = 26
    height = max(len(points), 1) * row + 10
    bars = [Bar(label, orders, _shown(orders, value, currency), 170, 5 + i * row,
                max((CHART_W - 380) * orders / top, 1), 18, hrefs[i])
            for i, (label, orders, value) in enumerate(points)]
    return Chart(chart_id, title, bars, CHART_W, height, True, not points)


async def overview_data(db: AsyncSession, ctx: Ctx, start: str | None, end: str | None,
                        currency: str) -> dict[str, Any]:
    """``stats.overview`` (what ``GET /v1/oversight/overview`` answers) for one currency,
    with its five charts; the day series has a column for every day of the period;
    providers by name (one lookup), regions by name where known."""
    found = await stats.overview(db, ctx, start, end, currency)
    total = found["totals"]["by_currency"].get(currency, {})
    series = found["series"]
    by_day = {p["key"]: (p["orders"], p["value"]) for p in series["day"].get(currency, [])}
    first, last = date.fromisoformat(found["from"]), date.fromisoformat(found["to"])
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]

    def keyed(dim: str, blank: str) -> list[tuple[str, int, int]]:
        return [(p["key"] or blank, p["orders"], p["value"]) for p in series[dim].get(currency, [])]

    providers = series["provider"].get(currency, [])[:12]
    names = await lookup(db, [p["key"] for p in providers])
    by_provider = [names(p["key"], "provider") for p in providers]
    regions = [((_region_name(p["key"]) or p["key"]) if p["key"] else "未知 unknown", p["orders"], p["value"])
               for p in series["region"].get(currency, [])]

    return {
        "from": found["from"], "to": found["to"], "last_day": (last - timedelta(days=1)).isoformat(),
        "currency": currency,
        "totals": {"orders": total.get("orders", 0), "value": money(total.get("value", 0), currency),
                   "refunds": total.get("refunds", 0),
                   "refunded_value": money(total.get("refunded_value", 0), currency),
                   "buyers": total.get("buyers", 0), "providers": total.get("providers", 0),
                   "registrations": found["totals"]["registrations"]},
        "charts": [
            columns("chart-day", "按日成交量 Orders by day", [(d, *by_day.get(d, (0, 0))) for d in days],
                    currency),
            rows_chart("chart-category", "按类别成交量 Orders by category", keyed("category", "—"), currency),
            rows_chart("chart-grade", "按分级成交量 Orders by grade", keyed("grade", "—"), currency),
            rows_chart("chart-provider", "按供方成交量 Orders by provider",
                       [(ref.label if ref else "—", p["orders"], p["value"]) for ref, p in zip(by_provider, providers,
                                                                                              strict=True)],
                       currency, [ref.href if ref else None for ref in by_provider]),
            rows_chart("chart-region", "按地区成交量 Orders by region (行政区划)", regions, currency),
        ],
    }


async def _walk(fetch: Any) -> list[dict[str, Any]]:
    """Every item of a paged service (oldest first), up to ``LIST_CAP``; newest first."""
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < LIST_CAP:
        found = await fetch(500, cursor)
        items += found["items"]
        cursor = found["next_cursor"]
        if cursor is None:
            break
    return items[::-1][:SHOWN]


def with_evidence(items: list[dict[str, Any]], names: Names, zone: tzinfo) -> list[dict[str, Any]]:
    """Alerts with their subjects named and their evidence described (``describe``)."""
    for item in items:
        item["subject_refs"] = [names(s) for s in item["subjects"]]
        item["described"] = describe(item["rule"], item["evidence"], names, zone)
    return items


async def alert_list(db: AsyncSession, ctx: Ctx, status: str, zone: tzinfo) -> list[dict[str, Any]]:
    items = await _walk(lambda limit, cursor: oversight_alerts.list_alerts(db, ctx, status, None, limit, cursor))
    names = await lookup(db, [i for item in items for i in (*item["subjects"], *ids_in(item["evidence"]),
                                                           item["closed_by"])])
    for item in items:
        item["closed_by_ref"] = names(item["closed_by"])
    return with_evidence(items, names, zone)


async def approval_list(db: AsyncSession, ctx: Ctx) -> list[dict[str, Any]]:
    items = await _walk(lambda limit, cursor: oversight_actions.approvals(db, ctx, limit, cursor))
    names = await lookup(db, [i for o in items for i in (o["id"], o["buyer"], o["provider"], o["listing_id"],
                                                        o["asset_id"])])
    for o in items:
        o["refs"] = {"order": names(o["id"]), "buyer": names(o["buyer"], "buyer"),
                     "provider": names(o["provider"], "provider"), "listing": names(o["listing_id"]),
                     "asset": names(o["asset_id"])}
    return items


async def refusal_list(db: AsyncSession, ctx: Ctx) -> list[dict[str, Any]]:
    items = await _walk(lambda limit, cursor: trades.refusals(db, ctx, None, limit, cursor))
    names = await lookup(db, [i for r in items for i in (r["listing"], r["asset"])])
    for r in items:
        side = "provider" if r["kind"] == "core-data-refused" else "buyer"  # a claim, else an order
        r["refs"] = {"account": account_ref(r["account"]["id"], r["account"]["name"], side=side),
                     "listing": names(r["listing"]), "asset": names(r["asset"])}
        r["kind_label"] = REFUSAL_KINDS.get(r["kind"], r["kind"])
    return items


async def action_list(db: AsyncSession, ctx: Ctx) -> list[dict[str, Any]]:
    items = await _walk(lambda limit, cursor: oversight_actions.list_actions(db, ctx, None, None, limit, cursor))
    names = await lookup(db, [i for a in items for i in (a["target"], a["actor"])])
    for a in items:
        a["refs"] = {"target": names(a["target"]), "actor": names(a["actor"])}
        a["label"] = ACTION_LABELS.get(a["action"], a["action"])
    return items


async def ledger_status(db: AsyncSession, ctx: Ctx, services: Services) -> dict[str, Any]:
    """What ``GET /v1/oversight/ledger`` answers, and the signed checkpoint."""
    found = await ledger_module.status(db, ctx, services.ledger)
    checkpoint = await services.ledger.checkpoint(db)
    return {**found, "checkpoint": checkpoint.text}


def signed_form(form: Any) -> dict[str, str]:
    """The signed act a dashboard form carries (filled in by the page's script), as the
    JSON routes take it; a form without one is refused by ``acts.accept`` (unsigned-act)."""
    return {k: str(form.get(k)) for k in ("signing_bytes", "key_id", "signature") if form.get(k)}


async def perform_action(db: AsyncSession, ctx: Ctx, signed: dict[str, str]) -> dict[str, Any]:
    """Exactly ``POST /v1/oversight/actions``: the same signed act, ``actions.perform``;
    the action taken (``action``, ``target``, …)."""
    return await oversight_actions.perform(db, ctx, signed)


async def close_alert_data(db: AsyncSession, ctx: Ctx, alert_id: str, signed: dict[str, str]) -> None:
    await oversight_alerts.close(db, ctx, alert_id, signed)


async def decide_order(db: AsyncSession, ctx: Ctx, order_id: str, signed: dict[str, str]) -> None:
    await oversight_actions.decide_approval(db, ctx, order_id, signed)
