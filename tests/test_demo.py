"""``market demo``: a believable market seeded through the services, on the ledger and
in search; months of trading as the regulator sees them; a regulator enrolled by a demo
authority whose key file signs acts; the tokens printed again; a second run that changes
nothing. One demo database (a history of ``SIZE`` settled orders) serves the module."""

import asyncio
import json
import os
import re
import stat
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ledger.store import Leaf, PendingEntry
from market.accounts.models import Account, AccountKey, ApiToken
from market.accounts.uscc import validate
from market.core import db
from market.demo.cast import APPETITES, EXTRA_ASSETS, EXTRA_PARTIES, ForeignParty
from market.demo.data import ASSETS, CATEGORIES, OPERATOR, PARTIES, demo_uscc
from market.demo.history import offers
from market.demo.plan import FACTOR, plan
from market.demo.seed import TRADES
from market.listings.models import Listing
from market.oversight.models import Alert, Refusal
from market.registry.models import Asset
from market.tools import client as party_client
from market.tools.cli import main
from market.trading.models import Order
from market.web.app import create_app
from tests.conftest import make_settings

SIZE = 60  # settled orders in the module's history; the default size's shape is checked on its plan
TOKEN = re.compile(r"^\s+(operator|regulator|provider|buyer)\s+(mkt_\S+)\s+(acct_\S+)", re.M)
# The market's closed list of category ids: new demo data uses no other.
CATEGORY_IDS = {"transport", "logistics", "energy", "weather", "finance", "enterprise_credit", "healthcare",
                "geospatial", "telecom", "retail", "manufacturing", "agriculture", "education", "tourism",
                "environment", "urban", "public_service", "other"}


def _env(settings: Any) -> dict[str, str]:
    return {"MARKET_DATA_DIR": str(settings.data_dir), "MARKET_DATABASE_URL": settings.database_url,
            "MARKET_LOG_LEVEL": "WARNING", "MARKET_LEDGER_ORIGIN": settings.ledger_origin,
            "MARKET_NOTICE_PERIOD": "10d", "MARKET_REGULATOR_AUTHORITY": ""}


def _demo(settings: Any, *args: str) -> Any:
    # In this process (no interpreter start-up); the command reads settings from the environment.
    return CliRunner().invoke(main, ["demo", *args], env=_env(settings))


async def _demo_async(settings: Any, *args: str) -> Any:
    # The command runs its own event loop: in a thread, away from the tests' loop.
    return await asyncio.to_thread(_demo, settings, *args)


@pytest.fixture(scope="module")
async def seeded(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("demo"), await databases.new(), notice_period="10d")
    result = await _demo_async(settings, "--notice-period", "0", "--trades", str(SIZE))
    assert result.exit_code == 0, result.output
    folder = Path(settings.data_dir) / "demo"
    kept = json.loads((folder / "tokens.json").read_text())
    vkey = (folder / "regulator-authority.vkey").read_text().strip()
    return {"settings": settings, "output": result.output, "folder": folder, "kept": kept, "vkey": vkey,
            "tokens": {role: (token, account) for role, token, account in TOKEN.findall(result.output)},
            "keys": {p["key"]: p for p in kept["parties"]}}


def _app(seeded: dict[str, Any], **changes: Any) -> Any:
    """The demo's market as ``market serve`` runs it with the demo authority trusted."""
    update = {"background_tasks": False, "regulator_authority": seeded["vkey"], **changes}
    return create_app(seeded["settings"].model_copy(update=update))


def _auth(seeded: dict[str, Any], key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded['keys'][key]['token']}"}


async def _counts(settings: Any) -> dict[str, int]:
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as s:
            return {model.__tablename__: (await s.execute(select(func.count()).select_from(model))).scalar_one()
                    for model in (Account, ApiToken, AccountKey, Asset, Listing, Leaf, PendingEntry, Order, Alert,
                                  Refusal)}
    finally:
        await engine.dispose()


def test_demo_codes_are_valid_and_fictional() -> None:
    codes = [p.uscc for p in (OPERATOR, *PARTIES, *EXTRA_PARTIES) if not isinstance(p, ForeignParty)]
    assert len(set(codes)) == len(codes) >= 22
    assert all(validate(code) == code and code[8:10] == "DM" for code in codes)
    assert validate(demo_uscc("12", "440300", 999)) == "12440300DM000999" + demo_uscc("12", "440300", 999)[16:]


