"""The engines' match expressions for a query's terms (``market.listings.text``): SQLite
FTS5 MATCH text over ``listing_fts``, PostgreSQL tsquery text against ``listing_docs.tsv``.

A query has two readings (``Reading``): *phrases*, each term as it was typed (the
phrase of its bigrams, a prefix, a latin word), and *pairs*, where a CJK term of three
or more characters becomes groups of its bigrams that the listing must have, anywhere
and in any order (``text.pair_groups``). Both readings are a list, per term, of groups
ANDed; a group is alternatives ORed, each a phrase or a prefix. Search asks the pairs
reading only when the phrases find few listings (``market.listings.search``).

Relevance is an integer: for every query term and every field the term occurs in (under
the reading), the field's weight (title 8, keywords 4, summary 2, description 1), summed.
Whether a term occurs in a field is asked of the engine, not of stored text: SQLite
matches the term restricted to that column (``{title_tokens} : "t1 t2"``), PostgreSQL
the term restricted to the field's weight (``'t1':A <-> 't2':A``, ``'电':*A``).
"""

from typing import Any

from sqlalchemy import Text, bindparam, case, cast, exists, literal_column, select, table
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql import ColumnElement

from market.core.db import table_of
from market.listings.models import ListingDoc
from market.listings.text import MAX_QUERY_TERMS, Term, pair_groups

__all__ = [
    "FIELD_WEIGHTS", "PHRASE_FIRST", "Reading", "engine_match", "field_expression", "fts5_expression", "match_clause",
    "pairs_reading", "phrase_reading", "relevance", "tsquery_text", "tsvector_literal",
]

# Field (the FTS5 column) → weight, in the order the fields are laid out in the
# PostgreSQL tsvector (weights A, B, C, D).
FIELD_WEIGHTS: dict[str, int] = {"title_tokens": 8, "keyword_tokens": 4, "summary_tokens": 2, "description_tokens": 1}
_TSV_WEIGHTS = "ABCD"
_FIELD_GAP = 100
_MAX_POSITION = 16383  # PostgreSQL's largest tsvector position

# Added to the score of a phrase match when pairs are read too: above any relevance
# (at most MAX_QUERY_TERMS terms times the sum of the weights), so phrase matches come first.
PHRASE_FIRST = 1000
assert MAX_QUERY_TERMS * sum(FIELD_WEIGHTS.values()) < PHRASE_FIRST

D = table_of(ListingDoc).c

Group = tuple[Term, ...]  # alternatives, ORed
Reading = list[list[Group]]  # per query term, its groups, ANDed


def phrase_reading(terms: list[Term]) -> Reading:
    """Each term as typed: one group of one alternative."""
    return [[(term,)] for term in terms]


def pairs_reading(terms: list[Term]) -> Reading | None:
    """The terms read as pairs; None when that reads the same as the phrases (no CJK
    term of three or more characters)."""
    reading: Reading = []
    relaxed = False
    for term in terms:
        groups = pair_groups(term)
        if groups is None:
            reading.append([(term,)])
        else:
            relaxed = True
            reading.append([tuple(Term((pair,)) for pair in group) for group in groups])
    return reading if relaxed else None


# -- FTS5 -------------------------------------------------------------------------------

def _fts5_alternative(term: Term) -> str:
    # Tokens hold only [0-9a-z] and CJK ideographs, so double quotes are safe.
    return f'"{term.tokens[0]}"*' if term.prefix else '"' + " ".join(term.tokens) + '"'


def _fts5_groups(groups: list[Group]) -> str:
    parts = [_fts5_alternative(g[0]) if len(g) == 1 else "(" + " OR ".join(map(_fts5_alternative, g)) + ")"
             for g in groups]
    return " AND ".join(parts)


def fts5_expression(terms: list[Term] | Reading) -> str:
    """An FTS5 MATCH expression: phrases ``"t1 t2"``, prefixes ``"电"*``, groups
    ``("t1" OR "t2")``, ANDed. Terms are read as phrases; a Reading as it is."""
    return _fts5_groups([g for groups in _reading(terms) for g in groups])


# -- PostgreSQL ---------------------------------------------------------------------------

def _ts_alternative(term: Term, weight: str = "") -> str:
    if term.prefix:
        return f"'{term.tokens[0]}':*{weight}"
    suffix = f":{weight}" if weight else ""
    return " <-> ".join(f"'{t}'{suffix}" for t in term.tokens)


def _ts_groups(groups: list[Group], weight: str = "", bare: bool = False) -> str:
    """Groups joined by ``&``; a phrase or an OR in parentheses unless it stands alone
    and ``bare``."""
    parts = []
    for g in groups:
        text = " | ".join(_ts_alternative(t, weight) for t in g)
        wrap = len(g) > 1 or " <-> " in text
        parts.append(f"({text})" if wrap and not (bare and len(groups) == 1) else text)
    return " & ".join(parts)


