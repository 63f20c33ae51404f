"""The dashboard in a real browser against a real ``market serve``: a regulator opens its
key file through the file chooser and signs in (the page signs the challenge with
WebCrypto Ed25519; the key never leaves the page), sees the charts and an alert raised by
the market's clock, freezes an asset from the page (the act drafted and signed in the
page), and the asset's listing is gone from search; after sign-out the saved cookie is
refused. A second test reads a trading day: names and yuan on the trades page, the CSV
downloaded through the browser (all trades, then one provider's), a trade, the alerts'
evidence, the approvals.

Chromium is Debian's (``apt-get install -y chromium fonts-noto-cjk``; ``.ci/run`` does
it): Playwright's own browser download does not work here. Screenshots are kept under
pytest's ``tmp_path`` and, when ``MARKET_TEST_ARTIFACTS`` is set, copied there; the
trading day's pictures are also copied to ``MARKET_SCREENSHOTS`` when it is set
(``MARKET_SCREENSHOTS=docs/screenshots`` renews the ones in the docs).
"""

import asyncio
import csv
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from market.oversight import trades
from tests.conftest import Parties, Party, make_settings
from tests.listings.support import word
from tests.oversight.test_dashboard_pages import IDS, trading_day
from tests.serving import serving
from tests.trading.support import buyer, offer, place

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")


def _browser_or_skip() -> Any:
    """Playwright's async API, or an explicit skip saying what is missing and why."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser test NOT RUN: {CHROMIUM} not installed; .ci/run installs it "
                    "(apt-get install -y chromium fonts-noto-cjk)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("browser test NOT RUN: the playwright package is missing; pip install -e '.[test]'")
    return async_playwright


class Shots:
    """Screenshots: written under ``tmp_path``, copied to ``MARKET_TEST_ARTIFACTS`` if set."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "screenshots"
        self.dir.mkdir()
        self.paths: list[Path] = []

    async def take(self, page: Any, name: str, keep: bool = False) -> None:
        """A full-page screenshot; ``keep``: one of the pictures of docs/screenshots, also
        copied to ``MARKET_SCREENSHOTS`` when it is set."""
        path = self.dir / f"oversight-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        for variable in ("MARKET_TEST_ARTIFACTS", *(("MARKET_SCREENSHOTS",) if keep else ())):
            target = os.environ.get(variable)
            if target:
                Path(target).mkdir(parents=True, exist_ok=True)
                copied = Path(target) / path.name
                shutil.copyfile(path, copied)
                print(f"screenshot: {copied}")
        print(f"screenshot: {path}")


async def _alert_raised(client: httpx.AsyncClient, regulator: Party, order_id: str, seconds: float = 20) -> None:
    """Wait for the server's clock (MARKET_CLOCK_INTERVAL=1) to raise the sale's alert."""
    deadline = time.monotonic() + seconds
    while True:
        r = await client.get("/v1/oversight/alerts", params={"status": "open", "limit": 500}, headers=regulator.auth)
        assert r.status_code == 200, r.text
        if any(order_id in a["subjects"] for a in r.json()["items"]):
            return
        assert time.monotonic() < deadline, "the clock raised no alert for the identifiable-PI sale"
        await asyncio.sleep(0.3)