def test_the_default_notice_period_is_refused_in_one_line(seeded: dict[str, Any]) -> None:
    result = _demo(seeded["settings"])
    assert result.exit_code == 1
    assert "10d" in result.output and "--notice-period 0" in result.output and "Traceback" not in result.output


async def test_demo_seeds_a_market_on_the_ledger(seeded: dict[str, Any]) -> None:
    settings = seeded["settings"]
    output = seeded["output"]
    n = len(ASSETS) + len(EXTRA_ASSETS)
    assert "Demo market seeded" in output and f"{n} registered ({n} new)" in output, output
    assert set(seeded["tokens"]) == {"operator", "regulator", "provider", "buyer"}
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as s:
            codes = [p.uscc for p in (*PARTIES, *EXTRA_PARTIES) if p.uscc]
            accounts = (await s.execute(select(Account).where(Account.uscc.in_(codes)))).scalars().all()  # type: ignore[union-attr]
            assets = (await s.execute(select(Asset))).scalars().all()
            listings = (await s.execute(select(Listing))).scalars().all()
            leaves = (await s.execute(select(Leaf.subject, Leaf.leaf))).all()
            pending = (await s.execute(select(func.count()).select_from(PendingEntry))).scalar_one()
    finally:
        await engine.dispose()
    assert len(accounts) >= 12 and all(a.status == "verified" for a in accounts)
    assert {n for a in accounts for n in a.roles.split(",")} == {"provider", "buyer"}
    registered = [a for a in assets if a.status == "registered"]
    assert len(registered) == n and {a.category for a in registered} == set(CATEGORIES)
    assert all(a.personal_info in ("deidentified", "none") for a in registered if a.category == "healthcare")
    assert {a.grade for a in registered} == {"general", "important"}
    active = [x for x in listings if x.status == "active"]
    assert len(active) >= 50
    plans = [p for x in active for p in json.loads(x.plans)]
    assert {p["model"] for p in plans} == {"one_time", "subscription", "free"}
    assert sum(1 for p in plans if p.get("private_to")) >= 2
    assert sum(1 for x in active if x.approval_required) >= 2
    assert sum(1 for x in active if json.loads(x.licence)["territory"] == "global") >= 3
    # Every registration and every listing is on the ledger, integrated.
    assert pending == 0
    types = {(subject, json.loads(leaf)["type"]) for subject, leaf in leaves}
    assert all((f"asset:{a.id}", "asset.registered") in types for a in registered)
    assert all((f"asset:{a.id}", "asset.claim_submitted") in types for a in registered)
    assert all((f"listing:{x.id}", "listing.published") in types for x in active)
    assert all((f"account:{a.id}", "account.verified") in types for a in accounts)


async def test_a_second_run_changes_nothing_and_says_so(seeded: dict[str, Any]) -> None:
    """The catalogue is found, the regulator found by its key, the history left as made
    (it is made once, on a database without orders); the tokens file is not rewritten."""
    settings = seeded["settings"]
    before = await _counts(settings)
    tokens = seeded["folder"] / "tokens.json"
    written = tokens.stat().st_mtime_ns
    result = await _demo_async(settings, "--notice-period", "0")
    assert result.exit_code == 0, result.output
    assert "already seeded; nothing changed" in result.output and "mkt_" not in result.output, result.output
    assert re.search(r"history\s+made before: \S+ to \S+, \d+ orders, \d+ settled", result.output), result.output
    assert "market demo --tokens" in result.output and seeded["vkey"] in result.output
    assert await _counts(settings) == before
    assert tokens.stat().st_mtime_ns == written


async def test_a_database_with_orders_not_the_demo_s_gets_no_history(seeded: dict[str, Any]) -> None:
    """Without the tokens file's record of the history, orders found are someone else's:
    the demo says so and adds none (nor any other row)."""
    settings = seeded["settings"]
    tokens = seeded["folder"] / "tokens.json"
    kept = tokens.read_text()
    before = await _counts(settings)
    tokens.write_text(json.dumps({**json.loads(kept), "history": None}))
    try:
        result = await _demo_async(settings, "--notice-period", "0")
    finally:
        tokens.write_text(kept)
    assert result.exit_code == 0, result.output
    assert f"history: not made, the database holds {before['orders']} orders that are not the demo's" in result.output
    assert await _counts(settings) == before


