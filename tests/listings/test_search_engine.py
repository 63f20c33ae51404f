"""Listing search (market.listings.search) over ``listing_docs`` on the database under
test: the suite runs on SQLite (FTS5) by default and on PostgreSQL (tsvector) when
``MARKET_TEST_DATABASE_URL`` is set, asserting the same results on both."""

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from market.accounts.models import Account
from market.core import db
from market.core.errors import Unprocessable
from market.core.ids import new_id
from market.listings import index
from market.listings.matching import PHRASE_FIRST, pairs_reading
from market.listings.models import Listing, ListingDoc
from market.listings.search import (
    FIELD_WEIGHTS,
    PRICE_NONE,
    SearchParams,
    SearchResult,
    engine_match,
    field_expression,
    fts5_expression,
    search,
    tsquery_text,
    tsvector_literal,
)
from market.listings.text import PAIRS_BELOW, Term, pair_groups, parse_query, token_string, tokens
from market.registry.models import Asset
from market.web.auth import Caller
from market.web.credentials import AccountSnapshot

# -- Segmentation (no database) -------------------------------------------------------


def test_tokens_of_chinese_are_overlapping_bigrams() -> None:
    assert tokens("深圳交通出行数据") == ["深圳", "圳交", "交通", "通出", "出行", "行数", "数据"]
    assert tokens("电") == ["电"]
    assert tokens("深圳，交通") == ["深圳", "交通"]  # punctuation separates runs


def test_tokens_of_mixed_text_stem_latin_words() -> None:
    assert tokens("深圳 Bus routes 2024") == ["深圳", "bus", "rout", "2024"]
    assert tokens("Route ROUTES routing") == ["rout", "rout", "rout"]
    # NFKC: full-width letters and digits are ASCII; compatibility ideographs unified.
    assert tokens("ＲＯＵＴＥＳ ２０２４") == ["rout", "2024"]
    assert tokens("5G 基站") == ["5g", "基站"]


def test_token_string() -> None:
    assert token_string(["深圳", "圳交", "rout"]) == " 深圳 圳交 rout "
    assert token_string([]) == " "


def test_parse_query_terms() -> None:
    assert parse_query("深圳交通 routes 电") == [
        Term(("深圳", "圳交", "交通"), False), Term(("rout",), False), Term(("电",), True),
    ]
    assert parse_query("Route routes 交通 交通") == [Term(("rout",), False), Term(("交通",), False)]


@pytest.mark.parametrize("q", ["", "   ", "!!! ---", "x" * 201, " ".join(f"w{i}" for i in range(17))])
def test_parse_query_refuses(q: str) -> None:
    with pytest.raises(Unprocessable) as e:
        parse_query(q)
    assert e.value.kind == "bad-query" and e.value.status == 422


def test_engine_expressions() -> None:
    terms = parse_query("深圳交通 routes 电")
    assert fts5_expression(terms) == '"深圳 圳交 交通" AND "rout" AND "电"*'
    assert tsquery_text(terms) == "('深圳' <-> '圳交' <-> '交通') & 'rout' & '电':*"


def test_tsvector_literal_positions_gaps_and_weights() -> None:
    lit = tsvector_literal(["深圳", "rout"], ["rout"], [], ["数据"])
    # title at 1-2, keywords from 103, summary (empty) from 204, description from 304
    assert lit == "'深圳':1A 'rout':2A,103B '数据':304D"
    long = tsvector_literal(["a"] * 20000, [], [], ["z"])
    assert "'z'" not in long and long.count(",") == 16382


# -- The corpus -----------------------------------------------------------------------


def caller(account_id: str, *roles: str) -> Caller:
    snapshot = AccountSnapshot(
        id=account_id, name="x", kind="enterprise", roles=",".join(roles or ("buyer",)), uscc=None, controller_uscc=None,
        jurisdiction="CN", status="verified", suspended=False, status_reason=None, verified_at=None,
        verified_by=None, created_at=datetime.now(UTC),
    )
    return Caller(account=snapshot, token_id="tok_test")


P1, P2, BUYER = new_id("acct"), new_id("acct"), new_id("acct")
STAFF = caller(new_id("acct"), "operator")