async def test_a_regulator_freezes_an_asset_from_the_dashboard(databases: Any, tmp_path_factory: Any,
                                                                tmp_path: Path) -> None:
    async_playwright = _browser_or_skip()
    settings = make_settings(tmp_path_factory.mktemp("dashboard-browser"), await databases.new())
    shots = Shots(tmp_path)
    try:
        async with serving(settings, MARKET_CLOCK_INTERVAL="1") as served:
            base, token = served.base, served.operator_token
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                me = (await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})).json()
                operator = Party(me["id"], token, me)
                parties = Parties(client, settings, operator)  # type: ignore[arg-type]
                # A provider with a listed asset whose title has a word no other listing has.
                unique = word()
                _, listing = await offer(client, parties, operator, title=f"深圳交通出行数据 {unique}")
                assert [x["id"] for x in (await client.get("/v1/listings", params={"q": unique})).json()["items"]] \
                    == [listing["id"]]
                # Some trades, and a sale of identifiable personal information (an alert).
                _, pi = await offer(client, parties, operator, asset={"personal_info": "identifiable",
                                                                      "legal_basis": "个人信息主体的单独同意",
                                                                      "category": "healthcare"})
                who = await buyer(client, parties)
                await place(client, who, listing)
                sold = await place(client, who, pi)
                regulator = await parties.staff("regulator")
                key_file = tmp_path / "regulator.pem"
                key_file.write_bytes(regulator.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                                 NoEncryption()))
                await _alert_raised(client, regulator, sold["id"])

                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                    try:
                        page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
                        failed: list[str] = []
                        page.on("requestfailed", lambda req: failed.append(req.url))
                        page.on("request", lambda req: None if req.url.startswith(base) else failed.append(req.url))
                        sent: list[str] = []
                        page.on("request", lambda req: sent.append(req.post_data or ""))
                        await page.goto(f"{base}/oversight")
                        await shots.take(page, "1-sign-in")
                        async with page.expect_file_chooser() as chosen:
                            await page.click("#key-file")
                        await (await chosen.value).set_files(str(key_file))
                        await page.click("#signin-form button[type=submit]")
                        await page.wait_for_selector("#chart-day svg")
                        # The key never left the page: no request carried the key file.
                        secret = key_file.read_text().split("\n")[1]
                        assert not any(secret in body or "PRIVATE KEY" in body for body in sent)
                        assert await page.locator(".chart svg").count() == 5
                        assert await page.locator("#chart-day svg rect").count() >= 28
                        assert await page.locator("#chart-category svg rect").count() >= 1
                        assert "成交额 Value" in await page.inner_text("main")
                        font = await page.evaluate("getComputedStyle(document.documentElement).fontFamily")
                        assert "PingFang SC" in font and "Noto Sans CJK SC" in font
                        await shots.take(page, "2-overview")

                        await page.click("text=预警 Alerts")
                        row = page.locator(f'tr.alert[data-subjects~="{sold["id"]}"]')
                        await row.wait_for()
                        assert await row.get_attribute("data-rule") == "identifiable_pi_sale"
                        await shots.take(page, "3-alerts")

                        await page.click("text=监管措施 Actions")
                        await page.select_option("#action", "freeze_asset")
                        await page.fill("#target", listing["asset_id"])
                        await page.fill("#reason", "核查投诉 checking a complaint")
                        await page.click("#action-form button[type=submit]")
                        await page.wait_for_selector(".notice")
                        assert "冻结资产 Freeze asset ✓" in await page.inner_text(".notice")
                        assert await page.locator(f'#actions tr[data-target="{listing["asset_id"]}"]').count() == 1
                        await shots.take(page, "4-frozen")
                        assert failed == [], f"requests that failed or left the market: {failed}"

                        # Sign out: the session ends on the server; the saved cookie is refused.
                        [saved] = [c for c in await page.context.cookies() if c["name"] == "oversight_session"]
                        await page.click("#signout-form button[type=submit]")
                        await page.wait_for_selector("#signin-form")
                        replayed = await client.get("/oversight/actions", follow_redirects=False,
                                                    headers={"Cookie": f"oversight_session={saved['value']}"})
                        assert replayed.status_code == 303 and replayed.headers["location"] == "/oversight"
                    finally:
                        await browser.close()

                r = await client.get("/v1/listings", params={"q": unique})
                assert r.status_code == 200 and r.json()["items"] == [], r.text
                asset = (await client.get(f"/v1/assets/{listing['asset_id']}", headers=regulator.auth)).json()
                assert asset["frozen"] is True
    finally:
        print("screenshots:", *map(str, shots.paths), sep="\n  ")


async def _download(page: Any, selector: str) -> tuple[str, list[dict[str, str]]]:
    """Click a link that downloads, through the browser's own download; the file's name
    and its rows."""
    async with page.expect_download() as started:
        await page.click(selector)
    download = await started.value
    assert await download.failure() is None
    path = await download.path()
    text = Path(path).read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")  # the BOM spreadsheet programs need for Chinese text
    return download.suggested_filename, list(csv.DictReader(io.StringIO(text[1:])))