async def test_the_demo_is_searchable_and_private_plans_are_private(seeded: dict[str, Any]) -> None:
    settings = seeded["settings"]
    buyer_token, buyer_id = seeded["tokens"]["buyer"]
    async with AsyncTestClient(app=create_app(settings.model_copy(update={"background_tasks": False}))) as client:
        r = await client.get("/v1/listings", params={"q": "交通", "limit": 100})
        assert r.status_code == 200, r.text
        found = r.json()["items"]
        assert sum(1 for x in found if x["category"] == "transport") == 9
        r = await client.get("/v1/listings", params={"q": "Shenzhen bus routes"})
        assert [x["title"] for x in r.json()["items"]][:1] == ["Shenzhen bus routes 深圳公交线路"]
        typhoon = next(s for s in ASSETS if s.private_for == "harbor")
        r = await client.get("/v1/listings", params={"q": typhoon.title})
        listing = r.json()["items"][0]
        assert listing["title"] == typhoon.title and not any(p.get("private_to") for p in listing["plans"])
        r = await client.get(f"/v1/listings/{listing['id']}", headers={"Authorization": f"Bearer {buyer_token}"})
        assert r.status_code == 200, r.text
        assert [(p["private"], p["private_to"]) for p in r.json()["plans"] if p.get("private")] == [(True, None)]


def test_demo_data_is_well_formed() -> None:
    everything = (*ASSETS, *EXTRA_ASSETS)
    parties = (*PARTIES, *EXTRA_PARTIES)
    titles = [(s.provider, s.title) for s in everything]
    assert len(set(titles)) == len(titles) >= 50
    providers = {p.key for p in parties if "provider" in p.roles}
    buyers = {p.key for p in parties if "buyer" in p.roles}
    assert {s.provider for s in everything} <= providers
    assert {s.private_for for s in everything if s.private_for} <= buyers
    assert all(s.grade != "core" for s in everything)  # core data cannot be registered for trading
    assert all(not s.export or s.personal_info in ("none", "anonymized") for s in everything)
    assert {s.category for s in EXTRA_ASSETS} <= CATEGORY_IDS
    assert set(APPETITES) == buyers and all(set(a.categories) <= CATEGORY_IDS for a in APPETITES.values())


def _period(seeded: dict[str, Any]) -> tuple[str, str]:
    found = re.search(r"history\s+(\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})", seeded["output"])
    assert found, seeded["output"]
    start, end = found.groups()
    return start, f"{datetime.fromisoformat(end) + timedelta(days=1):%Y-%m-%d}"


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def _all(client: Any, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await client.get(path, params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})},
                             headers=headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json().get("next_cursor")
        if not cursor:
            return items


async def test_months_of_trading_as_the_regulator_sees_them(seeded: dict[str, Any]) -> None:
    """Settled orders over months, among many buyers, providers and categories, with
    refunds, bank transfers and free plans, regulator approvals and a refused export —
    made through the services at the times the demo's clock gave them."""
    start, end = _period(seeded)
    regulator = _auth(seeded, "regulator")
    now = datetime.now(UTC)
    async with AsyncTestClient(app=_app(seeded)) as client:
        opened = f"{datetime.fromisoformat(start) - timedelta(days=10):%Y-%m-%d}"  # the market opened before
        r = await client.get("/v1/oversight/overview", params={"from": opened, "to": end}, headers=regulator)
        assert r.status_code == 200, r.text
        totals = r.json()["totals"]["by_currency"]["CNY"]
        assert totals["orders"] >= SIZE and totals["value"] > 0 and totals["refunds"] >= 1, totals
        assert totals["buyers"] >= 8 and totals["providers"] >= 6, totals
        assert r.json()["totals"]["registrations"] == len(ASSETS) + len(EXTRA_ASSETS)
        months = {d["key"][:7] for d in r.json()["series"]["day"]["CNY"]}
        assert len(months) >= 3, months
        assert {c["key"] for c in r.json()["series"]["category"]["CNY"]} == set(CATEGORIES)

        trades = await _all(client, "/v1/oversight/trades", regulator)
        statuses = Counter(t["status"] for t in trades)
        assert {"active", "refunded", "cancelled", "pending_approval"} <= set(statuses), statuses
        assert {t["payment_method"] for t in trades if t["settled_at"]} == {"bank_transfer", "free"}
        placed = sorted(_when(t["created_at"]) for t in trades)
        assert placed[0] < now - timedelta(days=120) and placed[-1] > now - timedelta(days=3), (placed[0], placed[-1])
        assert all(_when(t["settled_at"]) >= _when(t["created_at"]) for t in trades if t["settled_at"])

        approvals = [a for a in await _all(client, "/v1/oversight/acts", regulator) if a["kind"] == "approval"]
        assert sum(a["document"]["decision"] == "approve" for a in approvals) >= 1
        assert (await client.get("/v1/oversight/approvals", headers=regulator)).json()["items"], "none waiting"
        refused = await _all(client, "/v1/oversight/refusals", regulator, kind="export-not-allowed")
        assert refused and {x["account"]["id"] for x in refused} == {seeded["keys"]["pacific"]["account"]}

        # The oversight views are the regulator's and the operator's, not a buyer's.
        r = await client.get("/v1/oversight/overview", params={"from": start, "to": end}, headers=_auth(seeded, "harbor"))
        assert r.status_code == 403, r.text


