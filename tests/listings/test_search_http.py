"""``GET /v1/listings`` end to end, on a market of its own: Chinese words of 2, 3 and 4
characters inside longer titles, English word forms, mixed queries, facets that apply
every filter but their own, sorts, paging while listings are added, and bad filters."""

from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.listings.support import LICENCE, listable_asset, publish, search
from tests.registry_support import own_app, provider

FREE = [{"model": "free", "price": {"amount": 0, "currency": "CNY"}}]


def one_time(amount: int) -> list[dict[str, Any]]:
    return [{"model": "one_time", "price": {"amount": amount, "currency": "CNY"}}]


MARKET = {
    "traffic": ({"category": "transport"}, {"title": "深圳交通出行数据", "tags": ["出行"], "plans": one_time(50_000)}),
    "freight": ({"category": "logistics"}, {"title": "广州物流货运轨迹", "summary": "港口集装箱车辆轨迹", "tags": [],
                                            "plans": one_time(300_000)}),
    "bus": ({"category": "transport"}, {"title": "Shenzhen bus routes 深圳公交线路", "tags": ["bus"],
                                        "description": "Every route and stop, updated daily.",
                                        "plans": one_time(120_000)}),
    "rain": ({"category": "weather", "grade": "important"},
             {"title": "华南气象降水预报", "summary": "Rainfall forecast by district", "plans": one_time(80_000),
              "tags": [],
              "licence": {**LICENCE, "purposes": ["research"]}}),
    "power": ({"category": "energy"}, {"title": "深圳市用电负荷 electricity load", "plans": FREE, "tags": [],
                                       "description": "城市交通枢纽的用电也在内。"}),
}


@pytest.fixture(scope="module")
async def market(databases, tmp_path_factory) -> Any:
    async with own_app(databases, tmp_path_factory.mktemp("search")) as app:
        holder = await provider(app.client, app.parties)
        ids = {}
        for name, (asset_changes, listing_changes) in MARKET.items():
            asset = await listable_asset(app.client, holder, app.operator, **asset_changes)
            ids[name] = (await publish(app.client, holder, asset["id"], **listing_changes))["id"]
        app.ids, app.names, app.holder = ids, {v: k for k, v in ids.items()}, holder
        yield app


async def names(market: Any, **params: Any) -> list[str]:
    page = await search(market.client, **params)
    return [market.names.get(x["id"], x["id"]) for x in page["items"]]


@pytest.mark.parametrize("q, want", [
    ("交通", ["traffic", "bus", "power"]),  # title and category, then category (交通运输), then description
    ("交通运输", ["bus", "traffic"]),  # the category's Chinese name (equal scores: newest first)
    ("Transport", ["bus", "traffic"]),  # its id and English name
    ("气象", ["rain"]),
    ("出行", ["traffic"]),
    ("出行数据", ["traffic"]),
    ("交通出行", ["traffic"]),
    ("深圳交通出行数据", ["traffic"]),
    ("货运轨迹", ["freight"]),
    ("集装箱", ["freight"]),
    ("降水", ["rain"]),
    ("routes", ["bus"]),
    ("route", ["bus"]),
    ("Routing", ["bus"]),  # the same stem
    ("ROUTE stops", ["bus"]),
    ("深圳 bus", ["bus", "power", "traffic"]),  # bus in a title, then in summaries (newest first)
    ("深圳 electricity", ["power"]),
    ("forecasts", ["rain"]),
    ("上海", []),
])
async def test_chinese_english_and_mixed_queries(market: Any, q: str, want: list[str]) -> None:
    assert await names(market, q=q) == want


async def test_relevance_weighs_titles_then_keywords_then_text(market: Any) -> None:
    page = await search(market.client, q="深圳")
    assert [market.names[x["id"]] for x in page["items"]][:1] in (["traffic"], ["bus"], ["power"])
    assert page["total"] == 3 and set(await names(market, q="深圳")) == {"traffic", "bus", "power"}
    # Equal scores: newest first.
    assert await names(market, q="深圳") == ["power", "bus", "traffic"]


