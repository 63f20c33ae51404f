"""``market demo``: a believable market seeded through the services, on the ledger and
in search, and a second run that changes nothing."""

import asyncio
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from ledger.store import Leaf, PendingEntry
from market.accounts.models import Account, AccountKey, ApiToken
from market.accounts.uscc import validate
from market.core import db
from market.demo.data import ASSETS, CATEGORIES, OPERATOR, PARTIES, demo_uscc
from market.listings.models import Listing
from market.registry.models import Asset
from market.tools.cli import main
from market.web.app import create_app
from tests.conftest import make_settings

TOKEN = re.compile(r"^\s+(provider|buyer)\s+(mkt_\S+)\s+(acct_\S+)", re.M)


def _env(settings: Any) -> dict[str, str]:
    return {"MARKET_DATA_DIR": str(settings.data_dir), "MARKET_DATABASE_URL": settings.database_url,
            "MARKET_LOG_LEVEL": "WARNING", "MARKET_LEDGER_ORIGIN": settings.ledger_origin,
            "MARKET_NOTICE_PERIOD": "10d"}


def _demo(settings: Any, *args: str) -> Any:
    # In this process (no interpreter start-up); the command reads settings from the environment.
    return CliRunner().invoke(main, ["demo", *args], env=_env(settings))


async def _demo_async(settings: Any, *args: str) -> Any:
    # The command runs its own event loop: in a thread, away from the tests' loop.
    return await asyncio.to_thread(_demo, settings, *args)


@pytest.fixture(scope="module")
async def seeded(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("demo"), await databases.new(), notice_period="10d")
    result = await _demo_async(settings, "--notice-period", "0")
    assert result.exit_code == 0, result.output
    return {"settings": settings, "output": result.output,
            "tokens": {role: (token, account) for role, token, account in TOKEN.findall(result.output)}}


async def _counts(settings: Any) -> dict[str, int]:
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as s:
            return {model.__tablename__: (await s.execute(select(func.count()).select_from(model))).scalar_one()
                    for model in (Account, ApiToken, AccountKey, Asset, Listing, Leaf, PendingEntry)}
    finally:
        await engine.dispose()


def test_demo_codes_are_valid_and_fictional() -> None:
    codes = [p.uscc for p in (OPERATOR, *PARTIES)]
    assert len(set(codes)) == len(codes) >= 13
    assert all(validate(code) == code and code[8:10] == "DM" for code in codes)
    assert validate(demo_uscc("12", "440300", 999)) == "12440300DM000999" + demo_uscc("12", "440300", 999)[16:]


def test_the_default_notice_period_is_refused_in_one_line(seeded: dict[str, Any]) -> None:
    result = _demo(seeded["settings"])
    assert result.exit_code == 1
    assert "10d" in result.output and "--notice-period 0" in result.output and "Traceback" not in result.output


async def test_demo_seeds_a_market_on_the_ledger(seeded: dict[str, Any]) -> None:
    settings = seeded["settings"]
    output = seeded["output"]
    assert "Demo market seeded" in output and "54 registered (54 new)" in output, output
    assert set(seeded["tokens"]) == {"provider", "buyer"}
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as s:
            codes = [p.uscc for p in PARTIES]
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
    assert len(registered) >= 50 and {a.category for a in registered} == set(CATEGORIES)
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
    settings = seeded["settings"]
    before = await _counts(settings)
    result = await _demo_async(settings, "--notice-period", "0")
    assert result.exit_code == 0, result.output
    assert "already seeded; nothing changed" in result.output and "mkt_" not in result.output, result.output
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
    titles = [(s.provider, s.title) for s in ASSETS]
    assert len(set(titles)) == len(titles) >= 50
    providers = {p.key for p in PARTIES if "provider" in p.roles}
    buyers = {p.key for p in PARTIES if "buyer" in p.roles}
    assert {s.provider for s in ASSETS} <= providers
    assert {s.private_for for s in ASSETS if s.private_for} <= buyers
    assert all(s.grade != "core" for s in ASSETS)  # core data cannot be registered for trading
    assert all(not s.export or s.personal_info in ("none", "anonymized") for s in ASSETS)


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
