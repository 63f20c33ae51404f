"""Search over ``listing_docs``: full-text match, filters, facets, sorts and keyset paging.

``listing_docs`` holds only narrow values (filters, facets, sorts, visibility), so that
counting and paging many matches reads little; the text is the engines' own, and both
read the same tokens (market.listings.text): SQLite asks its FTS5 table ``listing_fts``
(one column per field, rowid = ``doc_id``), PostgreSQL the ``tsv`` column (written with
``tsvector_literal``: fields weighted A-D in order, 100 positions apart so that a phrase
never spans two fields, as FTS5's separate columns ensure). The match expressions and
the relevance score are in ``market.listings.matching``; filters, facets, sorts and
paging are portable SQL over ``listing_docs``.

Relevance is an integer that depends only on the document (the weights of the fields
each term occurs in). Not ``bm25()`` or ``ts_rank``: both depend on the rest of the
corpus (document frequencies, lengths), so a listing's score would change while a
client pages through results and the keyset cursor would repeat or skip rows; and the
two engines would order the same documents differently. Ties are broken by listing id
(newest first).

Phrases first, then pairs: when the query's phrases find fewer than
``text.PAIRS_BELOW`` listings (counted under every filter but the facets', so that
choosing a facet value never changes what the query means) and reading the query as
pairs finds more, the result is the pairs reading's: every listing with the query's
characters in pairs (深圳公园 finds 深圳市公园游客量), phrase matches ranked first.
The reading chosen rides in the cursor, so every page of one search reads the query the
same way whatever is added meanwhile.

Paging is by keyset on the sort's values plus the listing id, in an opaque cursor that
names its sort: rows inserted between pages never make an existing row repeat or go
missing. Facets and the total come from one aggregate query grouped by
``(category, grade, models)``, which the index ``ix_listing_docs_facets`` answers by
itself for the usual visibility; each facet applies every filter but its own.
"""

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.db import table_of
from market.core.memo import Memo
from market.core.pagination import check_limit
from market.listings.filters import (
    SearchParams,
    SearchResult,
    check_prices,
    common_filters,
    extra_docs,
    facet_filters,
    public_docs,
    visible_docs,
)
from market.listings.matching import (
    FIELD_WEIGHTS,
    Reading,
    engine_match,
    field_expression,
    fts5_expression,
    match_clause,
    pairs_reading,
    pairs_relevance,
    relevance,
    tsquery_text,
    tsvector_literal,
)
from market.listings.models import ListingDoc
from market.listings.ordering import (
    PRICE_NONE,
    SORTS,
    comes_after,
    decode_cursor,
    encode_cursor,
    key_of,
    merged,
    order_and_after,
    ordered,
    sort_of,
    value_of,
)
from market.listings.text import PAIRS_BELOW, Term, parse_query
from market.registry import categories
from market.web.auth import Caller

__all__ = [
    "FIELD_WEIGHTS", "PRICE_NONE", "SORTS", "Group", "Hit", "SearchParams", "SearchResult", "fts5_expression",
    "audience", "engine_match", "extra_docs", "field_expression", "match_clause", "public_docs", "relevance", "search",
    "tsquery_text", "tsvector_literal", "visible_docs",
]

D = table_of(ListingDoc).c


async def audience(session: AsyncSession) -> frozenset[str]:
    """The accounts whose results differ from an anonymous caller's: holders of listings
    and buyers named in private plans. Everyone else (not staff) sees exactly what an
    anonymous caller sees, so the route may answer them from the same memory."""
    providers = (await session.execute(select(D.provider_id).distinct())).scalars().all()
    named = (await session.execute(select(D.private_to).where(D.private_to != ","))).scalars().all()
    return frozenset(providers) | {buyer for value in named for buyer in value.split(",") if buyer}


# -- The search -----------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """Matches counted by (category, grade, models): what the total and facets are made of."""

    category: str
    grade: str
    models: str
    n: int


