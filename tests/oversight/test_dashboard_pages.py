"""The dashboard's pages read as a regulator reads them (docs/API.md ``GET /oversight``;
docs/oversight.md "Dashboard"): names with links instead of ids, money in yuan, times
in ``MARKET_TIMEZONE`` with their offset, alerts' evidence as a sentence and a table,
the trades page with the API's filters and its CSV behind the session, the provider
chart, the icon; a bad filter is a clear error and shows nothing.

The market of this module runs in ``Asia/Kolkata`` (UTC+05:30), not the default zone,
so a time shown in it can only come from the setting."""

import csv
import io
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from market.accounts import uscc
from market.oversight import dashboard_data, trades
from market.oversight.alerts import evaluate_once
from market.web.app import create_app
from market.wiring.bootstrap import create_staff_account
from tests.conftest import Parties, Party, make_settings
from tests.listings.support import listable_asset, publish
from tests.oversight.test_dashboard import HTTPS, sign_in
from tests.registry_support import Signer, add_key
from tests.regulator_acts import act
from tests.trading.support import FREE, ONE_TIME, pay_by_bank, place

ZONE = "Asia/Kolkata"
IDS = re.compile(r"\b(acct|ast|lst|ord)_[0-9A-Za-z]{6,}")


@dataclass
class Day:
    """A trading day: two providers, buyers, settled trades, an order waiting for the
    regulator, and the alerts they raise (identifiable PI, burst, related parties, a
    refused export)."""

    provider: Signer
    health: Signer
    buyer: Signer
    research: Signer
    related: Signer
    listing: dict[str, Any]
    pi_listing: dict[str, Any]
    important: dict[str, Any]
    paid: dict[str, Any]
    free: dict[str, Any]
    pi_sale: dict[str, Any]
    waiting: dict[str, Any]
    related_order: dict[str, Any]


async def _party(client: Any, parties: Parties, roles: list[str], name: str, region: str | None = None,
                 **extra: Any) -> Signer:
    """A verified party with a key; ``region``: the 行政区划 code its USCC carries."""
    if region is not None:
        body = "91" + region + "".join(secrets.choice(uscc.ALPHABET) for _ in range(9))
        extra["uscc"] = body + uscc.check_character(body)
    return await add_key(client, await parties.verified(roles, name=name, **extra))


async def trading_day(client: Any, parties: Parties, operator: Party) -> Day:
    """Built through the API as the parties would (``MARKET_ORDER_BURST_COUNT`` 2 makes
    the buyer's third order a burst)."""
    provider = await _party(client, parties, ["provider"], "深圳交通数据有限公司", region="440300")
    health = await _party(client, parties, ["provider"], "杭州健康医疗数据有限公司", region="330100")
    buyer = await _party(client, parties, ["buyer"], "上海数据科技有限公司")
    research = await _party(client, parties, ["buyer"], "北京城市规划研究院")
    related = await _party(client, parties, ["buyer"], "深圳交通数据关联采购有限公司",
                           controller_uscc=provider.party.body["uscc"])
    foreign = await _party(client, parties, ["buyer"], "Global Data Inc.", jurisdiction="US")
    asset = await listable_asset(client, provider, operator, title="深圳公交刷卡数据 2026Q3")
    listing = await publish(client, provider, asset["id"], title="深圳交通出行数据", plans=[ONE_TIME, FREE])
    pi_asset = await listable_asset(client, health, operator, title="杭州门诊就诊记录", category="healthcare",
                                    personal_info="identifiable", legal_basis="个人信息主体的单独同意")
    pi_listing = await publish(client, health, pi_asset["id"], title="杭州门诊就诊记录（可识别）", plans=[FREE])
    big = {"model": "one_time", "price": {"amount": 1_500_000, "currency": "CNY"}}
    important_asset = await listable_asset(client, provider, operator, title="深圳重点区域客流数据", grade="important")
    important = await publish(client, provider, important_asset["id"], title="深圳重点区域客流", plans=[big])
    paid = await place(client, buyer, listing, "one_time")
    r = await pay_by_bank(client, operator, paid, reference=f"CMB-{secrets.token_hex(4)}")
    assert r.status_code == 200, r.text
    free = await place(client, buyer, listing, "free")
    pi_sale = await place(client, buyer, pi_listing, "free")
    waiting = await place(client, research, important, "one_time")
    related_order = await place(client, related, listing, "free")
    refused = await client.post("/v1/orders", headers=foreign.auth, json={
        "listing_id": listing["id"], "plan_id": next(p["id"] for p in listing["plans"] if p["model"] == "free"),
        "purpose": "research", "payment_method": "free"})
    assert refused.status_code == 403, refused.text
    return Day(provider, health, buyer, research, related, listing, pi_listing, important, paid, free, pi_sale,
               waiting, related_order)


