"""Migration 0020 on a market in use (SQLite, and PostgreSQL with
MARKET_TEST_DATABASE_URL): every stored category becomes an id of the closed list —
assets, search documents, and the statistics, whose counts under two old values of one
id are added up."""

from typing import Any

from sqlalchemy import text

from market.core import migrations
from market.registry import categories
from tests.conftest import Party
from tests.listings.support import listable_asset, publish
from tests.registry_support import add_key, draft, own_app
from tests.trading.support import FREE, buyer, place

# Made through the API under the first category, then stored as the second (as before
# the list was closed); 0020 must make it the third.
ASSETS = [
    ("transport", "交通", "transport"),
    ("logistics", "Transportation", "transport"),  # meets the one above in the statistics
    ("tourism", "旅游", "tourism"),
    ("energy", "outlier-2f9c", "other"),
    ("weather", "weather", "weather"),
]


def _run(client: Any, work: Any) -> Any:
    return client.blocking_portal.call(work)


async def _overview(client: Any, who: Party) -> dict[str, Any]:
    r = await client.get("/v1/oversight/overview", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def test_migration_0020_maps_every_stored_category_to_an_id(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path) as market:
        client, parties, operator = market.client, market.parties, market.operator
        services = client.app.state.services
        holder = await add_key(client, await parties.verified(["provider"]))
        b = await buyer(client, parties)
        made = []
        for first, _old, _new in ASSETS:
            asset = await listable_asset(client, holder, operator, category=first)
            listing = await publish(client, holder, asset["id"], plans=[FREE])
            await place(client, b, listing, "free")  # settled at once: counted under ``first``
            made.append((asset["id"], listing["id"]))
        drafts = [(await draft(client, holder, category="agriculture"))["id"] for _ in range(2)]

        async def store_old_values() -> None:
            async with services.sessionmaker() as s:
                for (first, old, _new), (asset_id, listing_id) in zip(ASSETS, made, strict=True):
                    await s.execute(text("UPDATE assets SET category = :old WHERE id = :id"),
                                    {"old": old, "id": asset_id})
                    await s.execute(text("UPDATE listing_docs SET category = :old WHERE listing_id = :id"),
                                    {"old": old, "id": listing_id})
                    for table in ("trade_stats", "trade_stats_monthly"):
                        await s.execute(text(f"UPDATE {table} SET category = :old WHERE category = :first "
                                             "AND provider_id = :p"), {"old": old, "first": first, "p": holder.id})
                for asset_id, old in zip(drafts, ("农业", "天气"), strict=True):
                    await s.execute(text("UPDATE assets SET category = :old WHERE id = :id"),
                                    {"old": old, "id": asset_id})
                await s.commit()

        async def migrate_again() -> None:
            await migrations.downgrade(services.engine, "0019")
            await migrations.upgrade(services.engine, "0020")
            assert await migrations.current_revision(services.engine) == "0020"
            await migrations.upgrade(services.engine)  # and the later ones, which the models read
            assert await migrations.current_revision(services.engine) == migrations.head_revision()

        async def stored() -> dict[str, Any]:
            async with services.read_sessionmaker() as s:
                out: dict[str, Any] = {}
                for table in ("trade_stats", "trade_stats_monthly"):
                    rows = (await s.execute(text(f"SELECT category, orders FROM {table} WHERE provider_id = :p"),
                                            {"p": holder.id})).all()
                    out[table] = sorted((r.category, int(r.orders)) for r in rows)
                ids = [a for a, _ in made] + drafts
                assets = dict((await s.execute(text("SELECT id, category FROM assets"))).all())
                out["assets"] = [assets[i] for i in ids]
                docs = dict((await s.execute(text("SELECT listing_id, category FROM listing_docs"))).all())
                out["docs"] = [docs[listing_id] for _, listing_id in made]
                return out

        _run(client, store_old_values)
        before = _run(client, stored)
        assert before["assets"] == [old for _, old, _ in ASSETS] + ["农业", "天气"]
        assert ("交通", 1) in before["trade_stats"] and ("Transportation", 1) in before["trade_stats"]

        _run(client, migrate_again)
        after = _run(client, stored)
        assert after["assets"] == [new for _, _, new in ASSETS] + ["agriculture", "weather"]
        assert after["docs"] == [new for _, _, new in ASSETS]
        expected_stats = [("other", 1), ("tourism", 1), ("transport", 2), ("weather", 1)]
        assert after["trade_stats"] == expected_stats and after["trade_stats_monthly"] == expected_stats

        # What the API serves now: ids only, the two old values of transport counted as one.
        regulator = await parties.regulator()
        series = {i["key"]: i["orders"] for i in (await _overview(client, regulator))["series"]["category"]["CNY"]}
        assert series == {"transport": 2, "tourism": 1, "other": 1, "weather": 1}
        r = await client.get("/v1/listings", params={"include": "all", "limit": 500}, headers=operator.auth)
        assert r.status_code == 200, r.text
        assert set(r.json()["facets"]["category"]) <= set(categories.IDS)
        r = await client.get("/v1/assets", params={"provider": holder.id, "category": "transport", "limit": 500},
                             headers=holder.auth)
        assert sorted(i["id"] for i in r.json()["items"]) == sorted(a for a, _ in made[:2])

        # Once more changes nothing.
        _run(client, migrate_again)
        assert _run(client, stored) == after


def test_the_mapping_migration_0020_applies() -> None:
    """Ids stay; names and synonyms in either language become their id; the rest ``other``."""
    for c in categories.CATEGORIES:
        for said in (c.id, c.name_zh, c.name_en, c.name_en.upper(), f" {c.name_zh} "):
            assert categories.canonical(said) == c.id, said
    for said, want in {"交通": "transport", "交通运输": "transport", "transportation": "transport",
                       "旅游": "tourism", "文化旅游": "tourism", "气象": "weather", "Weather": "weather",
                       "医疗": "healthcare", "health": "healthcare", "企业信用": "enterprise_credit",
                       "征信": "enterprise_credit", "Public-Service": "public_service", "其它": "other",
                       "c": "other", "": "other", "交通 数据": "other"}.items():
        assert categories.canonical(said) == want, said


def test_the_replay_recounts_an_old_contract_under_its_id() -> None:
    """The replay compares the overview with the signed contracts: one written before
    0020 names ``交通``, which the overview (re-keyed by 0020) counts under ``transport``."""
    from market.oversight.replay_totals import recompute

    contract = {"event": "trade.settled", "order": "ord_1", "settled_at": "2026-03-01T10:00:00Z",
                "price": {"amount": 500, "currency": "CNY"}, "asset": {"category": "交通", "grade": "general"},
                "provider": {"id": "acct_p", "uscc": "91440305MA5F00000X"}, "buyer": {"id": "acct_b"}}
    series = recompute({1: contract}, {})["series"]
    assert [i["key"] for i in series["category"]["CNY"]] == ["transport"]
