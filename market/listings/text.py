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