def tsquery_text(terms: list[Term] | Reading) -> str:
    """A tsquery literal: ``('t1' <-> 't2')``, ``'t'``, ``'电':*``, ``('t1' | 't2')``, joined by ``&``."""
    return _ts_groups([g for groups in _reading(terms) for g in groups])


def tsvector_literal(title: list[str], keywords: list[str], summary: list[str], description: list[str]) -> str:
    """The tsvector text of a document's tokens for PostgreSQL, written with
    ``UPDATE listing_docs SET tsv = CAST(:lit AS tsvector) WHERE doc_id = :id``.

    Fields in that order, positions from 1, 100 positions between fields (a phrase
    cannot span two), weights A–D; tokens past position 16383 are left out."""
    positions: dict[str, list[str]] = {}
    position = 1
    for weight, field_tokens in zip(_TSV_WEIGHTS, (title, keywords, summary, description), strict=True):
        for token in field_tokens:
            if position > _MAX_POSITION:
                break
            positions.setdefault(token, []).append(f"{position}{weight}")
            position += 1
        position += _FIELD_GAP
    return " ".join(f"'{token}':{','.join(places)}" for token, places in positions.items())


# -- Both -------------------------------------------------------------------------------

def _reading(terms: list[Term] | Reading) -> Reading:
    return [t if isinstance(t, list) else [(t,)] for t in terms]


def field_expression(dialect: str, term: Term | list[Group], field_name: str) -> str:
    """The engine's query for ``term`` (or one term's groups) occurring in one field: an
    FTS5 column filter ``{title_tokens} : "t1 t2"`` (prefix ``"电"*``, groups in
    parentheses), or a tsquery whose lexemes are restricted to the field's weight:
    ``'t1':A <-> 't2':A``, ``'t':A``, ``'电':*A``, ``'t1':A & ('t2':A | 't3':A)``."""
    groups: list[Group] = term if isinstance(term, list) else [(term,)]
    if dialect == "sqlite":
        inner = _fts5_groups(groups)
        return "{" + field_name + "} : " + (inner if len(groups) == 1 and len(groups[0]) == 1 else f"({inner})")
    weight = _TSV_WEIGHTS[list(FIELD_WEIGHTS).index(field_name)]
    return _ts_groups(groups, weight, bare=True)


def _fts_rowids(expression: str) -> Any:
    return (select(literal_column("rowid")).select_from(table("listing_fts"))
            .where(literal_column("listing_fts").bool_op("MATCH")(bindparam(None, expression, type_=Text))))


def engine_match(dialect: str, expression: str, few: bool = False) -> ColumnElement[bool]:
    """The documents the engine finds for ``expression`` (FTS5 MATCH text, or tsquery text).

    ``few``: the rest of the query selects few documents (a caller's own extras), so on
    SQLite each is asked of FTS5 by its rowid, rather than every match of the expression
    being collected first (tens of thousands for a common word)."""
    if dialect == "sqlite":
        if few:
            return exists(_fts_rowids(expression).where(literal_column("listing_fts.rowid") == D.doc_id))
        return D.doc_id.in_(_fts_rowids(expression))
    if dialect == "postgresql":
        return literal_column("listing_docs.tsv").bool_op("@@")(
            cast(bindparam(None, expression, type_=Text), TSQUERY))
    raise NotImplementedError(f"search does not support {dialect}")


def match_clause(dialect: str, terms: list[Term] | Reading, few: bool = False) -> ColumnElement[bool]:
    """The documents in which every term occurs (in any field; a pairs group's bigrams
    each in any field). ``few`` as for ``engine_match``."""
    return engine_match(dialect, fts5_expression(terms) if dialect == "sqlite" else tsquery_text(terms), few)


def relevance(dialect: str, terms: list[Term] | Reading, few: bool = False) -> ColumnElement[int]:
    """The integer score: Σ over terms and fields of the field's weight where the term occurs."""
    parts: list[Any] = [
        case((engine_match(dialect, field_expression(dialect, groups, name), few), weight), else_=0)
        for groups in _reading(terms) for name, weight in FIELD_WEIGHTS.items()
    ]
    score = parts[0]
    for part in parts[1:]:
        score = score + part
    return score


def pairs_relevance(dialect: str, terms: list[Term], pairs: Reading, few: bool = False) -> ColumnElement[int]:
    """The score when pairs are read too: a phrase match keeps its phrase score plus
    ``PHRASE_FIRST``, a pairs-only match has its pairs score; so phrase matches come
    first, in the order they have without the pairs."""
    return case((match_clause(dialect, terms, few), PHRASE_FIRST + relevance(dialect, terms, few)),
                else_=relevance(dialect, pairs, few))
