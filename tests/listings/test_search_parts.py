"""A caller's search as two parts — the public documents and its few extras (its own
without a public plan, and those with a private plan naming it) — merged: the same
items, order, totals, facets and cursors as one search over both, with or without the
memory of the public part, and the public part searched once for every caller."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from market.core.ids import new_id
from market.core.memo import Memo
from market.listings import search as search_module
from market.listings.search import PRICE_NONE, SearchParams, SearchResult, search, visible_docs
from market.listings.text import PAIRS_BELOW
from market.web.auth import Caller
from tests.listings.test_search_engine import BUYER, P1, P2, STAFF, Doc, Store, caller, new_store

STRANGER = new_id("acct")

# Public phrase matches of 深圳公园 stay below PAIRS_BELOW, so the public part reads the
# query as pairs; the buyer's extras lift its phrase matches to PAIRS_BELOW, so its
# search reads phrases: the two parts must then be read alike, as one search would.
PUBLIC_PHRASES = 5
EXTRA_PHRASES = PAIRS_BELOW - PUBLIC_PHRASES


def _corpus() -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for i in range(PUBLIC_PHRASES):
        docs[f"park{i}"] = Doc(f"深圳公园游客 {i}", "tourism", price=1000 + 100 * i, provider=(P1, P2)[i % 2])
    for i in range(8):  # pairs only: 深圳 and 公园 apart
        docs[f"city_park{i}"] = Doc(f"深圳市公园 {i}", "tourism", price=500 * (i % 3), models=",free,",
                                    summary="公园" if i % 2 else "")
    for i in range(EXTRA_PHRASES):  # only a private plan, naming the buyer
        docs[f"for_buyer{i}"] = Doc(f"深圳公园 私有 {i}", "tourism", models=",", price=PRICE_NONE, public=False,
                                    private_to=f",{BUYER},", provider=P2)
    docs["own_private"] = Doc("深圳公园 自有", "tourism", models=",", price=PRICE_NONE, public=False, provider=P1)
    docs["own_unlisted"] = Doc("深圳公园 下架", "tourism", listed=False, provider=P1)
    docs["named_public"] = Doc("深圳公园 公开也私有", "tourism", price=1500, private_to=f",{BUYER},", provider=P1,
                               keywords="深圳公园")
    for i in range(30):  # a broad word, many matches, every sort key tied somewhere
        docs[f"data{i}"] = Doc(f"数据 {i}", ("transport", "weather")[i % 2], grade=("general", "core")[i % 3 == 0],
                               price=(100, 200, 300)[i % 3], models=(",one_time,", ",free,subscription,")[i % 2],
                               description="数据" if i % 4 == 0 else "", provider=(P1, P2)[i % 2],
                               purposes=",research," if i % 5 else ",statistics,")
    for i in range(4):
        docs[f"data_private{i}"] = Doc(f"数据 私有 {i}", "transport", models=",", price=PRICE_NONE, public=False,
                                       private_to=f",{BUYER},{STRANGER}," if i % 2 else f",{BUYER},", provider=P2,
                                       keywords="数据" if i == 3 else "")
    return docs


CORPUS = _corpus()


@pytest.fixture(scope="module")
async def store(databases: Any) -> AsyncIterator[Store]:
    s = await new_store(databases)
    await s.accounts(STRANGER)
    for name, doc in CORPUS.items():
        await s.add(name, doc)
    yield s
    await s.engine.dispose()


async def _one_or(store: Store, who: Caller | None, p: SearchParams, monkeypatch: pytest.MonkeyPatch) -> SearchResult:
    """The search over one ``public OR extras`` condition, as it was asked before."""
    with monkeypatch.context() as m:
        m.setattr(search_module, "_parts",
                  lambda c, include_all: [search_module._Part(visible_docs(c, include_all))])
        async with store.reads() as session:
            return await search(session, who, p)


async def _split(store: Store, who: Caller | None, p: SearchParams, memo: Memo[Any] | None = None) -> SearchResult:
    async with store.reads() as session:
        return await search(session, who, p, memo)


async def _pages(run: Any, p: SearchParams) -> list[SearchResult]:
    """Every page of ``p``, following the cursors."""
    pages = [await run(p)]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 100
        pages.append(await run(SearchParams(**{**p.__dict__, "cursor": pages[-1].next_cursor})))
    return pages


CALLERS = {"anonymous": None, "buyer": caller(BUYER), "p1": caller(P1, "provider"), "p2": caller(P2, "provider"),
           "stranger": caller(STRANGER), "staff": STAFF}
QUERIES: list[dict[str, Any]] = [
    {"q": "深圳公园"}, {"q": "深圳公园", "sort": "newest"}, {"q": "深圳公园", "sort": "price_asc"},
    {"q": "深圳公园", "sort": "price_desc"}, {"q": "深圳公园", "category": "tourism", "model": "free"},
    {"q": "数据"}, {"q": "数据", "sort": "price_desc"}, {"q": "数据", "category": "transport", "grade": "core"},
    {"q": "数据", "purpose": "research", "min_price": 150}, {"q": "数据 公园"}, {},
    {"sort": "price_asc"}, {"sort": "price_desc", "model": "free"}, {"provider": P2}, {"q": "私有"},
]


@pytest.mark.parametrize("who", list(CALLERS))
@pytest.mark.parametrize("limit", [3, 50])
async def test_the_parts_merge_as_one_search(store: Store, who: str, limit: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    memo: Memo[Any] = Memo("assets")
    for params in QUERIES:
        p = SearchParams(**params, limit=limit)
        want = await _pages(lambda q: _one_or(store, CALLERS[who], q, monkeypatch), p)
        got = await _pages(lambda q: _split(store, CALLERS[who], q), p)
        remembered = await _pages(lambda q: _split(store, CALLERS[who], q, memo), p)
        again = await _pages(lambda q: _split(store, CALLERS[who], q, memo), p)  # the public part from the memo
        for result in (got, remembered, again):
            assert [(r.listing_ids, r.next_cursor, r.total, r.facets, r.listed) for r in result] == \
                [(r.listing_ids, r.next_cursor, r.total, r.facets, r.listed) for r in want], params


async def test_the_buyers_extras_change_how_the_query_is_read(store: Store) -> None:
    memo: Memo[Any] = Memo("assets")
    public = await _split(store, None, SearchParams(q="深圳公园", limit=100), memo)
    # The public part: too few phrase matches, so the pairs too, phrase matches first.
    assert public.total == PUBLIC_PHRASES + 1 + 8
    buyer = await _split(store, caller(BUYER), SearchParams(q="深圳公园", limit=100), memo)
    # The buyer's own extras make PAIRS_BELOW phrase matches: phrases only, its extras among them.
    names = {v: k for k, v in store.ids.items()}
    found = [names[i] for i in buyer.listing_ids]
    assert buyer.total == len(found) == PUBLIC_PHRASES + 1 + EXTRA_PHRASES
    assert not any(n.startswith("city_park") for n in found)
    assert found[0] == "named_public"  # title and keywords: the highest score, whichever part it is in


async def test_a_provider_sees_its_own_listing_in_its_place(store: Store) -> None:
    names = {v: k for k, v in store.ids.items()}
    p1 = caller(P1, "provider")
    found = [names[i] for i in (await _split(store, p1, SearchParams(q="深圳公园", sort="newest", limit=100))).listing_ids]
    assert "own_private" in found and "own_unlisted" not in found and not any(n.startswith("for_buyer") for n in found)
    assert found == sorted(found, key=lambda n: store.ids[n], reverse=True)
    # Paged by two, it comes in the same place.
    paged = [names[i] for r in await _pages(lambda q: _split(store, p1, q),
                                            SearchParams(q="深圳公园", sort="newest", limit=2)) for i in r.listing_ids]
    assert paged == found
    # Others never find it.
    for who in (None, caller(BUYER), caller(STRANGER), STAFF):
        result = await _split(store, who, SearchParams(q="深圳公园", sort="newest", limit=100))
        assert store.ids["own_private"] not in result.listing_ids


async def test_what_each_caller_sees_as_anyone_does(store: Store) -> None:
    p = SearchParams(q="深圳公园", limit=100)
    ids = store.ids
    buyer = await _split(store, caller(BUYER), p)
    assert ids["named_public"] not in buyer.common and ids["for_buyer0"] not in buyer.common
    assert ids["park0"] in buyer.common
    holder = await _split(store, caller(P1, "provider"), p)
    assert ids["named_public"] not in holder.common and ids["park0"] not in holder.common  # its own
    assert ids["park1"] in holder.common  # P2's
    assert (await _split(store, STAFF, p)).common == set()
    anonymous = await _split(store, None, p)
    assert anonymous.common == set(anonymous.listing_ids)


async def test_a_broad_query_searches_only_the_callers_extras_once_the_public_part_is_kept(store: Store) -> None:
    memo: Memo[Any] = Memo("assets")
    p = SearchParams(q="数据", limit=5)
    first = await _split(store, caller(STRANGER), p, memo)
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "listing_docs" in statement:
            statements.append(statement)

    async def asked(who: Caller, params: SearchParams) -> tuple[SearchResult, list[str]]:
        statements.clear()
        event.listen(store.engine.sync_engine, "before_cursor_execute", note)
        try:
            return await _split(store, who, params, memo), list(statements)
        finally:
            event.remove(store.engine.sync_engine, "before_cursor_execute", note)

    # The buyer's total: the public matches plus its four private ones; its page merged.
    second, found = await asked(caller(BUYER), p)
    assert first.total == 30 + 2  # the stranger is named in two of them
    assert second.total == 30 + 4
    assert store.ids["data_private3"] in second.listing_ids  # title and keywords: first
    # Which documents are its extras, then those that match: nothing over the public documents.
    assert len(found) == 2 and all(("has_public_plan = 0" in s or "has_public_plan = false" in s) for s in found)
    # Asked again, what its extras' query found is remembered too: nothing is asked.
    again, found = await asked(caller(BUYER), p)
    assert found == [] and again == second
    # Another query, whose public part another caller's search left in the memo: its
    # extras are known, one statement.
    by_price = SearchParams(q="数据", sort="price_asc", limit=5)
    await _split(store, caller(STRANGER), by_price, memo)
    third, found = await asked(caller(BUYER), by_price)
    assert len(found) == 1 and third.total == second.total
    # A caller without extras: once asked which are its extras (none), nothing more.
    nobody = caller(new_id("acct"))
    assert [len((await asked(nobody, p))[1]) for _ in range(2)] == [1, 0]
    assert (await _split(store, nobody, p, memo)).listing_ids == (await _split(store, None, p)).listing_ids


async def test_a_change_while_searching_is_not_mixed_with_what_was_kept(databases: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts come from the memory, then a listing is published (its commit empties the
    memory) before the search reads the database: the answer is the database's, counted
    again, not the kept counts beside a newer page."""
    store = await new_store(databases)
    try:
        for i in range(3):
            await store.add(f"data{i}", Doc(f"数据 {i}", "transport"))
        await store.add("mine", Doc("数据 私有", "transport", models=",", price=PRICE_NONE, public=False,
                                    private_to=f",{BUYER},", provider=P2))
        memo: Memo[Any] = Memo("assets")
        p = SearchParams(q="数据", limit=50)
        assert (await _split(store, None, p, memo)).total == 3
        real_kept = search_module._Search._kept
        published: list[str] = []

        async def kept_then_publish(self: Any, shared: bool, key: Any, build: Any) -> Any:
            found = await real_kept(self, shared, key, build)
            if shared and key[0] == "search-groups" and not published:
                published.append(await store.add("new", Doc("数据 新", "transport")))
            return found

        monkeypatch.setattr(search_module._Search, "_kept", kept_then_publish)
        result = await _split(store, caller(BUYER), p, memo)
        assert published and published[0] in result.listing_ids
        assert result.total == len(result.listing_ids) == 3 + 1 + 1
    finally:
        await store.engine.dispose()