@dataclass(frozen=True)
class Hit:
    """One row of a page: the listing, the sort's value before its id (the score, or
    the price key; None when sorted by newest), and whether it is orderable now."""

    listing_id: str
    value: int | None
    listed: bool
    provider_id: str
    private_to: str  # ",acct_…,": the buyers its private plans name


@dataclass(frozen=True)
class _Part:
    """Documents searched as one: ``where`` selects them; ``few`` when they are a
    caller's extras; ``shared`` when they are the public ones (the same for every
    caller, so kept in the memo when one is given)."""

    where: ColumnElement[bool]
    few: bool = False
    shared: bool = False
    owner: str = ""  # the caller whose extras these are


def _parts(caller: Caller | None, include_all: bool) -> list[_Part]:
    """What ``caller`` may find, as parts searched apart and merged: the public
    documents and the caller's few extras. One condition ``public OR extras`` would
    make the engines rank and count every match to find a page (neither index leads
    with it); apart, the public part walks its indexes and the extras are a few rows."""
    if caller is None:
        return [_Part(public_docs(), shared=True)]
    if include_all:
        return [_Part(visible_docs(caller, True))]
    return [_Part(public_docs(), shared=True), _Part(extra_docs(caller), few=True, owner=caller.id)]


async def search(session: AsyncSession, caller: Caller | None, p: SearchParams,
                 memo: Memo[Any] | None = None) -> SearchResult:
    """One page of the listings ``caller`` may see that match ``p``, with the total and
    the facets of the whole result. 422 for a bad query, price range, sort or cursor.

    ``memo``: where the public part's counts and pages are kept (``market.core.memo``;
    the route's memory of public answers): every caller's search shares them, and only
    its extras are searched for it."""
    check_limit(p.limit)
    check_prices(p)
    categories.check(p.category)
    sort = sort_of(p)
    terms = parse_query(p.q) if p.q is not None else []
    key, pinned = decode_cursor(p.cursor, sort) if p.cursor else (None, None)
    run = _Search(session, session.get_bind().dialect.name, p, sort, terms, memo)
    parts = _parts(caller, p.include_all)
    generation = memo.ticket() if memo is not None else 0

    # Facets and total: the groups of every filter but category, grade and model, over
    # the query's match: its phrases, or its pairs when the phrases find few.
    pairs = await run.reading(parts, pinned)
    groups = [g for part in parts for g in await run.groups(part, pairs)]
    total, facets = _facets(groups, p)

    # The page: each part's first limit + 1 after the cursor, merged in the sort's order.
    hits = merged(sort, [await run.page(part, pairs, key) for part in parts])[:p.limit + 1]
    more = len(hits) > p.limit
    hits = hits[:p.limit]
    next_cursor = None
    if more and hits:
        next_cursor = encode_cursor(sort, key_of(sort, hits[-1]), pairs is not None)
    if memo is not None and memo.ticket() != generation:
        # A change committed meanwhile: what came from the memory may predate what was
        # read here. Ask everything again, of this transaction's snapshot alone.
        return await search(session, caller, p)
    return SearchResult(listing_ids=[h.listing_id for h in hits], next_cursor=next_cursor, total=total, facets=facets,
                        listed={h.listing_id for h in hits if h.listed},
                        common={h.listing_id for h in hits if not _sees_more(caller, h)})


def _sees_more(caller: Caller | None, hit: Hit) -> bool:
    """Whether ``caller`` sees more of the listing than an anonymous caller: staff and
    its holder (private plans, a freeze's reason), a buyer a private plan names."""
    return caller is not None and (caller.is_staff or caller.id == hit.provider_id
                                   or f",{caller.id}," in hit.private_to)


@dataclass(frozen=True)
class _Extra:
    """One of a caller's extras that matches: its hit and its facet values."""

    hit: Hit
    category: str
    grade: str
    models: str


