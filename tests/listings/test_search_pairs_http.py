"""``GET /v1/listings?q=``: when a query's phrases find few listings, its character pairs
are matched in any order (深圳公园 finds 深圳市公园游客量), below the phrase matches, in
one list with a total, facets and cursors that agree with it; on a market of its own."""

import base64
import json
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.listings.support import listable_asset, publish, search
from tests.registry_support import own_app, provider

TEXT = {"summary": "Counts by day.", "description": "Updated monthly.", "tags": []}

# Published in this order (later is newer).
MARKET = {
    "guide": ("weather", {"title": "城市导览", "description": "深圳公园步道指南"}),  # the phrase, in a description
    "visitors": ("transport", {"title": "深圳市公园游客量"}),  # 深圳 and 公园, not the phrase 深圳公园
    "map": ("transport", {"title": "深圳公园导览地图"}),  # the phrase
    "zoo": ("weather", {"title": "深圳动物园客流"}),  # 深圳, no 公园
    "guangzhou": ("weather", {"title": "广州市公园名录"}),  # 公园, no 深圳
    "greenway": ("logistics", {"title": "深圳绿道", "description": "沿途公园与驿站"}),  # one in each field
    "ride": ("logistics", {"title": "Park and ride 停车换乘", "summary": "Parking lots by station."}),
}


@pytest.fixture(scope="module")
async def market(databases, tmp_path_factory) -> Any:
    async with own_app(databases, tmp_path_factory.mktemp("pairs")) as app:
        holder = await provider(app.client, app.parties)
        ids = {}
        for name, (category, listing) in MARKET.items():
            asset = await listable_asset(app.client, holder, app.operator, category=category)
            ids[name] = (await publish(app.client, holder, asset["id"], **{**TEXT, **listing}))["id"]
        app.ids, app.names, app.holder = ids, {v: k for k, v in ids.items()}, holder
        yield app


async def names(market: Any, **params: Any) -> list[str]:
    page = await search(market.client, **params)
    return [market.names.get(x["id"], x["id"]) for x in page["items"]]


async def test_a_query_without_shi_finds_the_title_with_it(market: Any) -> None:
    page = await search(market.client, q="深圳公园")
    found = [market.names[x["id"]] for x in page["items"]]
    assert "visitors" in found  # 深圳市公园游客量
    # Phrase matches first (a title's, then a description's), though pairs in a title
    # weigh more than a phrase in a description; then pairs in one field above pairs in two.
    assert found == ["map", "guide", "visitors", "greenway"]
    assert page["total"] == 4 and page["next_cursor"] is None


@pytest.mark.parametrize("q, want", [
    ("公园深圳", ["map", "visitors", "guide", "greenway"]),  # any order; ties newest first
    ("深圳市公园", ["visitors"]),  # the phrase, found by itself: 市 is in no other title
    ("广州公园", ["guangzhou"]),
    ("深圳动物园", ["zoo"]),  # a phrase match and nothing else
    ("深圳游客", ["visitors"]),
])
async def test_pairs_in_any_order(market: Any, q: str, want: list[str]) -> None:
    assert await names(market, q=q) == want


@pytest.mark.parametrize("q", ["南山公园", "深圳广场", "公园动物", "深圳公园 地铁", "深圳园"])
async def test_a_query_whose_pairs_are_not_all_there_finds_nothing(market: Any, q: str) -> None:
    page = await search(market.client, q=q)
    assert page["items"] == [] and page["total"] == 0 and page["next_cursor"] is None
    assert page["facets"] == {"category": {}, "grade": {}, "model": {}}


@pytest.mark.parametrize("q, want", [
    ("park", ["ride"]), ("parking", ["ride"]), ("ride park", ["ride"]), ("ark", []), ("parkride", []),
    ("station 停车", ["ride"]), ("rides 公园", []),
])
async def test_latin_words_are_not_read_as_pairs(market: Any, q: str, want: list[str]) -> None:
    assert await names(market, q=q) == want


async def test_total_facets_and_pages_agree_with_the_items(market: Any) -> None:
    whole = await search(market.client, q="深圳公园", limit=500)
    assert whole["total"] == len(whole["items"]) == 4
    assert whole["facets"]["category"] == {"transport": 2, "weather": 1, "logistics": 1}
    assert whole["facets"]["grade"] == {"general": 4}
    # Choosing a facet value gives the count it showed: the reading does not change.
    for category, count in whole["facets"]["category"].items():
        page = await search(market.client, q="深圳公园", category=category)
        assert page["total"] == count == len(page["items"])
        assert page["facets"]["category"] == whole["facets"]["category"]
    # Page by page: the same list, each listing once, while phrase matches are added between pages.
    seen: list[str] = []
    cursor = None
    for added in range(10):
        page = await search(market.client, q="深圳公园", limit=1, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 4 + added
        seen += [x["id"] for x in page["items"]]
        asset = await listable_asset(market.client, market.holder, market.operator, category="energy")
        await publish(market.client, market.holder, asset["id"], **{**TEXT, "title": "深圳公园 新增"})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in market.names] == [x["id"] for x in whole["items"]]


async def test_price_sorts_order_both_kinds_together(market: Any) -> None:
    by_price = await search(market.client, q="深圳公园", sort="price_asc", limit=500)
    prices = [min(p["price"]["amount"] for p in x["plans"]) for x in by_price["items"]]
    assert prices == sorted(prices) and by_price["total"] == len(by_price["items"])
    assert {market.names.get(x["id"]) for x in by_price["items"]} >= {"map", "guide", "visitors", "greenway"}


def _cursor(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    {"s": "relevance", "k": [8, "lst_x"], "r": "words"},
    {"s": "relevance", "k": [8, "lst_x"], "r": None},
    {"s": "relevance", "k": [8, "lst_x"], "r": "pairs", "x": 1},
])
async def test_a_cursor_with_another_reading_is_refused(market: Any, cursor: dict[str, Any]) -> None:
    r = await market.client.get("/v1/listings", params={"q": "深圳公园", "cursor": _cursor(cursor)})
    assert_problem(r, 422, "bad-cursor")