async def test_a_regulator_reads_the_trades_and_downloads_them(databases: Any, tmp_path_factory: Any,
                                                               tmp_path: Path) -> None:
    async_playwright = _browser_or_skip()
    settings = make_settings(tmp_path_factory.mktemp("dashboard-trades"), await databases.new())
    shots = Shots(tmp_path)
    try:
        async with serving(settings, MARKET_CLOCK_INTERVAL="1", MARKET_ORDER_BURST_COUNT="2") as served:
            base, token = served.base, served.operator_token
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                me = (await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})).json()
                operator = Party(me["id"], token, me)
                parties = Parties(client, settings, operator)  # type: ignore[arg-type]
                day = await trading_day(client, parties, operator)
                regulator = await parties.regulator("国家数据局监管处")
                key_file = tmp_path / "regulator.pem"
                key_file.write_bytes(regulator.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
                await _alert_raised(client, regulator, day.pi_sale["id"])
                everything = {day.paid["id"], day.free["id"], day.pi_sale["id"], day.waiting["id"],
                              day.related_order["id"]}

                async with async_playwright() as p:
                    browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                    try:
                        page = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                                      accept_downloads=True)
                        failed: list[str] = []
                        # A navigation that becomes a download is "aborted" as a page load: not a failure.
                        page.on("requestfailed", lambda req: None if "/oversight/trades.csv" in req.url
                                and req.failure == "net::ERR_ABORTED" else failed.append(f"{req.failure} {req.url}"))
                        page.on("response", lambda res: failed.append(f"{res.status} {res.url}")
                                if res.status >= 400 else None)
                        await page.goto(f"{base}/oversight")
                        async with page.expect_file_chooser() as chosen:
                            await page.click("#key-file")
                        await (await chosen.value).set_files(str(key_file))
                        await page.click("#signin-form button[type=submit]")
                        await page.wait_for_selector("#chart-provider svg")
                        providers = await page.inner_text("#chart-provider")
                        assert "深圳交通数据有限公司" in providers and "杭州健康医疗数据有限公司" in providers
                        assert "8,800.00 CNY" in await page.inner_text("#total-value")
                        # The page uses the whole width of the window.
                        width = await page.evaluate("document.querySelector('main').getBoundingClientRect().width")
                        assert width >= 1400, width
                        await shots.take(page, "trades-1-overview", keep=True)

                        await page.click("nav >> text=交易 Trades")
                        await page.wait_for_selector("#trades")
                        shown = await page.inner_text("main")
                        for name in ("深圳交通数据有限公司", "上海数据科技有限公司", "北京城市规划研究院",
                                     "深圳公交刷卡数据 2026Q3", "杭州门诊就诊记录"):
                            assert name in shown, name
                        assert IDS.search(shown) is None, IDS.search(shown)  # names, not ids
                        assert "8,800.00 CNY" in shown and "440.00 CNY" in shown and "15,000.00 CNY" in shown
                        assert "880000" not in shown and "UTC+08:00" in shown  # the default zone
                        assert await page.locator("tr.trade").count() == len(everything)
                        await shots.take(page, "trades-2-trades", keep=True)

                        # The CSV of what the page shows, downloaded by the browser with the session.
                        name, rows = await _download(page, "#csv-download")
                        assert name == "trades.csv"
                        assert rows and list(rows[0]) == list(trades.COLUMNS)
                        assert {r["id"] for r in rows} == everything
                        paid = next(r for r in rows if r["id"] == day.paid["id"])
                        assert paid["provider_name"] == "深圳交通数据有限公司" and paid["status"] == "active"

                        # One provider's trades: its name links to them; the CSV follows the filter.
                        await page.locator("#trades a", has_text="杭州健康医疗数据有限公司").first.click()
                        await page.wait_for_url(f"**/oversight/trades?provider={day.health.id}")
                        assert await page.locator("tr.trade").count() == 1
                        _, rows = await _download(page, "#csv-download")
                        assert [r["id"] for r in rows] == [day.pi_sale["id"]]

                        # The trade itself, its alert's evidence in words.
                        await page.locator("tr.trade a").first.click()
                        await page.wait_for_selector("#trade")
                        sentences = " ".join(await page.locator(".evidence .sentence").all_inner_texts())
                        assert "含可识别个人信息" in sentences and "上海数据科技有限公司" in sentences
                        await shots.take(page, "trades-3-trade", keep=True)

                        await page.click("nav >> text=预警 Alerts")
                        await page.locator(f'tr.alert[data-subjects~="{day.pi_sale["id"]}"]').wait_for()
                        alerts = await page.inner_text("#alerts")
                        assert "在 1 小时内下单至少 3 笔（阈值 2）" in alerts and '{"' not in alerts
                        assert IDS.search(alerts) is None, IDS.search(alerts)
                        await shots.take(page, "trades-4-alerts", keep=True)

                        await page.click("nav >> text=审批 Approvals")
                        approvals = await page.inner_text("#approvals")
                        assert "15,000.00 CNY" in approvals and "北京城市规划研究院" in approvals
                        await shots.take(page, "trades-5-approvals", keep=True)
                        icon = await page.goto(f"{base}/favicon.ico")
                        assert icon is not None and icon.status == 200
                        assert failed == [], f"requests that failed: {failed}"
                    finally:
                        await browser.close()
    finally:
        print("screenshots:", *map(str, shots.paths), sep="\n  ")