async def test_the_alert_rules_have_cases_to_show(seeded: dict[str, Any]) -> None:
    """A wash-trade pair, a price outlier and a refused export are open; the order burst
    was closed by the regulator with a signed act. Each was opened when its trades were
    (the demo's clock), months ago or weeks ago, not today."""
    regulator = _auth(seeded, "regulator")
    async with AsyncTestClient(app=_app(seeded)) as client:
        found = await _all(client, "/v1/oversight/alerts", regulator)
    rules = {(a["rule"], a["status"]) for a in found}
    assert {("wash_trade", "open"), ("price_outlier", "open"), ("refused_attempt", "open"),
            ("order_burst", "closed")} <= rules, rules
    assert len(found) == 4, [a["rule"] for a in found]  # ordinary trades trip no rule
    burst = next(a for a in found if a["rule"] == "order_burst")
    assert burst["closed_by"] == seeded["keys"]["regulator"]["account"]
    assert len(burst["evidence"]["orders"]) > 20
    assert all(_when(a["opened_at"]) < datetime.now(UTC) - timedelta(days=7) for a in found)


async def test_the_regulator_s_key_file_signs_its_acts(seeded: dict[str, Any]) -> None:
    """The key file the demo wrote is the enrolled key: an alert closure drafted with the
    regulator's token and signed with the file is accepted by a market trusting the demo
    authority — and refused by one that does not (nothing changes)."""
    folder = seeded["folder"]
    key_file = folder / "regulator.pem"
    assert str(key_file) in seeded["output"] and seeded["kept"]["regulator_key"] == str(key_file)
    assert f"MARKET_REGULATOR_AUTHORITY='{seeded['vkey']}'" in seeded["output"]
    for name in ("tokens.json", "regulator.pem", "regulator-authority.key"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    regulator = _auth(seeded, "regulator")

    async def close(app: Any) -> Any:
        async with AsyncTestClient(app=app) as client:
            alerts = await _all(client, "/v1/oversight/alerts", regulator, status="open", rule="price_outlier")
            alert = alerts[0]["id"]
            draft = await client.post("/v1/oversight/acts/draft", headers=regulator,
                                      json={"kind": "alert_closure", "alert": alert, "reason": "价格经核实为全量数据"})
            assert draft.status_code == 200, draft.text
            keys = await client.get("/v1/accounts/me/keys", headers=regulator)
            body = {"signing_bytes": draft.json()["signing_bytes"], "key_id": keys.json()["items"][0]["id"],
                    "signature": party_client.sign(key_file, draft.json()["signing_bytes"])}
            return await client.post(f"/v1/oversight/alerts/{alert}/closure", headers=regulator, json=body)

    refused = await close(_app(seeded, regulator_authority=""))
    assert refused.status_code == 422 and refused.json()["type"].endswith("key-not-enrolled"), refused.text
    closed = await close(_app(seeded))
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["closed_by"] == seeded["keys"]["regulator"]["account"]
    async with AsyncTestClient(app=_app(seeded)) as client:
        enrollments = (await client.get("/v1/oversight/enrollments", headers=regulator)).json()["items"]
    assert [e["authority"] for e in enrollments] == ["+".join(seeded["vkey"].split("+")[:2])]


async def test_tokens_prints_every_party_s_token_again_and_changes_nothing(seeded: dict[str, Any]) -> None:
    settings = seeded["settings"]
    before = await _counts(settings)
    written = (seeded["folder"] / "tokens.json").stat().st_mtime_ns
    result = await _demo_async(settings, "--tokens")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(seeded["kept"]["parties"]) + 2
    for party in seeded["kept"]["parties"]:
        assert any(party["token"] in line and party["account"] in line and party["name"] in line
                   and "/".join(party["roles"]) in line for line in lines), party
    for token, account in seeded["tokens"].values():  # the same tokens the first run printed
        assert any(token in line and account in line for line in lines)
    assert str(seeded["folder"] / "regulator.pem") in result.output and seeded["vkey"] in result.output
    assert await _counts(settings) == before
    assert (seeded["folder"] / "tokens.json").stat().st_mtime_ns == written
    # Every token is its party's.
    async with AsyncTestClient(app=_app(seeded)) as client:
        for party in seeded["kept"]["parties"]:
            me = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {party['token']}"})
            assert me.status_code == 200 and me.json()["id"] == party["account"], me.text
            assert sorted(me.json()["roles"]) == party["roles"]


def test_tokens_without_a_demo_says_so_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--tokens"], env={"MARKET_DATA_DIR": str(tmp_path),
                                                                 "MARKET_DATABASE_URL": ""})
    assert result.exit_code == 1, result.output
    assert "tokens.json does not exist" in result.output and "market demo" in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