async def test_facets_apply_every_filter_but_their_own(market: Any) -> None:
    page = await search(market.client, q="深圳")
    assert page["facets"]["category"] == {"transport": 2, "energy": 1}
    assert page["facets"]["model"] == {"one_time": 2, "free": 1}
    page = await search(market.client, q="深圳", category="transport")
    assert page["total"] == 2 and {market.names[x["id"]] for x in page["items"]} == {"traffic", "bus"}
    assert page["facets"]["category"] == {"transport": 2, "energy": 1}  # its own filter left out
    assert page["facets"]["model"] == {"one_time": 2}
    assert page["facets"]["grade"] == {"general": 2}
    page = await search(market.client, model="free")
    assert page["total"] == 1 and page["facets"]["model"] == {"one_time": 4, "free": 1}
    assert page["facets"]["category"] == {"energy": 1}
    page = await search(market.client, grade="important")
    assert [market.names[x["id"]] for x in page["items"]] == ["rain"]
    assert page["facets"]["grade"] == {"general": 4, "important": 1}


async def test_filters_and_sorts(market: Any) -> None:
    assert await names(market, sort="price_asc") == ["power", "traffic", "rain", "bus", "freight"]
    assert await names(market, sort="price_desc") == ["freight", "bus", "rain", "traffic", "power"]
    assert await names(market) == ["power", "rain", "bus", "freight", "traffic"]  # newest
    assert await names(market, min_price=80_000, max_price=120_000, sort="price_asc") == ["rain", "bus"]
    assert await names(market, purpose="urban_planning", category="weather") == []
    assert await names(market, purpose="research", category="weather") == ["rain"]
    assert await names(market, provider=market.holder.id, q="轨迹") == ["freight"]
    assert await names(market, provider="acct_nobody") == []
    assert await names(market, currency="USD") == []


async def test_paging_neither_repeats_nor_skips_while_listings_are_added(market: Any) -> None:
    for params in ({"q": "深圳"}, {"sort": "newest"}, {"sort": "price_asc"}, {"q": "数据 深圳", "sort": "price_desc"}):
        before = await names(market, **params, limit=500)
        seen: list[str] = []
        cursor = None
        while True:
            page = await search(market.client, **params, limit=2, **({"cursor": cursor} if cursor else {}))
            seen += [market.names.get(x["id"], x["id"]) for x in page["items"]]
            asset = await listable_asset(market.client, market.holder, market.operator)
            await publish(market.client, market.holder, asset["id"], title="深圳交通出行数据 新增",
                          plans=one_time(100_000))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        originals = [n for n in seen if n in before]
        assert originals == before, params  # each once, in order


@pytest.mark.parametrize("params, kind", [
    ({"grade": "secret"}, "validation-error"),
    ({"model": "lease"}, "validation-error"),
    ({"purpose": "mind_reading"}, "validation-error"),
    ({"sort": "popular"}, "validation-error"),
    ({"include": "everything"}, "validation-error"),
    ({"min_price": "-1"}, "bad-price"),
    ({"max_price": "1.5"}, "validation-error"),
    ({"min_price": "abc"}, "validation-error"),
    ({"limit": "0"}, "validation-error"),
    ({"limit": "501"}, "validation-error"),
    ({"min_price": "500", "max_price": "100"}, "bad-price"),
    ({"sort": "relevance"}, "bad-sort"),
    ({"cursor": "not-a-cursor"}, "bad-cursor"),
    ({"q": "   "}, "bad-query"),
    ({"q": "数" * 201}, "bad-query"),
])
async def test_bad_filters_are_refused(market: Any, params: dict[str, str], kind: str) -> None:
    problem = assert_problem(await market.client.get("/v1/listings", params=params), 422)
    assert problem["type"].endswith("/" + kind), problem


async def test_a_cursor_is_bound_to_its_sort(market: Any) -> None:
    page = await search(market.client, sort="price_asc", limit=1)
    r = await market.client.get("/v1/listings", params={"sort": "newest", "cursor": page["next_cursor"]})
    assert_problem(r, 422, "bad-cursor")
