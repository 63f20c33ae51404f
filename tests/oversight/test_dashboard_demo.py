"""The demo's regulator at its desk, in a real browser: ``market demo`` makes the market and the
regulator (its key file in the data directory), ``market serve`` trusts the demo authority, and
the regulator signs in with that key file, opens the trades, downloads them as CSV, and sees
names and yuan — what the README tells a new user to do after ``make demo``."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from market.oversight import trades
from market.tools.cli import main
from tests.conftest import make_settings
from tests.oversight.test_dashboard_browser import CHROMIUM, Shots, _browser_or_skip, _download
from tests.oversight.test_dashboard_pages import IDS
from tests.serving import serving


def _demo(settings: Any) -> Any:
    env = {"MARKET_DATA_DIR": str(settings.data_dir), "MARKET_DATABASE_URL": settings.database_url,
           "MARKET_LOG_LEVEL": "WARNING", "MARKET_LEDGER_ORIGIN": settings.ledger_origin,
           "MARKET_REGULATOR_AUTHORITY": ""}
    return CliRunner().invoke(main, ["demo", "--notice-period", "0", "--trades", "40"], env=env)


async def test_the_demo_regulator_reads_and_downloads_the_demo_trades(databases: Any, tmp_path_factory: Any,
                                                                      tmp_path: Path) -> None:
    async_playwright = _browser_or_skip()
    settings = make_settings(tmp_path_factory.mktemp("demo-desk"), await databases.new())
    made = await asyncio.to_thread(_demo, settings)
    assert made.exit_code == 0, made.output
    folder = Path(settings.data_dir) / "demo"
    key_file = folder / "regulator.pem"
    authority = (folder / "regulator-authority.vkey").read_text().strip()
    assert str(key_file) in made.output and authority in made.output  # the demo says what to set
    kept = json.loads((folder / "tokens.json").read_text())
    regulator_token = next(p["token"] for p in kept["parties"] if "regulator" in p["roles"])
    shots = Shots(tmp_path)
    async with serving(settings, MARKET_REGULATOR_AUTHORITY=authority) as served:
        base = served.base
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            auth = {"Authorization": f"Bearer {regulator_token}"}
            everything = (await client.get("/v1/oversight/trades", params={"limit": 500}, headers=auth)).json()
            assert len(everything["items"]) >= 40 and everything["next_cursor"] is None
            providers = {t["provider"]["name"] for t in everything["items"]}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                              accept_downloads=True)
                await page.goto(f"{base}/oversight")
                async with page.expect_file_chooser() as chosen:
                    await page.click("#key-file")
                await (await chosen.value).set_files(str(key_file))
                await page.click("#signin-form button[type=submit]")
                await page.wait_for_selector("#chart-provider svg")
                await page.click("nav >> text=交易 Trades")
                await page.wait_for_selector("#trades")
                shown = await page.inner_text("main")
                assert any(name in shown for name in providers), providers
                assert IDS.search(shown) is None, IDS.search(shown)  # names, not ids
                assert " CNY" in shown and ".00 CNY" in shown  # yuan, two decimals, the unit named
                await shots.take(page, "demo-trades", keep=False)
                name, rows = await _download(page, "#csv-download")
                assert name == "trades.csv" and list(rows[0]) == list(trades.COLUMNS)
                assert {r["id"] for r in rows} == {t["id"] for t in everything["items"]}
                assert all(r["provider_name"] for r in rows) and "price_fen" in rows[0]
            finally:
                await browser.close()