@dataclass
class Doc:
    title: str
    category: str
    grade: str = "general"
    models: str = ",one_time,"
    purposes: str = ","
    price: int = 1000
    provider: str = P1
    keywords: str = ""
    summary: str = ""
    description: str = ""
    listed: bool = True
    public: bool = True
    private_to: str = ","
    currency: str = "CNY"


CORPUS: dict[str, Doc] = {
    "sz_traffic": Doc("深圳交通出行数据", "transport", summary="城市出行", purposes=",research,", price=5000),
    "sz_bus": Doc("深圳 Bus routes 2024", "transport", grade="important", models=",subscription,",
                  purposes=",statistics,", price=20000),
    "sh_metro": Doc("Shanghai metro route map", "transport", models=",free,", price=0, provider=P2),
    "bj_freight": Doc("北京东路货运轨迹", "logistics", models=",one_time,subscription,", price=12000, provider=P2),
    "jd_logistics": Doc("京东物流时效", "logistics", grade="core", purposes=",research,statistics,", price=30000),
    "power_load": Doc("华东用电负荷预测", "energy", grade="important", models=",subscription,", price=8000,
                      keywords="电力 能源", provider=P2),
    "charging": Doc("新能源充电", "energy", models=",free,", price=0),
    "weather_title": Doc("降水预报 气象", "weather", price=3000),
    "weather_desc": Doc("城市降水预报", "weather", models=",subscription,", price=3000, description="包含气象站点"),
    "clinic_a": Doc("门诊统计", "healthcare", grade="core", models=",free,", price=0),
    "clinic_b": Doc("门诊统计", "healthcare", grade="core", models=",free,", price=0),
    "private_credit": Doc("企业信用评分", "enterprise_credit", models=",", price=PRICE_NONE, public=False,
                          private_to=f",{BUYER},"),
    "unlisted_credit": Doc("企业信用评分 备份", "enterprise_credit", price=100, listed=False, provider=P2),
    "usd_credit": Doc("Credit score", "enterprise_credit", price=700, currency="USD", provider=P2),
}