class _Search:
    """One search's queries over its parts: the shared part's through the memo, the
    extras read whole (they are few) and counted, filtered and ordered here."""

    def __init__(self, session: AsyncSession, dialect: str, p: SearchParams, sort: str, terms: list[Term],
                 memo: Memo[Any] | None) -> None:
        self.session, self.dialect, self.p, self.sort, self.terms, self.memo = session, dialect, p, sort, terms, memo
        self._extras: dict[bool, tuple[_Extra, ...]] = {}

    async def reading(self, parts: list[_Part], pinned: bool | None) -> Reading | None:
        """The query's pairs reading when the search reads it so, else None. A first
        page (``pinned`` None) reads pairs when the phrases find fewer than PAIRS_BELOW
        listings (over all parts) and the pairs find more; later pages read as their
        cursor says."""
        if not self.terms:
            return None
        pairs = pairs_reading(self.terms)
        if pairs is None or pinned is not None:
            return pairs if pinned else None
        found = sum([g.n for part in parts for g in await self.groups(part, None)])
        if found >= PAIRS_BELOW:
            return None
        more = sum([g.n for part in parts for g in await self.groups(part, pairs)])
        return pairs if more > found else None

    def _match(self, part: _Part, pairs: Reading | None) -> list[ColumnElement[bool]]:
        if not self.terms:
            return []
        return [_expressions(self.dialect, tuple(self.terms), pairs is not None, part.few)[0]]

    def _score(self, part: _Part, pairs: Reading | None) -> ColumnElement[int] | None:
        if not self.terms:
            return None
        return _expressions(self.dialect, tuple(self.terms), pairs is not None, part.few)[1]

    async def groups(self, part: _Part, pairs: Reading | None) -> tuple[Group, ...]:
        """The part's matches under every filter but the facets', grouped."""
        if part.few:
            counted = Counter((e.category, e.grade, e.models) for e in await self._extras_of(part, pairs))
            return tuple(Group(*values, n) for values, n in counted.items())

        async def count() -> tuple[Group, ...]:
            rows = (await self.session.execute(
                select(D.category, D.grade, D.models, func.count().label("n"))
                .where(part.where, *common_filters(self.p), *self._match(part, pairs))
                .group_by(D.category, D.grade, D.models)
            )).all()
            return tuple(Group(r.category, r.grade, r.models, int(r.n)) for r in rows)

        p = self.p
        filters = (p.provider, p.purpose, p.delivery, p.min_price, p.max_price, p.currency)
        return await self._kept(part.shared, ("search-groups", tuple(self.terms), pairs is not None, filters), count)

    async def page(self, part: _Part, pairs: Reading | None, key: list[Any] | None) -> tuple[Hit, ...]:
        """The part's first ``limit + 1`` matches after the cursor ``key``, in the sort's order."""
        if part.few:
            hits = [e.hit for e in await self._extras_of(part, pairs) if self._in_facets(e)]
            after = [h for h in hits if key is None or comes_after(self.sort, h, key)]
            return tuple(ordered(self.sort, after)[:self.p.limit + 1])

        async def find() -> tuple[Hit, ...]:
            columns, order, after = order_and_after(self.sort, self._score(part, pairs), key)
            query: Select[Any] = select(*columns, D.listed, D.provider_id, D.private_to).where(
                part.where, *common_filters(self.p), *facet_filters(self.p), *self._match(part, pairs))
            if after is not None:
                query = query.where(after)
            rows = (await self.session.execute(query.order_by(*order).limit(self.p.limit + 1))).all()
            return tuple(Hit(r.listing_id, value_of(self.sort, r), bool(r.listed), r.provider_id, r.private_to)
                         for r in rows)

        return await self._kept(part.shared, ("search-page", self.p, pairs is not None), find)

    def _in_facets(self, extra: _Extra) -> bool:
        """``facet_filters``, for one of the extras."""
        p = self.p
        return ((p.category is None or extra.category == p.category) and (p.grade is None or extra.grade == p.grade)
                and (p.model is None or p.model in _models_of(extra.models)))

    async def _extras_of(self, part: _Part, pairs: Reading | None) -> tuple[_Extra, ...]:
        """The caller's extras that match under every filter but the facets' (with
        their score), in one query. With the memo, which documents are the caller's
        extras is kept (none, for most callers: then nothing is asked)."""
        reading = pairs is not None
        if reading in self._extras:
            return self._extras[reading]
        where = [part.where]
        ids: tuple[int, ...] | None = None
        if self.memo is not None:
            async def find_ids() -> tuple[int, ...]:
                return tuple((await self.session.execute(select(D.doc_id).where(part.where))).scalars())

            ids = await self._kept(True, ("search-extras", part.owner), find_ids)
            where.append(D.doc_id.in_(ids))

        async def find() -> tuple[_Extra, ...]:
            if ids is not None and not ids:
                return ()
            score = self._score(part, pairs)
            columns = [D.listing_id, D.listed, D.provider_id, D.private_to, D.category, D.grade, D.models, D.price_key]
            query = select(*columns, *([score.label("score")] if score is not None else [])).where(
                *where, *common_filters(self.p), *self._match(part, pairs))
            return tuple(_Extra(Hit(r.listing_id, value_of(self.sort, r), bool(r.listed), r.provider_id, r.private_to),
                                r.category, r.grade, r.models) for r in (await self.session.execute(query)).all())

        # What the extras' query found is kept as the public part's answers are, per caller
        # and query (the same changes empty it): a caller asking again asks nothing.
        p = self.p
        filters = (p.provider, p.purpose, p.delivery, p.min_price, p.max_price, p.currency)
        found = await self._kept(True, ("search-extras-found", part.owner, tuple(self.terms), reading, self.sort,
                                        filters), find)
        self._extras[reading] = found
        return found

    async def _kept(self, shared: bool, key: Any, build: Callable[[], Awaitable[tuple[Any, ...]]]) -> tuple[Any, ...]:
        if not shared or self.memo is None:
            return await build()
        found: tuple[Any, ...] | None = self.memo.get(key)
        if found is not None:
            return found
        ticket = self.memo.ticket()
        value = await build()
        self.memo.put(key, value, ticket)
        return value


