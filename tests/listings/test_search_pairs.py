"""The pairs reading of a query (market.listings.text.pair_groups, market.listings.matching)
and when search uses it: below PAIRS_BELOW phrase matches, pinned by the cursor."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from market.listings import search as search_module
from market.listings.matching import fts5_expression, pairs_reading, tsquery_text
from market.listings.text import PAIRS_BELOW, pair_groups, parse_query
from tests.listings.test_search_engine import Doc, Store, new_store


@pytest.mark.parametrize("q, groups", [
    ("深圳公园", [("深圳",), ("公园",)]),
    ("公园深圳", [("公园",), ("深圳",)]),
    ("深圳园", [("深圳",), ("圳园",)]),  # three characters: both bigrams
    ("南山科技园", [("南山",), ("技园",), ("山科", "科技")]),  # 科 in either of its bigrams
    ("交通交通", [("交通",)]),
    ("交通", None), ("电", None), ("routes", None),  # read the same either way
])
def test_pair_groups(q: str, groups: list[tuple[str, ...]] | None) -> None:
    (term,) = parse_query(q)
    assert pair_groups(term) == groups


def test_pairs_expressions() -> None:
    reading = pairs_reading(parse_query("南山科技园 routes 电"))
    assert reading is not None
    assert fts5_expression(reading) == '"南山" AND "技园" AND ("山科" OR "科技") AND "rout" AND "电"*'
    assert tsquery_text(reading) == "'南山' & '技园' & ('山科' | '科技') & 'rout' & '电':*"
    assert pairs_reading(parse_query("交通 routes 电")) is None  # nothing to read as pairs


@pytest.fixture
async def store(databases: Any) -> AsyncIterator[Store]:
    store = await new_store(databases)
    for name, title in [("visitors", "深圳市公园游客量"), ("map", "深圳公园导览地图"), ("zoo", "深圳动物园")]:
        await store.add(name, Doc(title, "tourism"))
    yield store
    await store.engine.dispose()


async def test_pairs_are_read_only_below_the_threshold(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PAIRS_BELOW > 1
    assert await store.names(q="深圳公园") == ["map", "visitors"]
    monkeypatch.setattr(search_module, "PAIRS_BELOW", 1)  # one phrase match is enough
    assert await store.names(q="深圳公园") == ["map"]
    assert (await store.search(q="深圳公园")).total == 1


def _reading_of(cursor: str | None) -> str | None:
    assert cursor is not None
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return data.get("r")


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc"])
async def test_the_cursor_keeps_the_reading_of_the_first_page(store: Store, sort: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = await store.search(q="深圳公园", sort=sort, limit=1)
    assert _reading_of(first.next_cursor) == "pairs" and first.total == 2
    # Enough phrase matches now that a new search reads phrases only; the paging one still reads pairs.
    monkeypatch.setattr(search_module, "PAIRS_BELOW", 2)
    await store.add("map2", Doc("深圳公园步道", "tourism"))
    assert set(await store.names(q="深圳公园", sort=sort)) == {"map", "map2"}
    rest = await store.search(q="深圳公园", sort=sort, limit=500, cursor=first.next_cursor)
    assert rest.total == 3
    pages = first.listing_ids + rest.listing_ids
    assert len(pages) == len(set(pages)) and store.ids["visitors"] in pages
    # And a cursor of phrases keeps reading phrases, though they are few again.
    phrases = await store.search(q="深圳公园", sort=sort, limit=1)
    assert _reading_of(phrases.next_cursor) is None and phrases.total == 2
    monkeypatch.setattr(search_module, "PAIRS_BELOW", 20)
    rest = await store.search(q="深圳公园", sort=sort, limit=500, cursor=phrases.next_cursor)
    assert rest.total == 2 and store.ids["visitors"] not in rest.listing_ids
    assert set(phrases.listing_ids + rest.listing_ids) == {store.ids["map"], store.ids["map2"]}