def _fill(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus a placeholder for every other required column of ``table``."""
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        kind = getattr(column.type, "impl", column.type).python_type
        row[column.name] = {str: "x", bool: False, int: 0, bytes: b"", datetime: datetime.now(UTC)}.get(kind, "x")
    return row


class Store:
    """Writes listings and their search documents the way the market does: the
    documents through the model, their text through ``index.write_text`` (SQLite's
    ``listing_fts``, PostgreSQL's ``tsv``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = db.make_sessionmaker(engine)
        self.reads = db.make_read_sessionmaker(engine)
        self.ids: dict[str, str] = {}
        self.docs: dict[str, Doc] = {}
        self.asset_of: dict[str, str] = {}

    async def accounts(self, *ids: str) -> None:
        async with self.sessions() as session, session.begin():
            for account_id in ids:
                await session.execute(insert(Account.__table__).values(**_fill(Account.__table__, {"id": account_id})))
                asset_id = new_id("ast")
                await session.execute(insert(Asset.__table__).values(
                    **_fill(Asset.__table__, {"id": asset_id, "provider_id": account_id})))
                self.asset_of[account_id] = asset_id

    async def add(self, name: str, doc: Doc) -> str:
        listing_id = new_id("lst")
        async with self.sessions() as session, session.begin():
            await session.execute(insert(Listing.__table__).values(**_fill(Listing.__table__, {
                "id": listing_id, "asset_id": self.asset_of[doc.provider], "provider_id": doc.provider,
                "title": doc.title, "status": "active",
            })))
            fields = [tokens(doc.title), tokens(doc.keywords), tokens(doc.summary), tokens(doc.description)]
            row = ListingDoc(
                listing_id=listing_id, listed=doc.listed, provider_id=doc.provider, category=doc.category, grade=doc.grade,
                models=doc.models, purposes=doc.purposes, private_to=doc.private_to, has_public_plan=doc.public,
                currency=doc.currency, price_key=doc.price,
            )
            session.add(row)
            await session.flush()
            assert row.doc_id is not None
            await index.write_text(session, row.doc_id, fields)
        self.ids[name] = listing_id
        self.docs[name] = doc
        return listing_id

    async def search(self, who: Caller | None = None, **params: Any) -> SearchResult:
        async with self.reads() as session:
            return await search(session, who, SearchParams(**params))

    async def names(self, who: Caller | None = None, **params: Any) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[i] for i in (await self.search(who, **params)).listing_ids]


async def new_store(databases: Any) -> Store:
    engine = db.make_engine(await databases.new())
    store = Store(engine)
    await store.accounts(P1, P2, BUYER)
    return store


@pytest.fixture(scope="module")
async def corpus(databases: Any) -> AsyncIterator[Store]:
    store = await new_store(databases)
    for name, doc in CORPUS.items():
        await store.add(name, doc)
    yield store
    await store.engine.dispose()


def newest_first(store: Store, names: list[str] | set[str]) -> list[str]:
    return sorted(names, key=lambda n: store.ids[n], reverse=True)


ANONYMOUS_VISIBLE = {n for n, d in CORPUS.items() if d.listed and d.public}


# -- Matching -------------------------------------------------------------------------

MATCHES = [
    # Any substring of two or more characters finds the title it is in.
    ("交通", {"sz_traffic"}),
    ("出行数据", {"sz_traffic"}),
    ("交通出行", {"sz_traffic"}),
    ("深圳交通出行数据", {"sz_traffic"}),
    ("通出", {"sz_traffic"}),  # across 交通|出行: a substring, so found
    ("出行", {"sz_traffic"}),  # in the title and the summary: found once
    # 京东 is also a substring of 北京东路 (北京|东路): found, by design (documented).
    ("京东", {"jd_logistics", "bj_freight"}),
    # English words are stemmed on both sides.
    ("routes", {"sz_bus", "sh_metro"}),
    ("Route", {"sz_bus", "sh_metro"}),
    ("ＲＯＵＴＩＮＧ", {"sz_bus", "sh_metro"}),
    ("深圳 routes", {"sz_bus"}),
    ("深圳", {"sz_traffic", "sz_bus"}),
    ("bus 2024", {"sz_bus"}),
    ("货运 北京", {"bj_freight"}),
    # One character: a prefix of a token (电力, 电负), never the end of a run (充电).
    ("电", {"power_load"}),
    ("充电", {"charging"}),
    ("能源", {"power_load", "charging"}),  # keywords of one, title of the other
    ("深圳北京", set()),
    ("metro 交通", set()),  # terms are ANDed
    ("信用", set()),  # the private and the unlisted listings are not shown to the public
]


@pytest.mark.parametrize(("q", "expected"), MATCHES, ids=[f"q{i}" for i in range(len(MATCHES))])
async def test_match(corpus: Store, q: str, expected: set[str]) -> None:
    result = await corpus.search(q=q, sort="newest")
    found = await corpus.names(q=q, sort="newest")
    assert set(found) == expected
    assert found == newest_first(corpus, expected)
    assert result.total == len(expected)


async def test_phrase_does_not_span_fields(corpus: Store) -> None:
    # power_load: title ends in 预测, keywords begin with 电力; 测电 is in neither field.
    assert await corpus.names(q="测电") == []


async def test_title_match_outranks_description_match(corpus: Store) -> None:
    assert await corpus.names(q="气象") == ["weather_title", "weather_desc"]
    # Both have 降水预报 in the title: equal scores, newest first.
    assert await corpus.names(q="降水预报") == newest_first(corpus, ["weather_title", "weather_desc"])


async def test_equal_scores_break_ties_by_newest(corpus: Store) -> None:
    assert await corpus.names(q="门诊统计") == newest_first(corpus, ["clinic_a", "clinic_b"])
    assert await corpus.names(q="深圳") == newest_first(corpus, ["sz_traffic", "sz_bus"])
    # The relevance order is the same page after page.
    first = await corpus.search(q="门诊", limit=1)
    second = await corpus.search(q="门诊", limit=1, cursor=first.next_cursor)
    assert first.listing_ids + second.listing_ids == [corpus.ids[n] for n in newest_first(corpus, ["clinic_a", "clinic_b"])]
    assert second.next_cursor is None


async def test_more_fields_score_higher(corpus: Store) -> None:
    # 能源: in charging's title (8), in power_load's keywords (4).
    assert await corpus.names(q="能源") == ["charging", "power_load"]


# -- Field matches: the engines agree with each other (and with the token strings) ------

# Documents whose fields sit next to each other or share tokens: a phrase at a field
# boundary must match neither field, a prefix only token starts, a term in two fields both.
FIELD_DOCS: dict[str, tuple[str, str, str, str]] = {
    "boundary": ("华东用电负荷预测", "电力 能源", "预测电力", ""),
    "two_fields": ("深圳交通出行", "", "城市出行数据", "出行 交通 Routes"),
    "split_title": ("深圳 数据 交通", "交通", "", "深圳交通"),
    "prefix_end": ("新能源充电", "充电桩", "电", "电动 charging"),
    "repeats": ("交通 交通", "rout", "bus routes", "routing 交通交通"),
}
FIELD_QUERIES = ["预测电力", "测电", "电", "出行", "深圳交通", "交通", "交通交通", "routes", "充电", "charg", "数据 交通",
                 "深圳出行", "出行深圳", "深圳交通数据", "城市数据交通", "交通 routes", "用电预测"]


def _reference(term: Term, field_text: str) -> bool:
    """The relevance rule on a field's token string: the phrase (or the prefix) is there."""
    field_string = token_string(tokens(field_text))
    if term.prefix:
        return f" {term.tokens[0]}" in field_string
    return " " + " ".join(term.tokens) + " " in field_string


def _reference_pairs(term: Term, field_text: str) -> bool:
    """The pairs reading of ``term`` in one field: every group has a bigram there."""
    groups = pair_groups(term)
    if groups is None:
        return _reference(term, field_text)
    present = set(tokens(field_text))
    return all(any(pair in present for pair in group) for group in groups)


def _ranked(q: str, docs: dict[str, tuple[str, str, str, str]], newer: Any) -> list[str]:
    """The search's answer to ``q`` over ``docs``, computed in Python: phrase matches by
    score, and when they are fewer than PAIRS_BELOW and the pairs find more, the
    pairs-only matches after them by their pairs score; ties newest first."""
    terms = parse_query(q)
    weights = list(FIELD_WEIGHTS.values())

    def score(rule: Any, texts: tuple[str, ...]) -> int:
        return sum(w for t in terms for w, x in zip(weights, texts, strict=True) if rule(t, x))

    def matches(rule: Any, texts: tuple[str, ...]) -> bool:
        if rule is _reference:
            return all(any(_reference(t, x) for x in texts) for t in terms)
        every = [token for x in texts for token in tokens(x)]  # a pair may be in any field
        return all(_reference_pairs(t, " ".join(every)) if pair_groups(t) else any(_reference(t, x) for x in texts)
                   for t in terms)

    phrase = {d for d, texts in docs.items() if matches(_reference, texts)}
    pairs = {d for d, texts in docs.items() if matches(_reference_pairs, texts)}
    if len(phrase) >= PAIRS_BELOW or len(pairs) <= len(phrase):
        return sorted(phrase, key=lambda d: (score(_reference, docs[d]), newer(d)), reverse=True)
    return sorted(pairs, key=lambda d: (PHRASE_FIRST + score(_reference, docs[d]) if d in phrase
                                        else score(_reference_pairs, docs[d]), newer(d)), reverse=True)


@pytest.fixture(scope="module")
async def fields_store(databases: Any) -> AsyncIterator[Store]:
    store = await new_store(databases)
    for name, (title, keywords, summary, description) in FIELD_DOCS.items():
        await store.add(name, Doc(title, "x", keywords=keywords, summary=summary, description=description))
    yield store
    await store.engine.dispose()


@pytest.mark.parametrize("q", FIELD_QUERIES)
async def test_field_matches_agree_with_the_token_strings(fields_store: Store, q: str) -> None:
    by_id = {v: k for k, v in fields_store.ids.items()}
    async with fields_store.reads() as session:
        dialect = session.get_bind().dialect.name
        readings: list[tuple[Any, Term, Any]] = []  # (what field_expression reads, the term, the rule)
        for term in parse_query(q):
            readings.append((term, term, _reference))
            if pair_groups(term) is not None:
                readings.append((_groups_of(term), term, _reference_pairs))
        for reading, term, rule in readings:
            for i, name in enumerate(FIELD_WEIGHTS):
                expression = field_expression(dialect, reading, name)
                found = (await session.execute(
                    select(ListingDoc.listing_id).where(engine_match(dialect, expression)))).scalars().all()
                expected = {doc for doc, texts in FIELD_DOCS.items() if rule(term, texts[i])}
                assert {by_id[x] for x in found} == expected, (term, name, expression)
    # And the scores follow: the sum of the weights of the fields each term is in.
    result = await fields_store.names(q=q, sort="relevance", limit=500)
    assert result == _ranked(q, FIELD_DOCS, lambda d: fields_store.ids[d])


def _groups_of(term: Term) -> list[tuple[Term, ...]]:
    """The term's pairs reading as ``matching`` builds it."""
    reading = pairs_reading([term])
    assert reading is not None
    return reading[0]


def test_field_expressions() -> None:
    phrase, prefix = parse_query("深圳交通 电")
    assert field_expression("sqlite", phrase, "title_tokens") == '{title_tokens} : "深圳 圳交 交通"'
    assert field_expression("sqlite", prefix, "summary_tokens") == '{summary_tokens} : "电"*'
    assert field_expression("postgresql", phrase, "keyword_tokens") == "'深圳':B <-> '圳交':B <-> '交通':B"
    assert field_expression("postgresql", prefix, "description_tokens") == "'电':*D"


# -- Visibility -----------------------------------------------------------------------


async def test_visibility(corpus: Store) -> None:
    everyone = set(await corpus.names(limit=500))
    assert everyone == ANONYMOUS_VISIBLE
    assert set(await corpus.names(caller(BUYER), q="信用")) == {"private_credit"}
    assert set(await corpus.names(caller(new_id("acct")), q="信用")) == set()
    assert set(await corpus.names(caller(P1), q="信用")) == {"private_credit"}  # its own private listing
    assert set(await corpus.names(caller(P2), q="信用")) == set()  # its unlisted one stays out
    assert set(await corpus.names(STAFF, q="信用")) == set()
    assert set(await corpus.names(STAFF, q="信用", include_all=True)) == {"private_credit", "unlisted_credit"}
    # A provider with include_all sees all of its own listings and nothing else.
    own = {n for n, d in CORPUS.items() if d.provider == P2}
    assert set(await corpus.names(caller(P2, "provider"), include_all=True, provider=P2, limit=500)) == own
    assert set(await corpus.names(caller(P2, "provider"), include_all=True, limit=500)) == own


# -- Filters, facets, total -----------------------------------------------------------


def reference(p: dict[str, Any], names: set[str] = ANONYMOUS_VISIBLE) -> tuple[set[str], dict[str, dict[str, int]]]:
    """What a filter finds among ``names`` and its facets, computed in Python."""

    def passes(d: Doc, skip: str | None = None) -> bool:
        checks = {
            "category": p.get("category") in (None, d.category),
            "grade": p.get("grade") in (None, d.grade),
            "model": p.get("model") is None or f",{p['model']}," in d.models,
            "provider": p.get("provider") in (None, d.provider),
            "purpose": p.get("purpose") is None or f",{p['purpose']}," in d.purposes,
            "currency": p.get("currency") in (None, d.currency),
            "price": (p.get("min_price") is None and p.get("max_price") is None) or (
                d.price != PRICE_NONE
                and (p.get("min_price") is None or p["min_price"] <= d.price)
                and (p.get("max_price") is None or d.price <= p["max_price"])),
        }
        return all(ok for k, ok in checks.items() if k != skip)

    docs = {n: CORPUS[n] for n in names}
    facets: dict[str, dict[str, int]] = {"category": {}, "grade": {}, "model": {}}
    for d in docs.values():
        if passes(d, "category"):
            facets["category"][d.category] = facets["category"].get(d.category, 0) + 1
        if passes(d, "grade"):
            facets["grade"][d.grade] = facets["grade"].get(d.grade, 0) + 1
        if passes(d, "model"):
            for m in filter(None, d.models.split(",")):
                facets["model"][m] = facets["model"].get(m, 0) + 1
    return {n for n, d in docs.items() if passes(d)}, facets


FILTERS: list[dict[str, Any]] = [
    {},
    {"category": "transport"},
    {"grade": "important"},
    {"provider": P2},
    {"model": "subscription"},
    {"model": "one_time"},
    {"purpose": "research"},
    {"purpose": "statistics"},
    {"min_price": 3000},
    {"max_price": 3000},
    {"min_price": 3000, "max_price": 12000},
    {"min_price": 0, "max_price": 0},
    {"currency": "USD"},
    {"category": "transport", "model": "one_time"},
    {"category": "logistics", "grade": "general", "model": "subscription"},
    {"grade": "core", "model": "free", "provider": P1},
]


@pytest.mark.parametrize("params", FILTERS, ids=[f"filters{i}" for i in range(len(FILTERS))])
async def test_filters_facets_and_total(corpus: Store, params: dict[str, Any]) -> None:
    expected, facets = reference(params)
    result = await corpus.search(**params, limit=500)
    assert set(await corpus.names(**params, limit=500)) == expected
    assert result.total == len(expected)
    assert result.facets == facets


async def test_each_facet_applies_every_filter_but_its_own(corpus: Store) -> None:
    result = await corpus.search(category="transport", model="one_time", limit=500)
    assert await corpus.names(category="transport", model="one_time") == ["sz_traffic"]
    assert result.total == 1
    # Categories of the one-time listings; models of the transport listings; grades of both.
    assert result.facets["category"] == {"transport": 1, "logistics": 2, "weather": 1, "enterprise_credit": 1}
    assert result.facets["model"] == {"one_time": 1, "subscription": 1, "free": 1}
    assert result.facets["grade"] == {"general": 1}
    # With a query, the facets count only matches.
    result = await corpus.search(q="深圳", category="transport", model="free")
    assert result.total == 0 and result.listing_ids == []
    assert result.facets == {"category": {}, "grade": {}, "model": {"one_time": 1, "subscription": 1}}
    # Filters outside the facets narrow every facet.
    result = await corpus.search(currency="USD")
    assert result.facets == {"category": {"enterprise_credit": 1}, "grade": {"general": 1}, "model": {"one_time": 1}}


# -- Sorts ----------------------------------------------------------------------------


async def test_sorts(corpus: Store) -> None:
    buyer = caller(BUYER)
    seen = {n for n, d in CORPUS.items() if d.listed and (d.public or d.private_to == f",{BUYER},")}
    assert await corpus.names(buyer, limit=500) == newest_first(corpus, seen)
    assert await corpus.names(buyer, limit=500, sort="newest") == newest_first(corpus, seen)
    ascending = await corpus.names(buyer, limit=500, sort="price_asc")
    assert ascending == sorted(seen, key=lambda n: (CORPUS[n].price, corpus.ids[n]))
    assert ascending[-1] == "private_credit"  # no public price: last
    descending = await corpus.names(buyer, limit=500, sort="price_desc")
    assert descending == sorted(seen - {"private_credit"}, key=lambda n: (-CORPUS[n].price, _desc(corpus.ids[n]))) \
        + ["private_credit"]
    assert descending[0] == "jd_logistics"
    # A price filter leaves out listings without a public price.
    assert "private_credit" not in await corpus.names(buyer, min_price=0, sort="price_asc", limit=500)


def _desc(value: str) -> list[int]:
    return [-ord(c) for c in value]


@pytest.mark.parametrize("sort", ["newest", "price_asc", "price_desc", "relevance"])
async def test_pages_of_the_corpus_join_up(corpus: Store, sort: str) -> None:
    buyer = caller(BUYER)
    params: dict[str, Any] = {"sort": sort} if sort != "relevance" else {"sort": sort, "q": "预报"}
    whole = (await corpus.search(buyer, **params, limit=500)).listing_ids
    pages: list[str] = []
    cursor = None
    for _ in range(20):
        result = await corpus.search(buyer, **params, limit=2, cursor=cursor)
        pages += result.listing_ids
        cursor = result.next_cursor
        if cursor is None:
            break
    assert pages == whole


# -- Paging while listings are added --------------------------------------------------


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc"])
async def test_paging_while_listings_are_added(databases: Any, sort: str) -> None:
    store = await new_store(databases)
    try:
        # Ten matches of 交通 with different scores and prices (ties included), one without a public price.
        placements = [
            ("交通", "", "", ""), ("", "交通", "", ""), ("", "", "交通", ""), ("", "", "", "交通"),
            ("交通", "交通", "", ""), ("交通", "", "", "交通"), ("", "", "交通", "交通"), ("交通", "", "", ""),
            ("", "", "", "交通"), ("", "交通", "", ""),
        ]
        prices = [500, 100, 900, 100, 300, 300, PRICE_NONE, 700, 100, 800]
        for i, ((t, k, s, d), price) in enumerate(zip(placements, prices, strict=False)):
            await store.add(f"orig{i}", Doc(f"数据 {t}", "交通", keywords=k, summary=s, description=d, price=price,
                                            public=price != PRICE_NONE, private_to=f",{BUYER},"))
        buyer = caller(BUYER)
        params: dict[str, Any] = {"q": "交通", "sort": sort}
        first_order = await store.names(buyer, **params, limit=500)
        assert len(first_order) == 10

        seen: list[str] = []
        cursor = None
        for page in range(3):
            result = await store.search(buyer, **params, limit=4, cursor=cursor)
            by_id = {v: k for k, v in store.ids.items()}
            seen += [by_id[i] for i in result.listing_ids]
            cursor = result.next_cursor
            # Between pages: new matches that sort before, among and after the rows seen so far.
            for j, (t, price) in enumerate([("交通", 50), ("", 5000), ("交通 交通", 100)]):
                await store.add(f"new{page}_{j}", Doc(f"数据 {t}", "交通", description="交通", price=price))
            if cursor is None:
                break
        while cursor is not None:
            result = await store.search(buyer, **params, limit=4, cursor=cursor)
            by_id = {v: k for k, v in store.ids.items()}
            seen += [by_id[i] for i in result.listing_ids]
            cursor = result.next_cursor

        originals = [n for n in seen if n.startswith("orig")]
        assert originals == first_order  # each original exactly once, in order
        assert len(seen) == len(set(seen))  # nothing repeated
        # Rows added behind the cursor are not shown; some added ahead of it are (no
        # newest listing is ever ahead of a newest-first cursor).
        assert any(n.startswith("new") for n in seen) == (sort != "newest")
    finally:
        await store.engine.dispose()


# -- Refusals -------------------------------------------------------------------------


def _cursor(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


async def test_refusals(corpus: Store) -> None:
    newest_cursor = (await corpus.search(limit=1)).next_cursor
    assert newest_cursor is not None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cursor": "!!!not-base64"}, "bad-cursor"),
        ({"cursor": _cursor(["newest"])}, "bad-cursor"),
        ({"cursor": _cursor({"s": "newest", "k": [5]})}, "bad-cursor"),
        ({"cursor": _cursor({"s": "price_asc", "k": ["x", "lst_1"]}), "sort": "price_asc"}, "bad-cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "bad-cursor"),
        ({"cursor": newest_cursor, "sort": "price_asc"}, "bad-cursor"),  # a cursor of another sort
        ({"cursor": newest_cursor, "q": "交通"}, "bad-cursor"),  # q's default sort is relevance
        ({"min_price": -1}, "bad-price"),
        ({"max_price": -5}, "bad-price"),
        ({"min_price": 10, "max_price": 9}, "bad-price"),
        ({"sort": "relevance"}, "bad-sort"),
        ({"sort": "cheapest"}, "bad-sort"),
        ({"q": ""}, "bad-query"),
        ({"q": "  ，。 "}, "bad-query"),
        ({"q": "交" * 201}, "bad-query"),
        ({"limit": 0}, "bad-limit"),
        ({"limit": 501}, "bad-limit"),
    ]
    for params, kind in cases:
        with pytest.raises(Unprocessable) as e:
            await corpus.search(**params)
        assert (e.value.status, e.value.kind) == (422, kind), params
        assert e.value.type.endswith("/" + kind)
    # The cursor itself still works with its own sort.
    assert len((await corpus.search(cursor=newest_cursor, limit=500)).listing_ids) == len(ANONYMOUS_VISIBLE) - 1