@lru_cache(maxsize=1024)
def _expressions(dialect: str, terms: tuple[Term, ...], pairs: bool, few: bool) -> tuple[Any, Any]:
    """The match and the score of a query's terms (read as pairs or not), built once: a
    score is an expression of five subqueries a term, and searches repeat their queries."""
    reading = pairs_reading(list(terms)) if pairs else None
    if reading is None:
        return match_clause(dialect, list(terms), few), relevance(dialect, list(terms), few)
    return match_clause(dialect, reading, few), pairs_relevance(dialect, list(terms), reading, few)


def _models_of(models: str) -> list[str]:
    return [m for m in models.split(",") if m]


def _facets(groups: Sequence[Group], p: SearchParams) -> tuple[int, dict[str, dict[str, int]]]:
    category: dict[str, int] = {}
    grade: dict[str, int] = {}
    model: dict[str, int] = {}
    total = 0
    for row in groups:
        n = int(row.n)
        names = _models_of(row.models)
        category_ok = p.category is None or row.category == p.category
        grade_ok = p.grade is None or row.grade == p.grade
        model_ok = p.model is None or p.model in names
        if grade_ok and model_ok:
            category[row.category] = category.get(row.category, 0) + n
        if category_ok and model_ok:
            grade[row.grade] = grade.get(row.grade, 0) + n
        if category_ok and grade_ok:
            for name in names:
                model[name] = model.get(name, 0) + n
        if category_ok and grade_ok and model_ok:
            total += n
    return total, {"category": category, "grade": grade, "model": model}