async def test_the_default_history_has_the_shape_of_a_market(seeded: dict[str, Any]) -> None:
    """The default size's plan over the demo's own offers (pure: nothing is made): 300 and
    more settled orders over five months and more, refunds, bank transfers and free
    plans, regulator approvals, each alert case — and no ordinary trade that the
    price_outlier rule would flag."""
    settings = seeded["settings"]
    keys = {p["account"]: p["key"] for p in seeded["kept"]["parties"]}
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as s:
            found = await offers(s, keys)
    finally:
        await engine.dispose()
    end = datetime.now(UTC)
    history = plan(found, {k: a for a, k in keys.items()}, end - timedelta(days=163), end, TRADES)
    settled = history.settled
    assert len(settled) >= 300 and len(history.months()) >= 5
    assert sum(t.refunded for t in history.trades) >= 5
    assert sum(t.offer.model == "free" for t in settled) >= 30 and sum(t.offer.model != "free" for t in settled) >= 150
    assert sum(t.regulator is not None and t.regulator[1] == "approve" for t in settled) >= 3
    assert {"wash", "burst", "outlier", "important"} <= {t.case for t in history.trades}
    assert len(history.attempts) == 2 and [c.rule for c in history.closures] == ["order_burst"]
    assert len({t.buyer for t in settled}) >= 15 and len({t.offer.provider for t in settled}) >= 8
    # The price rule, replayed over the plan: only the planned outlier trips it.
    tripped = []
    for trade in sorted(settled, key=lambda t: t.settled or end):
        earlier = sorted(t.offer.amount for t in settled if t.offer.category == trade.offer.category
                         and t.offer.amount > 0 and (t.settled or end) < (trade.settled or end))
        if trade.offer.amount > 0 and len(earlier) >= 3:
            median = (earlier[(len(earlier) - 1) // 2] + earlier[len(earlier) // 2]) / 2
            if trade.offer.amount > FACTOR * median or trade.offer.amount * FACTOR < median:
                tripped.append(trade.case)
    assert tripped == ["outlier"]


async def test_search_reindex_rebuilds_what_was_lost(seeded: dict[str, Any]) -> None:
    """``market search reindex`` rewrites every search document from the listings."""
    from sqlalchemy import text

    settings = seeded["settings"]

    async def hits() -> list[str]:
        async with AsyncTestClient(app=create_app(settings.model_copy(update={"background_tasks": False}))) as c:
            r = await c.get("/v1/listings", params={"q": "交通", "limit": 500})
            assert r.status_code == 200, r.text
            return sorted(x["id"] for x in r.json()["items"])

    before = await hits()
    assert len(before) >= 9
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with engine.begin() as conn:  # a document lost, another's text emptied, one unlisted
            first, second, third = before[:3]
            await conn.execute(text("DELETE FROM listing_docs WHERE listing_id = :i"), {"i": first})
            if conn.dialect.name == "sqlite":
                await conn.execute(text("DELETE FROM listing_fts WHERE rowid = "
                                        "(SELECT doc_id FROM listing_docs WHERE listing_id = :i)"), {"i": second})
            else:
                await conn.execute(text("UPDATE listing_docs SET tsv = ''::tsvector WHERE listing_id = :i"),
                                   {"i": second})
            await conn.execute(text("UPDATE listing_docs SET listed = false WHERE listing_id = :i"), {"i": third})
    finally:
        await engine.dispose()
    assert set(before) - set(await hits()) == {first, second, third}

    result = await asyncio.to_thread(CliRunner().invoke, main, ["search", "reindex"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"reindexed \d+ listings\n", result.output)
    assert await hits() == before