@dataclass
class Market:
    client: AsyncTestClient
    parties: Parties
    operator: Party
    regulator: Party
    state: Any
    day: Day


@pytest.fixture(scope="module")
async def market(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Market]:
    """A market of its own in another zone, without background tasks (so the statements
    counted are the page's own); the evaluator is run by hand."""
    settings = make_settings(tmp_path_factory.mktemp("dashboard-pages"), await databases.new(), timezone=ZONE,
                             order_burst_count=2, background_tasks=False)
    token = await create_staff_account(settings, "Operator", "operator")
    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url=HTTPS) as client:
        r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
        operator = Party(r.json()["id"], token, r.json())
        parties = Parties(client, settings, operator)
        regulator = await parties.regulator("国家数据局监管处")
        day = await trading_day(client, parties, operator)
        client.blocking_portal.call(evaluate_once, app.state.services)  # the app runs on the client's own loop
        yield Market(client, parties, operator, regulator, app.state.services, day)


def visible(html: str) -> str:
    """The page's text as a person sees it: no tags, no attributes."""
    body = html.split("<main>", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def local(rfc3339: str) -> str:
    """An API time as the page should show it in the module's zone."""
    at = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(ZoneInfo(ZONE))
    return at.strftime("%Y-%m-%d %H:%M:%S") + " UTC+05:30"


async def signed_in(m: Market) -> AsyncTestClient:
    assert (await sign_in(m.client, m.regulator)).status_code == 303
    return m.client


async def api_order(m: Market, order: dict[str, Any]) -> dict[str, Any]:
    r = await m.client.get(f"/v1/orders/{order['id']}", headers=m.regulator.auth)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# --- the trades page ---------------------------------------------------------------------

async def test_trades_page_shows_names_yuan_and_local_times(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await client.get("/oversight/trades")
    assert r.status_code == 200, r.text
    text = visible(r.text)
    for name in ("深圳交通数据有限公司", "上海数据科技有限公司", "北京城市规划研究院", "深圳公交刷卡数据 2026Q3",
                 "深圳交通出行数据", "杭州门诊就诊记录"):
        assert name in text, name
    assert IDS.search(text) is None, IDS.search(text)  # ids only in links and titles
    # Every amount in yuan with two decimals and the unit: the one-time plan is 880000 fen.
    assert "8,800.00 CNY" in text and "440.00 CNY" in text and "0.00 CNY" in text  # price, 5 % fee, free
    assert "880000" not in text and "1500000" not in text
    assert "15,000.00 CNY" in text  # the important order waiting for approval
    # Times in the market's zone, with the offset.
    paid = await api_order(m, d.paid)
    assert local(paid["created_at"]) in text and local(paid["settled_at"]) in text
    # Names link to the dashboard's pages (parties' trades, the order) or the JSON API.
    assert f'href="/oversight/trades?provider={d.provider.id}"' in r.text
    assert f'href="/oversight/trades?buyer={d.buyer.id}"' in r.text
    assert f'href="/oversight/trades/{d.paid["id"]}"' in r.text
    assert f'href="/v1/assets/{d.listing["asset_id"]}"' in r.text
    assert f'href="/v1/listings/{d.listing["id"]}"' in r.text
    assert 'id="csv-download" href="/oversight/trades.csv"' in r.text


async def test_trades_page_filters_as_the_api(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)

    async def shown(**params: str) -> set[str]:
        r = await client.get("/oversight/trades", params=params)
        assert r.status_code == 200, r.text
        return set(re.findall(r'<tr class="trade" data-order="([^"]+)"', r.text))

    async def api(**params: str) -> set[str]:
        r = await client.get("/v1/oversight/trades", params={**params, "limit": 500}, headers=m.regulator.auth)
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["items"]}

    everything = {d.paid["id"], d.free["id"], d.pi_sale["id"], d.waiting["id"], d.related_order["id"]}
    assert await shown() == await api() == everything
    today = d.paid["created_at"][:10]
    cases: list[dict[str, str]] = [
        {"provider": d.provider.id}, {"provider": d.health.id}, {"buyer": d.buyer.id},
        {"category": "healthcare"}, {"grade": "important"}, {"status": "active"},
        {"status": "pending_approval"}, {"alerted": "true"}, {"alerted": "false"},
        {"from": today}, {"to": today}, {"provider": d.provider.id, "buyer": d.buyer.id, "status": "active"},
    ]
    for params in cases:
        assert await shown(**params) == await api(**params), params
    assert await shown(provider=d.health.id) == {d.pi_sale["id"]}
    assert await shown(grade="important") == {d.waiting["id"]}
    assert await shown(to=today) == set()
    assert d.pi_sale["id"] in await shown(alerted="true")
    # The chosen party is named above the table; the form keeps the filters.
    r = await client.get("/oversight/trades", params={"provider": d.provider.id, "status": "active"})
    assert "供方 Provider: " in visible(r.text) and "深圳交通数据有限公司" in visible(r.text)
    assert '<option value="active" selected>' in r.text
    assert f'href="/oversight/trades.csv?provider={d.provider.id}&amp;status=active"' in r.text


async def test_trades_page_pages_with_the_api_cursor(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    from market.oversight import dashboard_trades

    client = await signed_in(market)
    monkeypatch.setattr(dashboard_trades, "PAGE_SIZE", 2)
    seen: list[str] = []
    url = "/oversight/trades?buyer=" + market.day.buyer.id
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        rows = re.findall(r'<tr class="trade" data-order="([^"]+)"', r.text)
        assert 1 <= len(rows) <= 2
        seen += rows
        found = re.search(r'href="(/oversight/trades\?[^"]+)" id="next-page"', r.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == sorted({market.day.paid["id"], market.day.free["id"], market.day.pi_sale["id"]})


@pytest.mark.parametrize(("params", "said"), [
    ({"status": "settled-ish"}, "status must be one of"),
    ({"alerted": "maybe"}, "alerted must be true or false"),
    ({"from": "2026-13-01"}, "from must be a date YYYY-MM-DD"),
    ({"to": "yesterday"}, "to must be a date YYYY-MM-DD"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "must be before to"),
    ({"cursor": "!!not-a-cursor"}, "cursor is not one this API gave out"),
])
async def test_a_bad_filter_is_a_clear_error_and_shows_nothing(market: Market, params: dict[str, str],
                                                                said: str) -> None:
    client = await signed_in(market)
    r = await client.get("/oversight/trades", params=params)
    assert r.status_code == 422, r.text
    assert said in r.text and "筛选条件有误" in r.text and "A filter is not valid" in r.text
    assert 'id="trades"' not in r.text and 'id="csv-download"' not in r.text
    # The form keeps what was typed, so it can be corrected (the cursor is not typed).
    for name, value in params.items():
        assert name == "cursor" or f'value="{value}"' in r.text
    if "cursor" not in params:
        r = await client.get("/oversight/trades.csv", params=params)
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), r.headers
        assert said in r.text and "buyer_name" not in r.text


# --- the CSV -----------------------------------------------------------------------------

async def test_the_csv_is_the_apis_csv_of_the_same_filters(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    for params in ({}, {"provider": d.provider.id}, {"status": "active", "alerted": "true"}):
        r = await client.get("/oversight/trades.csv", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"] == 'attachment; filename="trades.csv"'
        assert r.headers["cache-control"] == "no-store"
        api = await client.get("/v1/oversight/trades", params=params,
                               headers={**m.regulator.auth, "Accept": "text/csv"})
        assert api.status_code == 200 and r.content == api.content, params
    rows = list(csv.DictReader(io.StringIO((await client.get("/oversight/trades.csv", params={
        "provider": d.provider.id})).content.decode("utf-8-sig"))))
    assert list(rows[0]) == list(trades.COLUMNS)
    assert {row["id"] for row in rows} == {d.paid["id"], d.free["id"], d.waiting["id"], d.related_order["id"]}
    assert {row["provider_name"] for row in rows} == {"深圳交通数据有限公司"}


async def test_the_csv_needs_a_regulators_session(market: Market) -> None:
    m = market
    client = m.client
    # No session: to sign-in, nothing streamed; a bearer token is no dashboard session.
    client.cookies.clear()
    for headers in ({}, m.operator.auth, m.regulator.auth):
        r = await client.get("/oversight/trades.csv", headers=headers, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/oversight", r.text
        assert "text/csv" not in r.headers.get("content-type", "")
        r = await client.get("/oversight/trades", headers=headers, follow_redirects=False)
        assert r.status_code == 303
    # A regulator's session whose account is then suspended may no longer read: 403.
    other = await m.parties.regulator("被暂停的监管员")
    assert (await sign_in(client, other)).status_code == 303
    assert (await client.get("/oversight/trades.csv")).status_code == 200
    saved = dict(client.cookies)
    client.cookies.clear()
    r = await act(client, m.regulator, "action", None, {"action": "suspend_account", "target": other.id,
                                                       "reason": "调岗 reassigned"})
    assert r.status_code == 201, r.text
    for name, value in saved.items():
        client.cookies.set(name, value, path="/oversight")
    for path in ("/oversight/trades.csv", "/oversight/trades", "/oversight/alerts", "/oversight"):
        r = await client.get(path, follow_redirects=False)
        assert r.status_code == 403, (path, r.status_code)
        assert "此账户已被暂停" in r.text and "buyer_name" not in r.text and "深圳交通数据有限公司" not in r.text
    client.cookies.clear()


# --- names, evidence, money and times on the other pages ---------------------------------

async def test_alerts_show_names_and_evidence_as_sentences(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await client.get("/oversight/alerts")
    assert r.status_code == 200, r.text
    text = visible(r.text)
    assert IDS.search(text) is None, IDS.search(text)
    assert '{"' not in text  # no raw JSON
    rules = set(re.findall(r'data-rule="([a-z_]+)"', r.text))
    assert {"identifiable_pi_sale", "order_burst", "self_dealing", "refused_attempt"} <= rules, rules
    settled = (await api_order(m, d.pi_sale))["settled_at"]
    assert (f"买方 上海数据科技有限公司 向供方 杭州健康医疗数据有限公司 购买了含可识别个人信息的资产《杭州门诊就诊记录》"
            f"（用途：research），于 {local(settled)} 结算") in text
    assert ("Buyer 上海数据科技有限公司 bought 杭州门诊就诊记录, which holds identifiable personal information, "
            "from provider 杭州健康医疗数据有限公司") in text
    assert "买方 上海数据科技有限公司 在 1 小时内下单至少 3 笔（阈值 2）" in text
    assert "Buyer 上海数据科技有限公司 placed at least 3 orders within 1h (threshold 2)" in text
    assert "买方 深圳交通数据关联采购有限公司 与供方 深圳交通数据有限公司 为关联方（供方控制买方）" in text
    assert "账户 Global Data Inc. 的 1 次尝试被拒绝（不允许出境），资产《深圳公交刷卡数据 2026Q3》" in text
    # The evidence's fields as a table, ids as links; times in the zone.
    assert "<th>买方 Buyer</th>" in r.text and f'href="/oversight/trades/{d.pi_sale["id"]}"' in r.text
    assert "UTC+05:30" in text and "Z<" not in r.text.split("<main>")[1]


async def test_approvals_show_yuan_not_fen_and_names(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await client.get("/oversight/approvals")
    assert r.status_code == 200, r.text
    text = visible(r.text)
    assert "15,000.00 CNY" in text and "1500000" not in text
    assert "北京城市规划研究院" in text and "深圳交通数据有限公司" in text and "深圳重点区域客流" in text
    assert IDS.search(text) is None, IDS.search(text)
    assert local(d.waiting["created_at"]) in text
    assert f'action="/oversight/approvals/{d.waiting["id"]}"' in r.text  # the form still decides this order


async def test_trade_page_shows_the_order_and_its_alerts(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await client.get(f"/oversight/trades/{d.pi_sale['id']}")
    assert r.status_code == 200, r.text
    text = visible(r.text)
    assert "杭州门诊就诊记录" in text and "上海数据科技有限公司" in text and "杭州健康医疗数据有限公司" in text
    assert "可识别个人信息交易" in text and "0.00 CNY" in text
    assert f'href="/oversight/actions?target={d.pi_listing["asset_id"]}"' in r.text
    paid = await client.get(f"/oversight/trades/{d.paid['id']}")
    assert "8,800.00 CNY" in visible(paid.text) and "8,360.00 CNY" in visible(paid.text)  # price, provider's share
    missing = await client.get("/oversight/trades/ord_nosuchorder")
    assert missing.status_code == 404 and "没有此订单" in missing.text


async def test_actions_and_refusals_name_their_targets(market: Market) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await act(client, m.regulator, "action", None, {"action": "freeze_listing", "target": d.pi_listing["id"],
                                                       "reason": "核查可识别个人信息"})
    assert r.status_code == 201, r.text
    page = await client.get("/oversight/actions")
    text = visible(page.text)
    assert "冻结挂牌 Freeze listing" in text and "杭州门诊就诊记录（可识别）" in text and "国家数据局监管处" in text
    assert IDS.search(text) is None, IDS.search(text)
    assert local(r.json()["created_at"]) in text
    refusals = await client.get("/oversight/refusals")
    text = visible(refusals.text)
    assert "Global Data Inc." in text and "深圳交通出行数据" in text and "不允许出境 Export not allowed" in text
    assert IDS.search(text) is None, IDS.search(text)


async def test_overview_charts_providers_by_name_and_regions(market: Market,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    m, d = market, market.day
    client = await signed_in(m)
    r = await client.get("/oversight")
    assert r.status_code == 200, r.text
    assert r.text.count('<figure class="chart"') == 5
    chart = r.text.split('id="chart-provider"', 1)[1].split("</figure>", 1)[0]
    assert "按供方成交量 Orders by provider" in chart and "深圳交通数据有限公司" in chart
    assert "杭州健康医疗数据有限公司" in chart and f'<a href="/oversight/trades?provider={d.provider.id}">' in chart
    assert IDS.search(visible(chart)) is None
    assert "8,800.00 CNY" in visible(r.text)  # the value settled
    region = d.provider.party.body["uscc"][2:8]
    assert region == "440300"
    regions = r.text.split('id="chart-region"', 1)[1].split("</figure>", 1)[0]
    assert "深圳市" in regions and f">{region}<" not in regions  # the name, from the shipped GB/T 2260 table
    monkeypatch.setattr(dashboard_data, "_region_name", lambda code: None)  # a code the table does not know
    regions = (await client.get("/oversight")).text.split('id="chart-region"', 1)[1].split("</figure>", 1)[0]
    assert region in regions


async def test_ledger_times_in_the_zone(market: Market) -> None:
    client = await signed_in(market)
    r = await client.get("/oversight/ledger")
    assert r.status_code == 200 and "Asia/Kolkata" in r.text


async def test_pages_read_names_in_batches(market: Market) -> None:
    """The statements a page runs do not grow with its rows (no query per id): the same
    pages, with every kind of id already on them, read again with twice the rows."""
    m = market
    client = await signed_in(m)

    async def actions_on(day: Day) -> None:
        for action, target in (("freeze_asset", day.pi_listing["asset_id"]), ("freeze_listing", day.listing["id"]),
                               ("suspend_account", day.related.id)):
            r = await act(client, m.regulator, "action", None, {"action": action, "target": target, "reason": "x"})
            assert r.status_code == 201, r.text

    counted: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counted.append(statement)

    async def statements(path: str) -> tuple[int, int]:
        counted.clear()
        r = await client.get(path)
        assert r.status_code == 200, r.text
        return len(counted), r.text.count("<tr")

    await actions_on(m.day)
    engines = {id(e.sync_engine): e.sync_engine for e in (m.state.engine, m.state.read_engine)}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        paths = ("/oversight/alerts", "/oversight/trades", "/oversight/actions", "/oversight/approvals",
                 "/oversight/refusals", "/oversight")
        before = {path: await statements(path) for path in paths}
        second = await trading_day(client, m.parties, m.operator)  # a second day: twice the rows
        client.blocking_portal.call(evaluate_once, m.state)
        await actions_on(second)
        for path, (n, rows) in before.items():
            after, more = await statements(path)
            assert after == n, (path, n, counted)
            assert more > rows or path == "/oversight", path
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


# --- the page itself ---------------------------------------------------------------------

async def test_full_width_and_an_icon(market: Market) -> None:
    client = market.client
    r = await client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00" and b"PNG" in r.content[:40]
    svg = await client.get("/oversight/static/favicon.svg")
    assert svg.status_code == 200 and "<svg" in svg.text
    page = await client.get("/oversight")
    assert '<link rel="icon" href="/oversight/static/favicon.svg"' in page.text
    css = (await client.get("/oversight/static/dashboard.css")).text
    main = re.search(r"\nmain \{([^}]*)\}", css)
    assert main and "max-width" not in main.group(1)


def test_the_zone_setting(tmp_path: Any) -> None:
    from pydantic import ValidationError

    from market.core.config import Settings

    assert Settings(_env_file=None).timezone == "Asia/Shanghai"  # type: ignore[call-arg]
    assert str(Settings(_env_file=None, timezone="UTC").zone) == "UTC"  # type: ignore[call-arg]
    for bad in ("Mars/Olympus", "Asia", "asia/shanghai", "", "../../etc/passwd"):
        with pytest.raises(ValidationError, match="is not a time zone of the IANA database"):
            Settings(_env_file=None, timezone=bad)  # type: ignore[call-arg]


def test_a_bad_zone_stops_the_market_at_start(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MARKET_DATA_DIR": str(tmp_path), "MARKET_TIMEZONE": "Asia/Beijing"}
    r = subprocess.run([sys.executable, "-m", "market.tools.cli", "serve", "--port", "1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "MARKET_TIMEZONE" in r.stderr and "'Asia/Beijing' is not a time zone" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "market.db").exists()  # stopped before anything was made


def test_evidence_of_every_rule() -> None:
    """The shapes ``market.oversight.alerts`` writes, as sentences and tables."""
    from market.oversight.dashboard_evidence import describe
    from market.oversight.dashboard_names import Names, Ref, account_ref

    zone = ZoneInfo("Asia/Shanghai")
    names = Names({"acct_aaaaaaaa": ("甲公司", "buyer,provider"), "acct_bbbbbbbb": ("乙公司", "buyer,provider")},
                  {"ord_11111111": Ref("ord_11111111", "order", "交通数据", "/oversight/trades/ord_11111111",
                                       account_ref("acct_aaaaaaaa", "甲公司", side="buyer"),
                                       account_ref("acct_bbbbbbbb", "乙公司", side="provider")),
                   "ast_11111111": Ref("ast_11111111", "asset", "交通资产", "/v1/assets/ast_11111111")})
    wash = describe("wash_trade", {
        "window": "30d",
        "first": {"order": "ord_11111111", "buyer": "acct_aaaaaaaa", "provider": "acct_bbbbbbbb",
                  "settled_at": "2026-03-01T16:30:00.000000Z"},
        "second": {"order": "ord_22222222", "buyer": "acct_bbbbbbbb", "provider": "acct_aaaaaaaa",
                   "settled_at": "2026-03-02T01:00:00.000000Z"}}, names, zone)
    assert wash.zh == ("甲公司 向 乙公司 购买，乙公司 又向 甲公司 购买，两次结算相隔不超过 30 天"
                       "（2026-03-02 00:30:00 UTC+08:00、2026-03-02 09:00:00 UTC+08:00）")
    assert wash.en.startswith("甲公司 bought from 乙公司 and 乙公司 bought from 甲公司, the two settlements within 30d")
    labels = {row.label: row.cell for row in wash.rows}
    assert labels["第二笔订单 Second order"].value.label == "ord_22222222"  # unknown: shown as its id
    assert labels["第一笔买方 First buyer"].value.href == "/oversight/trades?buyer=acct_aaaaaaaa"
    outlier = describe("price_outlier", {"order": "ord_11111111", "category": "transport", "currency": "CNY",
                                         "price": 1_000_000, "median": 150_000.5, "sample": 4, "factor": 5,
                                         "direction": "above"}, names, zone)
    assert outlier.zh == ("订单《交通数据》的价格 10,000.00 CNY 高于 transport 类此前 4 笔成交中位数 1,500.005 CNY 的 5 倍"
                          "（为中位数的 6.7 倍）")
    assert "Order \"交通数据\" at 10,000.00 CNY is above 5× the median 1,500.005 CNY of 4 earlier trades" in outlier.en
    below = describe("price_outlier", {"order": "ord_11111111", "category": "transport", "currency": "CNY",
                                       "price": 1_000, "median": 100_000, "sample": 3, "factor": 5,
                                       "direction": "below"}, names, zone)
    assert "低于 transport 类此前 3 笔成交中位数 1,000.00 CNY 的 1/5（为中位数的 0.0 倍）" in below.zh
    burst = describe("order_burst", {"buyer": "acct_aaaaaaaa", "more_than": 20, "window": "1h",
                                     "orders": ["ord_11111111"] * 25, "until": "2026-03-01T00:00:00.000000Z"},
                     names, zone)
    assert burst.zh.startswith("买方 甲公司 在 1 小时内下单至少 25 笔（阈值 20）")
    exact = describe("order_burst", {"buyer": "acct_aaaaaaaa", "more_than": 30, "window": "90m",
                                     "orders": ["ord_11111111"] * 25, "until": "2026-03-01T00:00:00.000000Z"},
                     names, zone)
    assert exact.en.startswith("Buyer 甲公司 placed 25 orders within 90min (threshold 30)")
    # A shape this page does not know: every field, no sentence, nothing lost.
    odd = describe("order_burst", {"buyer": "acct_aaaaaaaa", "count": 3}, names, zone)
    assert odd.zh == "" and [row.label for row in odd.rows] == ["buyer", "count"]
    assert odd.rows[0].cell.value.label == "甲公司"
    new_rule = describe("some_future_rule", {"asset": "ast_11111111", "opened_at": "2026-03-01T00:00:00Z"},
                        names, zone)
    assert new_rule.rows[0].cell.value.label == "交通资产" and new_rule.rows[1].cell.kind == "time"


def test_money_and_moments() -> None:
    from market.oversight.dashboard_format import amount, moment, money_filter

    assert money_filter({"amount": 1_500_000, "currency": "CNY"}) == "15,000.00 CNY"
    assert money_filter(5, "CNY") == "0.05 CNY" and money_filter(None) == "—"
    assert amount(123_456_789_012_345_678_901, "CNY") == "1,234,567,890,123,456,789.01 CNY"  # no float rounding
    assert amount(-1, "CNY") == "-0.01 CNY" and amount(150_000.5, "CNY") == "1,500.005 CNY"
    assert moment("2026-03-01T16:30:00.123456Z", ZoneInfo("Asia/Shanghai")) == "2026-03-02 00:30:00 UTC+08:00"
    assert moment("2026-07-01T12:00:00Z", ZoneInfo("America/New_York")) == "2026-07-01 08:00:00 UTC-04:00"
    assert moment(None, ZoneInfo("UTC")) == "—" and moment("not a time", ZoneInfo("UTC")) == "not a time"
