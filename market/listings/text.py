"""Segmentation of listing text for search: the same tokens at index and query time.

Text is NFKC-normalised (full-width letters and digits become ASCII) and lowercased,
then split into runs: runs of CJK ideographs and runs of ASCII letters and digits;
everything else separates. A CJK run becomes its overlapping bigrams in order
(深圳交通 → 深圳 圳交 交通), a one-character run that character. A latin word becomes
its English Snowball stem (``routes`` and ``route`` → ``rout``); pure digits stay as
they are.

Why bigrams and no dictionary segmenter (jieba and the like) for matching:

- Recall: any query of two or more characters that occurs in a title, as a substring,
  is found: its bigrams are a phrase of the document's bigrams. A dictionary segmenter
  cuts the query and the document by context and by its dictionary, and then 出行数据
  in a query and 出行 / 数据 in a document (or a new place or brand name that the
  dictionary does not know) need not agree.
- Stability: a string yields the same tokens whether it is the whole query or inside
  a long description, and whichever version of a dictionary is installed; nothing
  needs reindexing when a dictionary changes.
- The price is some false positives at word boundaries: 京东 also finds 北京东路
  (北京 京东 东路), a substring across two words. ``bench/segmentation.py`` measures both.
- A query of one character is a prefix match: it finds documents with a token that
  starts with it (电 finds 电力 and a lone 电, but not a 电 that ends a run of
  characters, which only occurs as the second half of a bigram).

A query is a list of terms, ANDed (``parse_query``): each CJK run of two or more
characters is one phrase term (its bigrams, adjacent and in order), a one-character
run a prefix term, each latin word a one-token term.

People leave out what they do not think of as part of the name: 深圳公园 for
深圳市公园游客量, 南山科技园 for 南山区科技园. The phrase of 深圳公园 (深圳 圳公 公园) is
not in that title, and 圳公 is in no title at all. So a CJK term of three or more
characters has a second reading, *pairs* (``pair_groups``): every character of the
term must be in one of the term's bigrams that the document has, anywhere and in any
order. For four characters that is both halves (深圳 and 公园); in general the first
and the last bigram and, for each character between, one of the two bigrams it is in.
Search reads a query as pairs only when its phrases find fewer than ``PAIRS_BELOW``
listings, and ranks the phrase matches first (``market.listings.search``).
"""

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import snowballstemmer

from market.core.errors import Unprocessable

MAX_QUERY_CHARS = 200
MAX_QUERY_TERMS = 16
# Fewer phrase matches than this, and the query is also read as pairs: below a full first
# screen of results the pairs-only matches are worth showing under the phrase matches.
PAIRS_BELOW = 20

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(f"([{_CJK}]+)|([0-9a-z]+)")

_local = threading.local()


def _stemmer() -> Any:
    # A Snowball stemmer keeps state while it works: one per thread.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    if word.isdigit():
        return word
    stem: str = _stemmer().stemWord(word)
    return stem if stem and stem.isascii() and stem.isalnum() else word


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def _runs(text: str) -> list[tuple[str, bool]]:
    """``(run, is_cjk)`` in order of appearance."""
    return [(m.group(0), m.group(1) is not None) for m in _RUN.finditer(_normal(text))]


def tokens(text: str) -> list[str]:
    """The tokens of ``text``, in order (repeats kept)."""
    out: list[str] = []
    for run, cjk in _runs(text):
        if cjk:
            out.extend(_bigrams(run))
        else:
            out.append(_stem(run))
    return out


def token_string(tokens: list[str]) -> str:
    """Tokens as stored in ``listing_docs``: joined by single spaces, one space at each end."""
    return " " + " ".join(tokens) + " " if tokens else " "


@dataclass(frozen=True)
class Term:
    """One ANDed part of a query: a phrase of adjacent tokens, or (``prefix``) a single
    character that a token must start with."""

    tokens: tuple[str, ...]
    prefix: bool = False


def parse_query(q: str) -> list[Term]:
    """The terms of a search query; 422 ``bad-query`` when it is too long, has no terms
    or too many."""
    if len(q) > MAX_QUERY_CHARS:
        raise Unprocessable(f"q must be at most {MAX_QUERY_CHARS} characters", kind="bad-query")
    terms: list[Term] = []
    for run, cjk in _runs(q):
        if cjk:
            term = Term(tuple(_bigrams(run)), prefix=len(run) == 1)
        else:
            term = Term((_stem(run),))
        if term not in terms:
            terms.append(term)
    if not terms:
        raise Unprocessable("q has no words to search for (letters, digits or Chinese characters)",
                            kind="bad-query")
    if len(terms) > MAX_QUERY_TERMS:
        raise Unprocessable(f"q has {len(terms)} words; at most {MAX_QUERY_TERMS} are searched",
                            kind="bad-query")
    return terms


def pair_groups(term: Term) -> list[tuple[str, ...]] | None:
    """The term read as pairs: groups of its bigrams, each of which a document must have
    one of (a group of one: that bigram). None when the term reads the same either way
    (a latin word, one or two characters).

    深圳公园 (深圳 圳公 公园) → ``[("深圳",), ("公园",)]``; 南山科技园 (南山 山科 科技 技园) →
    ``[("南山",), ("技园",), ("山科", "科技")]``: the character 科 is in 山科 or in 科技."""
    pairs = term.tokens
    if term.prefix or len(pairs) < 2:
        return None
    ends = dict.fromkeys((pairs[0], pairs[-1]))
    groups: list[tuple[str, ...]] = [(pair,) for pair in ends]
    # Character i (1 <= i < len(pairs)) ends pairs[i-1] and starts pairs[i]; a group that
    # holds the first or the last bigram is met already.
    for i in range(1, len(pairs)):
        group = tuple(dict.fromkeys((pairs[i - 1], pairs[i])))
        if not any(pair in ends for pair in group) and group not in groups:
            groups.append(group)
    return groups
